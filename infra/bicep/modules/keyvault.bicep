// Key Vault for the pseudonymisation root key: RBAC only, soft delete with purge protection, never readable by
// templates or deployments, every access logged to Log Analytics.
param location string
param tags object
param name string
param privateNetworking bool
param logAnalyticsId string

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
