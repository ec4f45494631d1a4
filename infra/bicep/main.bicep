// The whole Family Data Platform in one deployment (azd up): a resource group in one UK or EU region, and in it
// the function app, the ingest and platform storage accounts, Key Vault, Event Grid, monitoring, the data
// roles, and an Azure Policy that keeps every resource in the region.
targetScope = 'subscription'

@minLength(1)
@maxLength(20)
@description('azd environment name; names and tags every resource.')
param environmentName string

// The data residency promise: UK data centres (Thrive at Five) or EU ones (LEAP). No other region is accepted.
@allowed([
  'uksouth'
  'ukwest'
  'westeurope'
  'northeurope'
  'francecentral'
  'francesouth'
  'germanywestcentral'
  'germanynorth'
  'swedencentral'
  'swedensouth'
  'italynorth'
  'polandcentral'
  'spaincentral'
  'belgiumcentral'
])
@description('The one region every resource is created in: it must match the policy\'s programme.region.')
param location string

@description('The programme policy the app loads, relative to the app root (policies/<programme>.yaml).')
param policyFile string = 'policies/leap.yaml'

// Private networking is the default for every programme: the function app joins a VNet and reaches the platform
// account and Key Vault through private endpoints, with their public endpoints disabled. Public access is an
// explicit opt-out (docs/deploy.md, "Private networking"): no parameter file in this repository sets it.
@description('Opt-out of private networking: true leaves the platform account and Key Vault on public endpoints (identity and RBAC only). Record why in the programme\'s deployment notes; the default, false, is private.')
param allowPublicNetworkAccess bool = false

@minValue(1)
@description('Days each signed audit checkpoint is held by the audit-checkpoints container\'s immutability policy: no one can overwrite or delete it for that long.')
param auditCheckpointRetentionDays int = 2190

@description('Set to true once the checkpoint container\'s immutability policy has been locked (docs/audit.md): a locked policy can only be extended, so deployments leave it alone.')
param auditCheckpointPolicyLocked bool = false

@description('Further origins allowed to upload to drop zones from a browser (the app\'s own page is always allowed).')
param uploadPageOrigins array = []

@allowed([ 512, 2048, 4096 ])
param instanceMemoryMB int = 2048

@description('App roles to assign at deployment, as [{ principalId: \'<user or group object id>\', role: \'Platform.Admin\' | \'DataProtection.Officer\' | \'Analyst\' | \'Research.Recipient\' }]. Assignments can also be made later (docs/deploy.md, "Assign the roles").')
param signInAssignments array = []

@description('Object id of the deploying user or principal (azd passes AZURE_PRINCIPAL_ID): made an owner of the app registration, so they can assign its roles.')
param signInOwnerId string = ''

var privateNetworking = !allowPublicNetworkAccess
var tags = { 'azd-env-name': environmentName, workload: 'family-data-platform' }
var token = toLower(uniqueString(subscription().id, environmentName, location))
var abbreviations = {
  group: 'rg-fdp-${environmentName}'
  identity: 'id-fdp-${token}'
  logs: 'log-fdp-${token}'
  insights: 'appi-fdp-${token}'
  ingest: 'stfdpin${token}'
  platform: 'stfdp${token}'
  vault: 'kv-fdp-${token}'
  plan: 'plan-fdp-${token}'
  app: 'func-fdp-${token}'
  topic: 'evgt-fdp-${token}'
  network: 'vnet-fdp-${token}'
  signIn: 'fdp-signin-${token}'
}

resource group 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: abbreviations.group
  location: location
  tags: tags
}

module residency 'modules/policy.bicep' = {
  name: 'residency-policy'
  scope: group
  params: { allowedLocations: [ location ] }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: group
  params: { location: location, tags: tags, logAnalyticsName: abbreviations.logs, appInsightsName: abbreviations.insights }
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: group
  params: { location: location, tags: tags, name: abbreviations.identity }
}

module ingest 'modules/storage-ingest.bicep' = {
  name: 'ingest-storage'
  scope: group
  params: {
    location: location
    tags: tags
    name: abbreviations.ingest
    // The upload page is served by the function app itself; add any other origin with uploadPageOrigins.
    corsOrigins: union([ 'https://${abbreviations.app}.azurewebsites.net' ], uploadPageOrigins)
    logAnalyticsId: monitoring.outputs.logAnalyticsId
  }
}

