// The Event Grid system topic on the ingest account. Its one subscription (eventgrid-subscription.bicep) is
// created after the code is deployed, because it needs the function app's Event Grid system key.
param location string
param tags object
param name string
param ingestStorageName string

resource ingest 'Microsoft.Storage/storageAccounts@2023-05-01' existing = { name: ingestStorageName }

resource topic 'Microsoft.EventGrid/systemTopics@2025-02-15' = {
  name: name
  location: location
  tags: tags
  identity: { type: 'SystemAssigned' }
  properties: {
    source: ingest.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

// The topic's identity writes undeliverable events to the dead-letter container, and nothing else.
resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  name: '${ingestStorageName}/default/deadletter'
}

resource deadLetterWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterContainer.id, topic.id, 'ba92f5b4-2d11-453d-a403-e96b0029c9fe')
  scope: deadLetterContainer
  properties: {
    principalId: topic.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'ba92f5b4-2d11-453d-a403-e96b0029c9fe')
  }
}

output name string = topic.name
