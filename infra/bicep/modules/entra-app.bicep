// The Entra ID app registration that signs administrators in to the function app: the three app roles the code
// checks (shared/platform/auth.py), one delegated scope for command-line tokens, and no secret. App Service
// authentication proves itself to Entra ID with the function app's user-assigned identity through a federated
// identity credential, so there is nothing to store, leak or rotate. Microsoft Graph resources, deployed through
// the Microsoft Graph Bicep extension (infra/bicep/bicepconfig.json pins its version).
extension microsoftGraphV1

@description('Tenant-unique key of the registration: the same value updates the same registration on every deployment.')
param uniqueName string

@description('Shown in the Entra admin center and on the sign-in page.')
param displayName string

@description('The function app\'s host name: sign-in in a browser returns to it.')
param appHostName string

@description('Object (principal) id of the function app\'s user-assigned identity: the registration\'s only credential.')
param identityPrincipalId string

@description('Users or groups given an app role at deployment, as [{ principalId: \'<object id>\', role: \'Analyst\' }]; more can be assigned later (docs/deploy.md).')
param assignments array = []

@description('Object id of whoever deploys (azd passes AZURE_PRINCIPAL_ID): made an owner, so they can assign the roles.')
param ownerId string = ''

// The Azure CLI's well-known client id: pre-authorised, so `az account get-access-token` gets a token for this API
// without a consent prompt. Only users assigned an app role get one (appRoleAssignmentRequired below).
var azureCliAppId = '04b07795-8ddb-461a-bbee-02f9e1bf7b46'
var tokenExchangeAudience = 'api://AzureADTokenExchange'
var issuer = '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
var identifierUri = 'api://${tenant().tenantId}/${uniqueName}'
var scopeName = 'user_impersonation'
// Role and scope ids are derived, not random: a redeployment must keep them, or every assignment would be lost.
var scopeId = guid(uniqueName, scopeName)
// An assignment naming any other role fails the deployment here instead of assigning something else.
var roleIds = {
  'Platform.Admin': guid(uniqueName, 'Platform.Admin')
  'DataProtection.Officer': guid(uniqueName, 'DataProtection.Officer')
  Analyst: guid(uniqueName, 'Analyst')
  'Research.Recipient': guid(uniqueName, 'Research.Recipient')
}
var owners = { relationshipSemantics: 'append', relationships: empty(ownerId) ? [] : [ ownerId ] }
var roles = [
  {
    value: 'Platform.Admin'
    displayName: 'Platform administrator'
    description: 'Onboards partners, issues and revokes upload links, runs retention, sets legal holds, links identities.'
  }
  {
    value: 'DataProtection.Officer'
    displayName: 'Data protection officer'
    description: 'Handles people\'s rights requests, reviews identity links, creates research extracts.'
  }
  {
    value: 'Analyst'
    displayName: 'Analyst'
    description: 'Runs and reads anonymised reports; lists the datasets and their data dictionaries.'
  }
  {
    value: 'Research.Recipient'
    displayName: 'Research recipient'
    description: 'Downloads the research extracts whose agreement names them, nothing else.'
  }
]

resource application 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: uniqueName
  displayName: displayName
  signInAudience: 'AzureADMyOrg'
  identifierUris: [ identifierUri ]
  owners: owners
  appRoles: [for role in roles: {
    id: roleIds[role.value]
    value: role.value
    displayName: role.displayName
    description: role.description
    allowedMemberTypes: [ 'User' ]
    isEnabled: true
  }]
  api: {
    requestedAccessTokenVersion: 2
    oauth2PermissionScopes: [
      {
        id: scopeId
        value: scopeName
        type: 'User'
        isEnabled: true
        adminConsentDisplayName: 'Call the Family Data Platform'
        adminConsentDescription: 'Call the platform\'s admin functions as the signed-in user, within that user\'s app roles.'
        userConsentDisplayName: 'Call the Family Data Platform'
        userConsentDescription: 'Call the platform\'s admin functions as you, within your roles.'
      }
    ]
    preAuthorizedApplications: [
      { appId: azureCliAppId, delegatedPermissionIds: [ scopeId ] }
    ]
  }
  web: {
    redirectUris: [ 'https://${appHostName}/.auth/login/aad/callback' ]
    implicitGrantSettings: { enableIdTokenIssuance: false, enableAccessTokenIssuance: false }
  }
  requiredResourceAccess: [
    {
      resourceAppId: '00000003-0000-0000-c000-000000000000' // Microsoft Graph
      resourceAccess: [ { id: 'e1fe6dd8-ba31-4d61-89e7-88639da4683d', type: 'Scope' } ] // User.Read, for sign-in
    }
  ]

  // No password or certificate: the function app's identity is the credential (App Service authentication
  // reads its client id from the OVERRIDE_USE_MI_FIC_ASSERTION_CLIENTID app setting, functionapp.bicep).
  resource appIdentity 'federatedIdentityCredentials@v1.0' = {
    name: '${application.uniqueName}/function-app-identity'
    description: 'App Service authentication on the function app signs in with its user-assigned identity.'
    issuer: issuer
    subject: identityPrincipalId
    audiences: [ tokenExchangeAudience ]
  }
}

resource servicePrincipal 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: application.appId
  // Only users and groups given one of the three roles can get a token for the platform at all.
  appRoleAssignmentRequired: true
  owners: owners
}

resource roleAssignments 'Microsoft.Graph/appRoleAssignedTo@v1.0' = [for assignment in assignments: {
  resourceId: servicePrincipal.id
  principalId: assignment.principalId
  appRoleId: roleIds[assignment.role]
}]

output clientId string = application.appId
output identifierUri string = identifierUri
output scope string = '${identifierUri}/${scopeName}'
output issuer string = issuer
output servicePrincipalId string = servicePrincipal.id
