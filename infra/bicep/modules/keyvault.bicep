// Key Vault for the pseudonymisation root key and the audit checkpoint signing key: RBAC only, soft delete with
// purge protection, never readable by templates or deployments, every access logged to Log Analytics. Premium,
// so the signing key lives in an HSM.
param location string
param tags object
param name string
param privateNetworking bool
param logAnalyticsId string
@description('The ingest account: its key signs partners\' upload links against stored access policies.')
param ingestStorageName string
@description('The key that signs audit checkpoints (shared/platform/checkpoints.py).')
param auditKeyName string = 'audit-checkpoint'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    // checkov:skip=CKV_AZURE_189:Public access is disabled unless a deployment takes the documented allowPublicNetworkAccess opt-out (main.bicep, docs/deploy.md); then RBAC and the app's identity only.
    // checkov:skip=CKV_AZURE_109:As above: the firewall's default action is Deny unless the allowPublicNetworkAccess opt-out is taken.
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'premium' }
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

// Signs audit checkpoints: a P-256 key in the vault's HSM that can sign and verify and nothing else, and is never
// exportable; the app holds Key Vault Crypto User on this key alone (roles.bicep). Key Vault rotates it every
// year: the app signs with the newest version, verify-audit checks each checkpoint with the version that signed it
// (its public part only), so old versions must stay enabled. Created once: redeploying never replaces it.
resource auditKey 'Microsoft.KeyVault/vaults/keys@2023-07-01' = {
  parent: vault
  name: auditKeyName
  properties: {
    kty: 'EC-HSM'
    curveName: 'P-256'
    keyOps: [ 'sign', 'verify' ]
    attributes: { enabled: true, exportable: false }
    rotationPolicy: {
      attributes: { expiryTime: 'P2Y' }
      lifetimeActions: [
        { trigger: { timeAfterCreate: 'P1Y' }, action: { type: 'rotate' } }
        { trigger: { timeBeforeExpiry: 'P30D' }, action: { type: 'notify' } }
      ]
    }
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
output auditKeyName string = auditKey.name
