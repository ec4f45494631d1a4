// The ingest account: partners' drop zones (one drop-<partner> container each), written through create-only
// SAS links signed against stored access policies. Deletion here must be real, and nothing may linger.
param location string
param tags object
param name string
@description('Origins of the partner upload page, allowed to PUT blocks from the browser.')
param corsOrigins array
param logAnalyticsId string

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_ZRS' }
  properties: {
    // checkov:skip=CKV_AZURE_59:Partners upload from their own networks over the internet with a SAS link; the data this account holds is deleted within minutes of upload.
    // checkov:skip=CKV_AZURE_35:As above: partners reach the drop zones from anywhere, and each link is create-only, per container, short-lived and revocable.
    // checkov:skip=CKV_AZURE_206:Drop zones hold files for minutes; zone-redundant storage is enough, and geo-replication would copy raw personal data to a second region.
    // Shared key only here: stored access policies (instant revocation of every partner link) need shared-key
    // SAS. This account holds nothing but drop zones; the platform account has shared key off.
    allowSharedKeyAccess: true
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: { defaultAction: 'Allow', bypass: 'AzureServices' }
    encryption: {
      requireInfrastructureEncryption: true
      keySource: 'Microsoft.Storage'
      services: { blob: { enabled: true }, file: { enabled: true } }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    // Soft delete off, so that deleting a raw file (after ingest, on revocation, by lifecycle) really deletes it.
    deleteRetentionPolicy: { enabled: false }
    containerDeleteRetentionPolicy: { enabled: false }
    isVersioningEnabled: false
    cors: {
      corsRules: empty(corsOrigins) ? [] : [
        {
          allowedOrigins: corsOrigins
          allowedMethods: [ 'PUT', 'OPTIONS' ]
          allowedHeaders: [ 'content-type', 'x-ms-blob-type', 'x-ms-blob-content-type', 'x-ms-version', 'x-ms-date', 'x-ms-client-request-id' ]
          exposedHeaders: [ 'x-ms-request-id', 'etag' ]
          maxAgeInSeconds: 3600
        }
      ]
    }
  }
}

resource deadLetters 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: 'deadletter'
  properties: { publicAccess: 'None' }
}

resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          // Anything left in a drop zone for 7 days (an upload that could never be processed, such as a name with
          // a . or .. folder that no request can address) is deleted, and with it any snapshot a create-only link
          // took of it (Azure counts a snapshot as creating) and any version, should versioning ever be turned on.
          // Append blobs too: a link can create one, and the pipeline refuses it. (Page blobs are outside what
          // lifecycle rules can act on; the pipeline refuses and deletes them at once.)
          name: 'delete-stale-drop-zone-files'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: { blobTypes: [ 'blockBlob', 'appendBlob' ], prefixMatch: [ 'drop-' ] }
            actions: {
              baseBlob: { delete: { daysAfterCreationGreaterThan: 7 } }
              snapshot: { delete: { daysAfterCreationGreaterThan: 1 } }
              version: { delete: { daysAfterCreationGreaterThan: 1 } }
            }
          }
        }
        {
          name: 'delete-old-dead-letters'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: { blobTypes: [ 'blockBlob' ], prefixMatch: [ 'deadletter/' ] }
            actions: { baseBlob: { delete: { daysAfterCreationGreaterThan: 30 } } }
          }
        }
      ]
    }
  }
}

resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'blob-to-log-analytics'
  scope: blobService
  properties: {
    workspaceId: logAnalyticsId
    // Every request, refused ones included: the breach alert for links used after revocation counts the SAS
    // writes this account refuses (alerts.bicep). Partners only write here, so the volume is small.
    logs: [ { categoryGroup: 'allLogs', enabled: true } ]
  }
}

output id string = account.id
output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
