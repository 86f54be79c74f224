// pat-rotator: a Flex Consumption Function App with a user-assigned identity, its storage (lock
// blobs, fan-out queue, deployment package), Application Insights, the Key Vault that holds the
// PATs and their state, RBAC for all of it (and Key Vault Secrets Officer for the deploying
// user), Key Vault events through Event Grid (the system topic and the dead-letter container here;
// the subscription itself is event-subscription.bicep, deployed by the postdeploy hook once the
// function exists), alerts on the rotator's telemetry (app/alerts.bicep) and a dashboard
// (app/workbook.bicep).
targetScope = 'resourceGroup'

@description('Name of the azd environment; used to name resources.')
param environmentName string

@description('Azure region of every resource.')
param location string = resourceGroup().location

@description('ROTATION_CONFIG: the configuration file\'s path relative to the app root (default rotation.toml, deployed with the code: copy rotation.sample.toml), or inline JSON/TOML set as an app setting after deployment. The vault URL comes from the ROTATION_KEY_VAULT_URL app setting, so the file needs no key_vault_url. Inline JSON does not survive azd\'s parameter substitution (its quotes break the parameters file): use the file.')
param rotationConfig string = 'rotation.toml'

@minValue(1)
@maxValue(24)
@description('Hours between timer runs: the default schedule runs every this many hours (on the hour, UTC), and the heartbeat alert\'s default window is two such periods.')
param rotationPeriodHours int = 6

@description('NCRONTAB schedule (6 fields, UTC) of the rotation timer (ROTATION_SCHEDULE). If you set it to something other than every rotationPeriodHours hours, set heartbeatWindowHours to two of its periods.')
param rotationSchedule string = '0 0 */${rotationPeriodHours} * * *'

@description('More due targets than this in one timer run are fanned out through the queue.')
param fanoutThreshold int = 20

@description('Name of an existing Key Vault to hold the PATs, their state and the credentials; empty creates kv-<token>. The vault must: be in this deployment\'s resource group (so in its subscription and tenant); use the Azure RBAC permission model (enableRbacAuthorization true: access policies are ignored, the role assignments made here are what grant access); be in this deployment\'s region (location), where its Event Grid system topic is created; have no Event Grid system topic other than this deployment\'s evgt-<token> (Azure allows one per vault; another one must be deleted or this deployment fails); accept the app over its public endpoint (publicNetworkAccess Enabled, networkAcls defaultAction Allow: the app has no virtual network). The deployer needs the right to create role assignments on it. Its soft-delete and purge-protection settings are left as they are. Note that azd down deletes the whole resource group, this vault included.')
param existingKeyVaultName string = ''

@description('Purge protection of the Key Vault created here (ignored with existingKeyVaultName). false (default): azd down --purge deletes and purges the vault, so the environment can be provisioned again under the same name at once. true: a deleted vault and its secrets stay recoverable for the soft-delete retention (90 days) and nobody can purge them; azd down --purge then leaves the vault soft-deleted and its name taken until that period ends; once on, it can never be turned off. Use true for production.')
param enablePurgeProtection bool = false

@description('Object id of the deploying user or service principal (azd fills AZURE_PRINCIPAL_ID); it gets Key Vault Secrets Officer on the vault to store the credentials. Empty: no such role assignment.')
param principalId string = ''

@allowed([ 'User', 'ServicePrincipal', 'Group' ])
@description('Kind of principalId (azd fills AZURE_PRINCIPAL_TYPE: User, or ServicePrincipal when logged in as one).')
param principalType string = 'User'

@minLength(3)
@description('Email address that receives every alert (ALERT_EMAIL; azd asks for it when it is not set).')
param alertEmail string

@secure()
@description('Optional webhook URL (Teams, Slack, PagerDuty, ...) that also receives every alert, in the common alert schema (ALERT_WEBHOOK_URL); empty: email only.')
param alertWebhookUrl string = ''

@minValue(1)
@maxValue(729)
@description('Alert when a target\'s current PAT has fewer than this many days left (default 14; keep it below the configuration\'s rotate_before_days, 30 by default, so it means rotation has stopped happening).')
param patDaysLeftThreshold int = 14

@minValue(1)
@maxValue(365)
@description('Alert when the credential that mints a target\'s PATs expires within this many days (default 30; the rotator warns under 30 and fails the target under 7).')
param credentialDaysLeftThreshold int = 30

