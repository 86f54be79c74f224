// Alerts on the rotator's own telemetry (rotation/telemetry.py): an action group and five
// scheduled-query (log search) alert rules on the Log Analytics workspace behind the
// workspace-based Application Insights resource.
//
// Table: the rules are scoped to the workspace, so they query `AppTraces`, where each record's
// attributes are in `Properties` (the classic `traces` / `customDimensions` schema is what a rule
// scoped to the Application Insights resource would see; it is not used here). Every value in
// `Properties` is a string (the exporter stringifies attributes), hence todouble().
//
// Field names come from rotation.telemetry.Field and the event names from RUN_EVENT / TIMER_EVENT;
// tests/test_infra.py fails when a query names anything else. The queries are checked there, not
// by Azure at deploy time (skipQueryValidation): on a new workspace AppTraces does not exist until
// the first record arrives, and validation would fail the first deployment.
targetScope = 'resourceGroup'

@description('Azure region of the alert rules (the workspace\'s region).')
param location string

@description('Tags of every resource.')
param tags object

@description('The deployment\'s resource token: names are <kind>-<what>-<token>.')
param resourceToken string

@description('Resource id of the Log Analytics workspace that holds AppTraces (the alert rules\' scope).')
param workspaceId string

@description('Email address that receives every alert (the action group\'s email receiver).')
param alertEmail string

@secure()
@description('Optional webhook (Teams/Slack/PagerDuty/...) that also receives every alert in the common alert schema; empty: email only.')
param alertWebhookUrl string = ''

@minValue(1)
@maxValue(729)
@description('Alert when a target\'s current PAT has fewer than this many days left (pat_days_left of its latest record).')
param patDaysLeftThreshold int = 14

@minValue(1)
@maxValue(365)
@description('Alert when the credential that mints a target\'s PATs expires within this many days (credential_days_left of its latest record).')
param credentialDaysLeftThreshold int = 30

@minValue(1)
@maxValue(48)
@description('Heartbeat: alert when no pat-rotator.timer record arrived for this many hours. Keep it two periods of the timer schedule (12 for every 6 h).')
param heartbeatWindowHours int = 12

@description('When this deployment ran (UTC, ISO 8601 round-trip format); the heartbeat alert stays quiet for one heartbeat window after it, while a fresh app has not run its timer yet. Leave the default.')
param deployedAt string = utcNow('o')

var failedQuery = '''
AppTraces
| where Message == "pat-rotator.run"
| where tostring(Properties.outcome) == "failed"
| summarize failures = count(), arg_max(TimeGenerated, Properties) by target = tostring(Properties.target)
| project target, failures, error_kind = tostring(Properties.error_kind), error_step = tostring(Properties.error_step), trigger = tostring(Properties.trigger), reason = tostring(Properties.reason)
'''

var patExpiringQuery = format('''
AppTraces
| where Message == "pat-rotator.run"
| where isnotempty(tostring(Properties.pat_days_left))
| summarize arg_max(TimeGenerated, Properties) by target = tostring(Properties.target)
| extend pat_days_left = todouble(Properties.pat_days_left)
| where pat_days_left < {0}
| project target, pat_days_left, outcome = tostring(Properties.outcome), reason = tostring(Properties.reason)
''', patDaysLeftThreshold)

var healedQuery = '''
AppTraces
| where Message == "pat-rotator.run"
| where tostring(Properties.outcome) == "healed" or tostring(Properties.outcome) == "mismatch"
| summarize heals = count(), arg_max(TimeGenerated, Properties) by target = tostring(Properties.target)
| project target, heals, token_id = tostring(Properties.token_id), previous_token_id = tostring(Properties.previous_token_id), reason = tostring(Properties.reason)
'''

var credentialExpiringQuery = format('''
AppTraces
| where Message == "pat-rotator.run"
| where isnotempty(tostring(Properties.credential_days_left))
| summarize arg_max(TimeGenerated, Properties) by target = tostring(Properties.target)
| extend credential_days_left = todouble(Properties.credential_days_left)
| where credential_days_left < {0}
| project target, credential_days_left, outcome = tostring(Properties.outcome), reason = tostring(Properties.reason)
''', credentialDaysLeftThreshold)

