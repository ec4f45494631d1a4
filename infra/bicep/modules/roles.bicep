// Least-privilege data roles for the function app's identity, and nothing for anyone else.
param principalId string
param platformStorageName string
param ingestStorageName string
param keyVaultName string
param auditKeyName string
param appInsightsName string

var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  keyVaultCryptoUser: '12338af0-0e69-4776-bea7-57ae8d297424'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

resource platform 'Microsoft.Storage/storageAccounts@2023-05-01' existing = { name: platformStorageName }
resource ingest 'Microsoft.Storage/storageAccounts@2023-05-01' existing = { name: ingestStorageName }
resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = { name: keyVaultName }
resource insights 'Microsoft.Insights/components@2020-02-02' existing = { name: appInsightsName }
resource auditKey 'Microsoft.KeyVault/vaults/keys@2023-07-01' existing = { parent: vault, name: auditKeyName }

// The Functions host's own storage (leases, deployment package) needs Blob Data Owner on the platform account.
resource platformBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(platform.id, principalId, roles.storageBlobDataOwner)
  scope: platform
  properties: { principalId: principalId, principalType: 'ServicePrincipal', roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner) }
}

resource platformQueue 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(platform.id, principalId, roles.storageQueueDataContributor)
  scope: platform
  properties: { principalId: principalId, principalType: 'ServicePrincipal', roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor) }
}

resource platformTable 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(platform.id, principalId, roles.storageTableDataContributor)
  scope: platform
  properties: { principalId: principalId, principalType: 'ServicePrincipal', roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor) }
}

// Read and delete raw uploads, create drop-zone containers.
resource ingestBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(ingest.id, principalId, roles.storageBlobDataContributor)
  scope: ingest
  properties: { principalId: principalId, principalType: 'ServicePrincipal', roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor) }
}

resource vaultSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, roles.keyVaultSecretsUser)
  scope: vault
  properties: { principalId: principalId, principalType: 'ServicePrincipal', roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser) }
}

// Sign audit checkpoints with the audit key and read its public part: on that one key, not the vault. Crypto User
// cannot export a key or read its private part; the key's own operations (sign, verify) limit it further.
resource vaultAuditKey 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(auditKey.id, principalId, roles.keyVaultCryptoUser)
  scope: auditKey
  properties: { principalId: principalId, principalType: 'ServicePrincipal', roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultCryptoUser) }
}

resource telemetry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(insights.id, principalId, roles.monitoringMetricsPublisher)
  scope: insights
  properties: { principalId: principalId, principalType: 'ServicePrincipal', roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher) }
}