@minValue(1)
@maxValue(48)
@description('Heartbeat alert: fire when no pat-rotator.timer record arrived for this many hours. Default: two timer periods (2 x rotationPeriodHours = 12 h); at most 48 (the longest window a log alert may query).')
param heartbeatWindowHours int = 2 * rotationPeriodHours

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var tags = { 'azd-env-name': environmentName }
var queueName = 'pat-rotations'
var deploymentContainer = 'app-package-${resourceToken}'
// Key Vault events that Event Grid could not deliver (after 30 attempts or 24 h) land here.
var deadLetterContainerName = 'eventgrid-deadletter'
var keyVaultName = empty(existingKeyVaultName) ? 'kv-${resourceToken}' : existingKeyVaultName
// The vault's URL from its name (no trailing slash), known before the vault exists.
var keyVaultUrl = 'https://${keyVaultName}${environment().suffixes.keyvaultDns}'

var roles = {
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageBlobDataReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${resourceToken}'
  location: location
  tags: tags
}

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${resourceToken}'
  location: location
  tags: tags
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: 30
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${resourceToken}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
    DisableLocalAuth: true
  }
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'st${resourceToken}'
  location: location
  tags: tags
  // checkov:skip=CKV_AZURE_35: the Flex Consumption app has no virtual network and reaches its storage (host, lock blobs, queue, package) over the public endpoint; shared keys are off, every access is Entra ID RBAC
  // checkov:skip=CKV_AZURE_206: LRS on purpose: the account holds only lock blobs (short leases), the fan-out queue and the deployment package, all recreated by a run or a deploy
  // checkov:skip=CKV_AZURE_43: the name is 'st' plus the 13-character uniqueString token: 15 lowercase letters and digits, within the rules; checkov cannot evaluate the interpolation
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource packageContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainer
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deadLetterContainerName
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource queue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: queueName
}

resource newVault 'Microsoft.KeyVault/vaults@2023-07-01' = if (empty(existingKeyVaultName)) {
  name: keyVaultName
  location: location
  tags: tags
  // checkov:skip=CKV_AZURE_110: purge protection is the enablePurgeProtection parameter, off by default so that azd down --purge can remove the environment; set it true for production
  // checkov:skip=CKV_AZURE_42: soft delete is always on; purge protection, the other half of this check, is the enablePurgeProtection parameter (see CKV_AZURE_110)
  // checkov:skip=CKV_AZURE_109: the Flex Consumption app has no virtual network and no fixed outbound addresses, so a firewall would lock it out; access is Entra ID RBAC only
  // checkov:skip=CKV_AZURE_189: public network access is how the app (no virtual network) and the deployer reach the vault; access is Entra ID RBAC only
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    // Key Vault accepts only true here (purge protection cannot be turned off): leave it unset for false.
    enablePurgeProtection: enablePurgeProtection ? true : null
    publicNetworkAccess: 'Enabled'
  }
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-${resourceToken}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { tier: 'FlexConsumption', name: 'FC1' }
  // checkov:skip=CKV_AZURE_225: a timer every few hours whose runs are idempotent and resumable; a zone outage delays a rotation by one run, and zone redundancy limits the regions
  properties: { reserved: true }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: 'func-${resourceToken}'
  location: location
  // checkov:skip=CKV_AZURE_222: the HTTP API (function keys) and Event Grid's delivery to key_vault_events need the public endpoint
  // checkov:skip=CKV_AZURE_17: Event Grid delivers without a client certificate and the API authenticates with function keys; requiring certificates would drop the events
  tags: union(tags, { 'azd-service-name': 'rotator' })
  // checkov:skip=CKV_AZURE_18: HTTP/2 buys nothing for a handful of API calls and event deliveries a day; left at the platform default
  // checkov:skip=CKV_AZURE_67: the Function App variant of CKV_AZURE_18, same reason
  kind: 'functionapp,linux'
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales to zero between runs; an idle always-ready instance for a timer every few hours is cost without benefit
  // checkov:skip=CKV_AZURE_213: a health-check path applies to App Service instances; Flex Consumption manages its instances itself
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identity.id}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainer}'
          authentication: { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: identity.id }
        }
      }
      scaleAndConcurrency: { maximumInstanceCount: 40, instanceMemoryMB: 2048 }
      runtime: { name: 'python', version: '3.11' }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      appSettings: [
        { name: 'AzureWebJobsStorage__accountName', value: storage.name }
        // The service URIs as the storage account reports them, so a sovereign cloud's suffix is right;
        // the host and the rotator use them before the account name.
        { name: 'AzureWebJobsStorage__blobServiceUri', value: storage.properties.primaryEndpoints.blob }
        { name: 'AzureWebJobsStorage__queueServiceUri', value: storage.properties.primaryEndpoints.queue }
        { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
        { name: 'AzureWebJobsStorage__clientId', value: identity.properties.clientId }
        { name: 'AZURE_CLIENT_ID', value: identity.properties.clientId }
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: insights.properties.ConnectionString }
        { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${identity.properties.clientId};Authorization=AAD' }
        { name: 'ROTATION_CONFIG', value: rotationConfig }
        { name: 'ROTATION_KEY_VAULT_URL', value: keyVaultUrl }
        { name: 'ROTATION_SCHEDULE', value: rotationSchedule }
        { name: 'ROTATION_QUEUE', value: queueName }
        { name: 'ROTATION_FANOUT_THRESHOLD', value: string(fanoutThreshold) }
      ]
    }
  }
}

