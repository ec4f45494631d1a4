// The function app on Flex Consumption: Python, a user-assigned identity, identity-based AzureWebJobsStorage,
// code deployed from a private container of the platform account, optional VNet integration.
param location string
param tags object
param planName string
param appName string
param identityId string
param identityClientId string
param platformStorageName string
param ingestStorageName string
param keyVaultUri string
@description('The Key Vault key that signs audit checkpoints.')
param auditKeyName string
param appInsightsConnectionString string
@allowed([ '3.11', '3.12' ])
param pythonVersion string = '3.11'
@allowed([ 512, 2048, 4096 ])
param instanceMemoryMB int = 2048
param maximumInstanceCount int = 40
param policyFile string
param subnetId string = ''
@description('Client id of the Entra ID app registration callers sign in to (entra-app.bicep).')
param signInClientId string
@description('Its tenant\'s token issuer.')
param signInIssuer string
@description('Its application ID URI, accepted as a token audience besides the client id.')
param signInIdentifierUri string

// The paths App Service authentication leaves open: the partner upload page, its assets and receipt lookups
// (partners are not in our directory and prove themselves with their upload link alone) and Event Grid's deliveries
// to the ingest function (they carry the webhook's system key). tests/infra checks that these are exactly the
// anonymous HTTP functions.
var anonymousPaths = [
  '/api/upload'
  '/api/upload/*'
  '/runtime/webhooks/eventgrid'
]
// The Azure CLI's client id: the runbook (docs/deploy.md) gets its tokens with it.
var azureCliAppId = '04b07795-8ddb-461a-bbee-02f9e1bf7b46'

var platformBlob = 'https://${platformStorageName}.blob.${environment().suffixes.storage}'

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { tier: 'FlexConsumption', name: 'FC1' }
  properties: {
    // checkov:skip=CKV_AZURE_225:Flex Consumption zone redundancy is not offered in every allowed region (ukwest has no availability zones); Event Grid retries undelivered uploads for 24 hours.
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: appName
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: { type: 'UserAssigned', userAssignedIdentities: { '${identityId}': {} } }
  properties: {
    // checkov:skip=CKV_AZURE_17:Callers are Event Grid and administrators behind App Service authentication; client certificates would shut Event Grid out.
    // checkov:skip=CKV_AZURE_222:Event Grid delivers BlobCreated events to the app's public webhook; every HTTP function also needs a function key and an App Service authentication role.
    // checkov:skip=CKV_AZURE_212:Flex Consumption scales from zero per event; there is no instance minimum to fail over between.
    // checkov:skip=CKV_AZURE_213:Flex Consumption manages instance health itself; the App Service health check applies to dedicated plans.
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    virtualNetworkSubnetId: empty(subnetId) ? null : subnetId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${platformBlob}/app-package'
          authentication: { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: identityId }
        }
      }
      scaleAndConcurrency: { maximumInstanceCount: maximumInstanceCount, instanceMemoryMB: instanceMemoryMB }
      runtime: { name: 'python', version: pythonVersion }
    }
  }

  resource settings 'config' = {
    name: 'appsettings'
    properties: {
      AzureWebJobsStorage__credential: 'managedidentity'
      AzureWebJobsStorage__clientId: identityClientId
      AzureWebJobsStorage__blobServiceUri: platformBlob
      AzureWebJobsStorage__queueServiceUri: 'https://${platformStorageName}.queue.${environment().suffixes.storage}'
      AzureWebJobsStorage__tableServiceUri: 'https://${platformStorageName}.table.${environment().suffixes.storage}'
      APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
      AZURE_CLIENT_ID: identityClientId
      // App Service authentication proves itself to Entra ID as this identity (a federated credential, no secret).
      OVERRIDE_USE_MI_FIC_ASSERTION_CLIENTID: identityClientId
      FDP_POLICY_PATH: policyFile
      FDP_INGEST_STORAGE: ingestStorageName
      FDP_PLATFORM_STORAGE: platformStorageName
      FDP_KEY_VAULT_URL: keyVaultUri
      FDP_ROOT_KEY_SECRET: 'pseudonymisation-root-key'
      FDP_AUDIT_KEY_NAME: auditKeyName
      // The retention run: 02:00 UTC every day (NCRONTAB, evaluated in UTC).
      FDP_RETENTION_SCHEDULE: '0 0 2 * * *'
      FDP_IDENTITY_SCHEDULE: '0 */15 * * * *'
      // Standing reports are refreshed after it: 03:30 UTC every day.
      FDP_REPORTS_SCHEDULE: '0 30 3 * * *'
    }
  }

  // App Service authentication: every call needs an Entra ID token for the platform's registration (401 without
  // one), and the platform passes its claims on as `x-ms-client-principal` with WEBSITE_AUTH_ENABLED=True, which is
  // what makes shared/platform/auth.py trust that header and read the caller's app roles from it. Function keys
  // are still required on every admin function on top of this.
  resource authSettings 'config' = {
    name: 'authsettingsV2'
    properties: {
      platform: { enabled: true }
      globalValidation: {
        requireAuthentication: true
        unauthenticatedClientAction: 'Return401'
        excludedPaths: anonymousPaths
      }
      httpSettings: {
        requireHttps: true
        routes: { apiPrefix: '/.auth' }
        forwardProxy: { convention: 'NoProxy' }
      }
      identityProviders: {
        azureActiveDirectory: {
          enabled: true
          registration: {
            clientId: signInClientId
            openIdIssuer: signInIssuer
            // Not a secret: the app setting naming the identity the registration's federated credential trusts.
            clientSecretSettingName: 'OVERRIDE_USE_MI_FIC_ASSERTION_CLIENTID'
          }
          validation: {
            allowedAudiences: [ signInClientId, signInIdentifierUri ]
            defaultAuthorizationPolicy: { allowedApplications: [ signInClientId, azureCliAppId ] }
          }
        }
      }
      login: {
        // Nothing in the app calls another API as the user, so no one's tokens are kept (and Flex Consumption
        // has no shared file system to keep them in).
        tokenStore: { enabled: false }
        preserveUrlFragmentsForLogins: false
      }
    }
  }

  // Deployment only through identity-based publishing (azd uses the OneDeploy API with Entra ID).
  resource ftp 'basicPublishingCredentialsPolicies' = {
    name: 'ftp'
    properties: { allow: false }
  }
  resource scm 'basicPublishingCredentialsPolicies' = {
    name: 'scm'
    properties: { allow: false }
  }
}

output name string = app.name
output id string = app.id
output hostName string = app.properties.defaultHostName
