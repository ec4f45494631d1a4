// The platform account: curated data, receipts, reports, exports, signed audit checkpoints and the tables. No
// shared key, no public access, identity only; with private networking (the default), reachable through private
// endpoints alone.
param location string
param tags object
param name string
param privateNetworking bool
param logAnalyticsId string
@description('Days after which research extracts and subject access packs in exports/ are deleted, whatever else happens.')
param exportsMaxDays int = 30
@minValue(1)
@description('Days each audit checkpoint blob cannot be overwritten or deleted, by anyone.')
param checkpointRetentionDays int = 2190
@description('The checkpoint immutability policy has been locked by an operator: leave it alone (it can only be extended).')
param checkpointPolicyLocked bool = false

var containers = [ 'curated', 'receipts', 'reports', 'exports', 'linkage', 'app-package' ]
var tables = [ 'ingests', 'register', 'requests', 'holds', 'audit', 'reviews', 'breaches' ]

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_ZRS' }
  properties: {
    // checkov:skip=CKV_AZURE_206:Zone-redundant in the one allowed region: geo-replication would copy personal data outside the region the notice promises.
    // checkov:skip=CKV_AZURE_59:Public access is disabled unless a deployment takes the documented allowPublicNetworkAccess opt-out (main.bicep, docs/deploy.md); then identity only, shared key off.
    // checkov:skip=CKV_AZURE_35:As above: the default action is Deny unless the allowPublicNetworkAccess opt-out is taken.
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: privateNetworking ? 'Disabled' : 'Enabled'
    networkAcls: { defaultAction: privateNetworking ? 'Deny' : 'Allow', bypass: 'AzureServices' }
    encryption: {
      requireInfrastructureEncryption: true
      keySource: 'Microsoft.Storage'
      services: {
        blob: { enabled: true }
        file: { enabled: true }
        queue: { enabled: true, keyType: 'Account' }
        table: { enabled: true, keyType: 'Account' }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    // Erasure and retention must really delete: no soft delete, no versions.
    deleteRetentionPolicy: { enabled: false }
    containerDeleteRetentionPolicy: { enabled: false }
    isVersioningEnabled: false
  }
}

resource blobContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for container in containers: {
  parent: blobService
  name: container
  properties: { publicAccess: 'None' }
}]

// Signed audit checkpoints (shared/platform/checkpoints.py), write once: the time-based immutability policy stops
// anyone, the app's Blob Data Owner role included, from overwriting or deleting a checkpoint during its retention.
// Versioning stays off: this container-level policy does not need it. Lock the policy after deployment (docs/audit.md).
resource checkpointContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: 'audit-checkpoints'
  properties: { publicAccess: 'None' }
}

resource checkpointRetention 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2023-05-01' = if (!checkpointPolicyLocked) {
  parent: checkpointContainer
  name: 'default'
  properties: {
    immutabilityPeriodSinceCreationInDays: checkpointRetentionDays
    allowProtectedAppendWrites: false
    allowProtectedAppendWritesAll: false
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource platformTables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [for table in tables: {
  parent: tableService
  name: table
}]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

// Rights requests' long work (access packs, erasure) runs from this queue.
resource rightsQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: 'rights-work'
}

resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          // Exports carry their own expiry, enforced by the platform's timer; this is the backstop.
          name: 'delete-expired-exports'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: { blobTypes: [ 'blockBlob' ], prefixMatch: [ 'exports/' ] }
            actions: { baseBlob: { delete: { daysAfterCreationGreaterThan: exportsMaxDays } } }
          }
        }
      ]
    }
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = [for service in [ blobService, tableService, queueService ]: {
  name: 'to-log-analytics'
  scope: service
  properties: {
    workspaceId: logAnalyticsId
    logs: [ { categoryGroup: 'audit', enabled: true } ]
  }
}]

output id string = account.id
output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
output tableEndpoint string = account.properties.primaryEndpoints.table
