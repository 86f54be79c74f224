// The dashboard: an Azure Monitor workbook over the rotator's telemetry (rotation/telemetry.py) in
// the Log Analytics workspace: every target's PAT and credential days left, its last outcome, heals
// and failures, outcomes over time, and the timer's heartbeat. The panels are in workbook.json (the
// workbook's own format); their queries read AppTraces/Properties like the alert rules, and
// tests/test_infra.py fails when one names a field or an event the code does not write.
targetScope = 'resourceGroup'

@description('Azure region of the workbook resource.')
param location string

@description('Tags of every resource.')
param tags object

@description('The deployment\'s resource token: the workbook is named pat-rotator (<token>).')
param resourceToken string

@description('Resource id of the Log Analytics workspace that holds AppTraces (every panel queries it).')
param workspaceId string

// The panels name the workspace by this placeholder; it is replaced with workspaceId here.
var workspacePlaceholder = '__WORKSPACE_ID__'

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  // A workbook's name must be a GUID: one per resource group and environment.
  name: guid(resourceGroup().id, 'pat-rotator-workbook', resourceToken)
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'pat-rotator (${resourceToken})'
    category: 'workbook'
    sourceId: workspaceId
    serializedData: replace(loadTextContent('workbook.json'), workspacePlaceholder, workspaceId)
  }
}

@description('Resource id of the workbook.')
output workbookId string = workbook.id

@description('Display name of the workbook (Monitor > Workbooks lists it under this name).')
output workbookName string = workbook.properties.displayName