var timerSilentQuery = format('''
AppTraces
| where TimeGenerated > ago({0}h)
| where Message == "pat-rotator.timer"
| summarize beats = count()
| where beats == 0 and now() > todatetime("{1}") + {0}h
''', heartbeatWindowHours, deployedAt)

// Each rule fires when its query returns a row (per target where `dimensions` names `target`).
// Stateful (autoMitigate): one notification when a condition starts, one when it is over.
var rules = [
  {
    name: 'rotation-failed'
    displayName: 'pat-rotator: rotation failed'
    description: 'A target\'s run ended with outcome failed in the last hour (any trigger). The alert names the target; the query shows error_kind, error_step and the reason, which says what to do. Resolves once an hour passes without a failure.'
    severity: 1
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    query: failedQuery
    dimensions: [ 'target' ]
  }
  {
    name: 'pat-expiring'
    displayName: 'pat-rotator: PAT close to expiry'
    description: 'A target\'s current PAT has fewer days left than the threshold (its latest record in the last 2 days): rotations have not been happening. Resolves when a new PAT is promoted.'
    severity: 2
    evaluationFrequency: 'PT1H'
    windowSize: 'P2D'
    query: patExpiringQuery
    dimensions: [ 'target' ]
  }
  {
    name: 'pat-healed'
    displayName: 'pat-rotator: PAT healed after outside revocation or edited tags'
    description: 'A health check found a target\'s current PAT gone (revoked outside the rotator, or unused for 90 days) and minted a new one: its consumers were broken until then. Find who revoked it. Outcome mismatch: the Key Vault tags disagreed with Databricks (edited by hand, a bad restore); nothing was revoked and a fresh PAT replaced it: find who edited them. Resolves an hour after the last heal.'
    severity: 2
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    query: healedQuery
    dimensions: [ 'target' ]
  }
  {
    name: 'credential-expiring'
    displayName: 'pat-rotator: credential close to expiry'
    description: 'The credential that mints a target\'s PATs (client secret, OAuth secret or admin PAT in Key Vault) expires within the threshold; under 7 days the rotator fails the target. Renew it and store it with az keyvault secret set. Resolves when the renewed expiry is reported.'
    severity: 2
    evaluationFrequency: 'PT1H'
    windowSize: 'P2D'
    query: credentialExpiringQuery
    dimensions: [ 'target' ]
  }
  {
    name: 'timer-silent'
    displayName: 'pat-rotator: timer not running'
    description: 'No pat-rotator.timer heartbeat for the heartbeat window (two timer periods): nothing is being rotated or health-checked. Check the Function App is running, its ROTATION_SCHEDULE, and its logs. Resolves with the next heartbeat.'
    severity: 1
    evaluationFrequency: 'PT1H'
    windowSize: 'P2D'
    query: timerSilentQuery
    dimensions: []
  }
]

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: 'ag-${resourceToken}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'patrotator'
    enabled: true
    emailReceivers: [
      {
        name: 'email'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
    webhookReceivers: empty(alertWebhookUrl) ? [] : [
      {
        name: 'webhook'
        serviceUri: alertWebhookUrl
        useCommonAlertSchema: true
      }
    ]
  }
}

resource alertRules 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [for rule in rules: {
  name: 'alert-${rule.name}-${resourceToken}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: rule.displayName
    description: rule.description
    severity: rule.severity
    enabled: true
    scopes: [ workspaceId ]
    evaluationFrequency: rule.evaluationFrequency
    windowSize: rule.windowSize
    autoMitigate: true
    skipQueryValidation: true
    criteria: {
      allOf: [
        {
          query: rule.query
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [for column in rule.dimensions: {
            name: column
            operator: 'Include'
            values: [ '*' ]
          }]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [ actionGroup.id ]
    }
  }
}]

@description('Name of the action group every alert notifies.')
output actionGroupName string = actionGroup.name

@description('Names of the five alert rules.')
output alertRuleNames array = [for rule in rules: 'alert-${rule.name}-${resourceToken}']