resource vaultSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, identity.id, roles.keyVaultSecretsOfficer)
  scope: vault
  dependsOn: [ newVault ]
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
  }
}

resource deployerSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(principalId)) {
  name: guid(vault.id, principalId, roles.keyVaultSecretsOfficer)
  scope: vault
  dependsOn: [ newVault ]
  properties: {
    principalId: principalId
    principalType: principalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
  }
}

resource blobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
  }
}

resource queueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
  }
}

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(insights.id, identity.id, roles.monitoringMetricsPublisher)
  scope: insights
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}

// The vault's system topic. Its system-assigned identity writes undeliverable events to the
// dead-letter container (and nothing else). The subscription to key_vault_events is deployed after
// the code (event-subscription.bicep, by the postdeploy hook): Event Grid refuses a subscription to
// a function that does not exist yet.
resource vaultEvents 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: 'evgt-${resourceToken}'
  location: location
  tags: tags
  dependsOn: [ newVault ]
  identity: { type: 'SystemAssigned' }
  properties: {
    source: vault.id
    topicType: 'Microsoft.KeyVault.vaults'
  }
}

resource deadLetterWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterContainer.id, vaultEvents.id, roles.storageBlobDataContributor)
  scope: deadLetterContainer
  properties: {
    principalId: vaultEvents.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
  }
}

// The deployer reads dead-lettered events (az storage blob list/download --auth-mode login).
resource deployerDeadLetterReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(principalId)) {
  name: guid(deadLetterContainer.id, principalId, roles.storageBlobDataReader)
  scope: deadLetterContainer
  properties: {
    principalId: principalId
    principalType: principalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataReader)
  }
}

module alerts 'app/alerts.bicep' = {
  name: 'alerts-${resourceToken}'
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    workspaceId: logs.id
    alertEmail: alertEmail
    alertWebhookUrl: alertWebhookUrl
    patDaysLeftThreshold: patDaysLeftThreshold
    credentialDaysLeftThreshold: credentialDaysLeftThreshold
    heartbeatWindowHours: heartbeatWindowHours
  }
}

module dashboard 'app/workbook.bicep' = {
  name: 'workbook-${resourceToken}'
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    workspaceId: logs.id
  }
}

// Outputs are azd environment values (azd env get-value NAME).
@description('The Function App\'s name (az functionapp keys list, func azure functionapp publish).')
output FUNCTION_APP_NAME string = app.name

@description('The Function App\'s base URL (the HTTP API is under /api).')
output FUNCTION_APP_URL string = 'https://${app.properties.defaultHostName}'

@description('The Key Vault\'s name (az keyvault secret set --vault-name).')
output KEY_VAULT_NAME string = keyVaultName

@description('The Key Vault\'s URL, also the app setting ROTATION_KEY_VAULT_URL (key_vault_url for the CLI).')
output KEY_VAULT_URL string = keyVaultUrl

@description('Client id of the app\'s user-assigned identity (AZURE_CLIENT_ID in the app; it needs nothing in Databricks: it reads credentials from Key Vault).')
output IDENTITY_CLIENT_ID string = identity.properties.clientId

@description('Object (principal) id of the app\'s identity, the one holding Key Vault Secrets Officer on the vault.')
output IDENTITY_PRINCIPAL_ID string = identity.properties.principalId

@description('The app\'s storage account (lock blobs, fan-out queue, deployment package, dead-lettered events).')
output STORAGE_ACCOUNT_NAME string = storage.name

@description('The Key Vault\'s Event Grid system topic; the postdeploy hook subscribes key_vault_events to it.')
output EVENT_GRID_TOPIC_NAME string = vaultEvents.name

@description('Blob container of the storage account where Event Grid puts the Key Vault events it could not deliver.')
output DEAD_LETTER_CONTAINER string = deadLetterContainer.name

@description('The action group every alert notifies (alertEmail, alertWebhookUrl).')
output ALERT_ACTION_GROUP string = alerts.outputs.actionGroupName

@description('The dashboard (an Azure Monitor workbook) in the portal: every target\'s days left, outcomes, heals, failures and the timer\'s heartbeat.')
output DASHBOARD_URL string = '${environment().portal}/#@${tenant().tenantId}/resource${dashboard.outputs.workbookId}'

@description('The dashboard\'s name in Monitor > Workbooks.')
output DASHBOARD_NAME string = dashboard.outputs.workbookName
