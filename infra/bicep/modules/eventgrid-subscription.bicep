// The one BlobCreated subscription that serves every partner's drop zone: onboarding a partner (a new
// drop-<partner> container) needs no change here. Deployed by infra/scripts/create-event-subscription.sh after
// the code, because the endpoint carries the function app's Event Grid system key.
param systemTopicName string
param ingestStorageName string
@secure()
@description('https://<app>/runtime/webhooks/eventgrid?functionName=ingest&code=<eventgrid_extension system key>')
param endpointUrl string

resource ingest 'Microsoft.Storage/storageAccounts@2023-05-01' existing = { name: ingestStorageName }
resource topic 'Microsoft.EventGrid/systemTopics@2025-02-15' existing = { name: systemTopicName }

resource subscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = {
  parent: topic
  name: 'drop-zones-to-ingest'
  properties: {
    eventDeliverySchema: 'EventGridSchema'
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: endpointUrl
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    filter: {
      includedEventTypes: [ 'Microsoft.Storage.BlobCreated' ]
      subjectBeginsWith: '/blobServices/default/containers/drop-'
      isSubjectCaseSensitive: true
      advancedFilters: [
        // Only committed uploads: a block blob is created by PutBlob or by the final PutBlockList.
        { operatorType: 'StringIn', key: 'data.api', values: [ 'PutBlob', 'PutBlockList', 'FlushWithClose' ] }
      ]
    }
    // Transient failures are retried for a day; then the event goes to the dead-letter container and the raw
    // file stays in its drop zone (deleted by the lifecycle rule after 7 days).
    retryPolicy: { maxDeliveryAttempts: 30, eventTimeToLiveInMinutes: 1440 }
    deadLetterWithResourceIdentity: {
      identity: { type: 'SystemAssigned' }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: { resourceId: ingest.id, blobContainerName: 'deadletter' }
      }
    }
  }
}