module platform 'modules/storage-platform.bicep' = {
  name: 'platform-storage'
  scope: group
  params: {
    location: location
    tags: tags
    name: abbreviations.platform
    privateNetworking: privateNetworking
    logAnalyticsId: monitoring.outputs.logAnalyticsId
    checkpointRetentionDays: auditCheckpointRetentionDays
    checkpointPolicyLocked: auditCheckpointPolicyLocked
  }
}

module vault 'modules/keyvault.bicep' = {
  name: 'key-vault'
  scope: group
  params: {
    location: location
    tags: tags
    name: abbreviations.vault
    privateNetworking: privateNetworking
    logAnalyticsId: monitoring.outputs.logAnalyticsId
    ingestStorageName: ingest.outputs.name
  }
}

module network 'modules/network.bicep' = if (privateNetworking) {
  name: 'network'
  scope: group
  params: {
    location: location
    tags: tags
    name: abbreviations.network
    platformStorageId: platform.outputs.id
    keyVaultId: vault.outputs.id
  }
}

// Sign-in: the Entra ID app registration with the three app roles; the function app turns on App Service
// authentication with it.
module signIn 'modules/entra-app.bicep' = {
  name: 'sign-in'
  scope: group
  params: {
    uniqueName: abbreviations.signIn
    displayName: 'Family Data Platform (${environmentName})'
    appHostName: '${abbreviations.app}.azurewebsites.net'
    identityPrincipalId: identity.outputs.principalId
    assignments: signInAssignments
    ownerId: signInOwnerId
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'function-app'
  scope: group
  params: {
    location: location
    tags: tags
    planName: abbreviations.plan
    appName: abbreviations.app
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    platformStorageName: platform.outputs.name
    ingestStorageName: ingest.outputs.name
    keyVaultUri: vault.outputs.uri
    auditKeyName: vault.outputs.auditKeyName
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    policyFile: policyFile
    instanceMemoryMB: instanceMemoryMB
    subnetId: privateNetworking ? network.outputs.appSubnetId : ''
    signInClientId: signIn.outputs.clientId
    signInIssuer: signIn.outputs.issuer
    signInIdentifierUri: signIn.outputs.identifierUri
  }
}

module roles 'modules/roles.bicep' = {
  name: 'data-roles'
  scope: group
  params: {
    principalId: identity.outputs.principalId
    platformStorageName: platform.outputs.name
    ingestStorageName: ingest.outputs.name
    keyVaultName: vault.outputs.name
    auditKeyName: vault.outputs.auditKeyName
    appInsightsName: monitoring.outputs.appInsightsName
  }
}

module events 'modules/eventgrid.bicep' = {
  name: 'event-grid'
  scope: group
  params: { location: location, tags: tags, name: abbreviations.topic, ingestStorageName: ingest.outputs.name }
  dependsOn: [ ingest ]
}

module alerts 'modules/alerts.bicep' = {
  name: 'breach-alerts'
  scope: group
  params: { location: location, tags: tags, namePrefix: 'fdp-${token}', logAnalyticsId: monitoring.outputs.logAnalyticsId, ingestStorageName: ingest.outputs.name }
}

// Read by azd into its environment, and by the post-deploy hook.
output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = group.name
output FUNCTION_APP_NAME string = functionApp.outputs.name
output FUNCTION_APP_HOSTNAME string = functionApp.outputs.hostName
output EVENTGRID_TOPIC_NAME string = events.outputs.name
output INGEST_STORAGE_NAME string = ingest.outputs.name
output PLATFORM_STORAGE_NAME string = platform.outputs.name
output KEY_VAULT_NAME string = vault.outputs.name
output AUDIT_KEY_NAME string = vault.outputs.auditKeyName
output AUTH_CLIENT_ID string = signIn.outputs.clientId
output AUTH_SCOPE string = signIn.outputs.scope
output AUTH_SERVICE_PRINCIPAL_ID string = signIn.outputs.servicePrincipalId
