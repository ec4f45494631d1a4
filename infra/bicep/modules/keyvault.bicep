// Key Vault for the pseudonymisation root key: RBAC only, soft delete with purge protection, never readable by
// templates or deployments, every access logged to Log Analytics.
param location string
param tags object
param name string
param privateNetworking bool
param logAnalyticsId string
@description('The ingest account: its key signs partners\' upload links against stored access policies.')
param ingestStorageName string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    // checkov:skip=CKV_AZURE_189:Without the privateNetworking option the function app reads the key over the public endpoint (RBAC, its identity only); with it, public access is disabled.
    // checkov:skip=CKV_AZURE_109:As above: with privateNetworking the firewall's default action is Deny.
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForTemplateDeployment: false
    enabledForDiskEncryption: false
    publicNetworkAccess: privateNetworking ? 'Disabled' : 'Enabled'
    networkAcls: { defaultAction: privateNetworking ? 'Deny' : 'Allow', bypass: 'None' }
  }
}

resource ingest 'Microsoft.Storage/storageAccounts@2023-05-01' existing = { name: ingestStorageName }

// The function app signs partners' upload links with the ingest account's key; it reads it from here.
resource ingestKey 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'ingest-account-key'
  properties: {
    // checkov:skip=CKV_AZURE_41:The value is the storage account's key, rotated with the account (docs/deploy.md); an expiry here would stop link signing without rotating anything.
    contentType: 'Shared key of the ingest storage account (signs partner upload links)'
    value: ingest.listKeys().keys[0].value
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: vault
  properties: {
    workspaceId: logAnalyticsId
    logs: [ { categoryGroup: 'allLogs', enabled: true } ]
    metrics: [ { category: 'AllMetrics', enabled: true } ]
  }
}

output id string = vault.id
output name string = vault.name
output uri string = vault.properties.vaultUri
