// The Event Grid subscription that delivers the Key Vault's near-expiry and expiry events to the
// key_vault_events function. A deployment of its own, run by the postdeploy hook
// (scripts/azd_hook.py) after azd has deployed the code: Event Grid refuses a subscription to a
// function that does not exist yet, and on a first `azd up` the function exists only after deploy.
// Deploying it again changes nothing (same name, same properties), so every `azd up` or
// `azd deploy` runs it. Everything it names is created by main.bicep; the hook passes main.bicep's
// outputs (EVENT_GRID_TOPIC_NAME, FUNCTION_APP_NAME, STORAGE_ACCOUNT_NAME, DEAD_LETTER_CONTAINER).
targetScope = 'resourceGroup'

@description('The Key Vault\'s Event Grid system topic (evgt-<token>, main.bicep\'s EVENT_GRID_TOPIC_NAME); its system-assigned identity writes the dead letters.')
param systemTopicName string

@description('The Function App (func-<token>, main.bicep\'s FUNCTION_APP_NAME) whose key_vault_events function receives the events.')
param functionAppName string

@description('The app\'s storage account (st<token>, main.bicep\'s STORAGE_ACCOUNT_NAME), which holds the dead-letter container.')
param storageAccountName string

@description('Blob container for events that could not be delivered (main.bicep\'s DEAD_LETTER_CONTAINER); the topic\'s identity has Storage Blob Data Contributor on it.')
param deadLetterContainerName string

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: systemTopicName
}

resource app 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

// One event per delivery (the handler acknowledges or fails each on its own); a failed delivery
// (busy target, storage unreachable) is retried up to 30 times over 24 hours, then dead-lettered.
resource nearExpiry 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: topic
  name: 'pat-rotator-near-expiry'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${app.id}/functions/key_vault_events'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    filter: {
      includedEventTypes: [ 'Microsoft.KeyVault.SecretNearExpiry', 'Microsoft.KeyVault.SecretExpired' ]
    }
    eventDeliverySchema: 'EventGridSchema'
    retryPolicy: { maxDeliveryAttempts: 30, eventTimeToLiveInMinutes: 1440 }
    deadLetterWithResourceIdentity: {
      identity: { type: 'SystemAssigned' }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: storage.id
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}

@description('Name of the event subscription (under the system topic).')
output EVENT_SUBSCRIPTION_NAME string = nearExpiry.name
