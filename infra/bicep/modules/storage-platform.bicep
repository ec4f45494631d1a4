// The platform account: curated data, receipts, reports, exports and the tables. No shared key, no public
// access, identity only; with private networking, reachable through private endpoints alone.
param location string
param tags object
param name string
param privateNetworking bool
param logAnalyticsId string
@description('Days after which research extracts and subject access packs in exports/ are deleted, whatever else happens.')
param exportsMaxDays int = 30

var containers = [ 'curated', 'receipts', 'reports', 'exports', 'app-package' ]
var tables = [ 'ingests', 'subjects', 'links', 'register', 'requests', 'holds', 'audit' ]

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_ZRS' }
  properties: {
    // checkov:skip=CKV_AZURE_206:Zone-redundant in the one allowed region: geo-replication would copy personal data outside the region the notice promises.
    // checkov:skip=CKV_AZURE_59:Without the privateNetworking option the Flex Consumption app reaches storage over its public endpoint (identity only, shared key off); with it, public access is disabled.
    // checkov:skip=CKV_AZURE_35:As above: with privateNetworking the default action is Deny.
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
