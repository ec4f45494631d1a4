// Breach signals (docs/breaches.md): Azure Monitor log search alerts over the Log Analytics workspace that holds
// the app's Application Insights telemetry and the ingest account's blob logs, and one action group that tells
// the people who open a breach. Every query counts rows and names no person: the app's events carry action names,
// statuses and partner ids only (fdp.audit.verify_failed, fdp.ingest.rejected, fdp.admin.call), and the storage
// query never reads caller addresses.
param location string
param tags object
param namePrefix string
param logAnalyticsId string
@description('The ingest account: a SAS write refused there is a partner link used after revocation or expiry.')
param ingestStorageName string
@description('Mailboxes to tell (a role mailbox such as the data protection officer\'s, not a person\'s own).')
param alertEmailAddresses array = []
@minValue(1)
@description('Uploads refused within an hour, across partners, that count as refusal in bulk.')
param refusedUploadsThreshold int = 10
@minValue(1)
@description('Successful access or export calls within 15 minutes that count as a burst.')
param accessBurstThreshold int = 50
@minValue(1)
@description('HTTP 401 and 403 answers within 15 minutes that count as repeated.')
param authFailureThreshold int = 20
@description('The admin actions that read or export data: a burst of them may be data leaving.')
param accessActions array = [
  'extract.create'
  'extract.read'
  'extract.download'
  'report.read'
  'report.run'
  'rights.request.create'
  'rights.request.read'
  'partner.uploads'
  'partner.link.issue'
  'identity.review.list'
  'breach.affected.rows'
]

var ownerRoleId = '8e3af657-a8ff-443c-a75c-2fe8c4bcb635'

// Action groups are global resources: the group holds only where to send an alert (a role and role mailboxes),
// and an alert carries a rule's name and a count, never data.
resource breachTeam 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: '${namePrefix}-breach'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'fdp-breach'
    enabled: true
    emailReceivers: [for (address, i) in alertEmailAddresses: {
      name: 'mailbox-${i}'
      emailAddress: address
      useCommonAlertSchema: true
    }]
    armRoleReceivers: [
      { name: 'subscription-owners', roleId: ownerRoleId, useCommonAlertSchema: true }
    ]
  }
}

resource auditVerifyFailed 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-audit-verify-failed'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Audit chain failed verification'
    description: 'The hourly checkpoint or verify-audit found the audit chain or its signed checkpoints changed or missing entries. Open a breach (category audit_tampering) and run python -m shared.cli verify-audit.'
    severity: 0
    enabled: true
    scopes: [ logAnalyticsId ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    muteActionsDuration: 'PT1H'
    autoMitigate: false
    criteria: {
      allOf: [
        {
          query: 'AppTraces | where Message startswith "fdp.audit.verify_failed"'
          timeAggregation: 'Count'
          operator: 'GreaterThanOrEqual'
          threshold: 1
          failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
        }
      ]
    }
    actions: { actionGroups: [ breachTeam.id ] }
  }
}

resource uploadsRefusedInBulk 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-uploads-refused-in-bulk'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Uploads refused in bulk'
    description: 'Many uploads were rejected within an hour: a partner sending the wrong file (data the agreement does not allow) or someone probing the drop zones. Check the receipts and the partners named in the events.'
    severity: 2
    enabled: true
    scopes: [ logAnalyticsId ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    muteActionsDuration: 'PT1H'
    autoMitigate: false
    criteria: {
      allOf: [
        {
          query: 'AppTraces | where Message startswith "fdp.ingest.rejected"'
          timeAggregation: 'Count'
          operator: 'GreaterThanOrEqual'
          threshold: refusedUploadsThreshold
          failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
        }
      ]
    }
    actions: { actionGroups: [ breachTeam.id ] }
  }
}

resource linkUsedAfterRevocation 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-link-used-after-revocation'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Upload link used after revocation'
    description: 'The ingest account refused a write made with a SAS link (403): a revoked or expired link still in use, or a forged one. Find the drop zone in StorageBlobLogs; if the link was revoked because it leaked, open a breach (category upload_link_misuse).'
    severity: 1
    enabled: true
    scopes: [ logAnalyticsId ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    muteActionsDuration: 'PT1H'
    autoMitigate: false
    criteria: {
      allOf: [
        {
          query: 'StorageBlobLogs | where AccountName == "${ingestStorageName}" and AuthenticationType == "SAS" and StatusCode == 403 | where Category == "StorageWrite" | project TimeGenerated, OperationName, StatusText'
          timeAggregation: 'Count'
          operator: 'GreaterThanOrEqual'
          threshold: 1
          failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
        }
      ]
    }
    actions: { actionGroups: [ breachTeam.id ] }
  }
}

resource accessBurst 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-access-burst'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Burst of access or export activity'
    description: 'More successful access, report, extract or access-pack calls within 15 minutes than the platform sees in normal work. Read the audit log for who made them (admin.* entries).'
    severity: 2
    enabled: true
    scopes: [ logAnalyticsId ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    muteActionsDuration: 'PT1H'
    autoMitigate: false
    criteria: {
      allOf: [
        {
          query: 'AppTraces | where Message startswith "fdp.admin.call" | extend action = extract(@"action=(\\S+)", 1, Message), status = toint(extract(@"status=(\\d+)", 1, Message)) | where status < 400 and action in (dynamic(${string(accessActions)}))'
          timeAggregation: 'Count'
          operator: 'GreaterThanOrEqual'
          threshold: accessBurstThreshold
          failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
        }
      ]
    }
    actions: { actionGroups: [ breachTeam.id ] }
  }
}

resource repeatedAuthFailures 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-repeated-401-403'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Repeated 401 and 403 answers'
    description: 'The function app refused many calls within 15 minutes (no sign-in, a wrong role, or a bad function key): someone trying the admin API. The audit log names each refused call.'
    severity: 1
    enabled: true
    scopes: [ logAnalyticsId ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    muteActionsDuration: 'PT1H'
    autoMitigate: false
    criteria: {
      allOf: [
        {
          query: 'AppRequests | where ResultCode in ("401", "403")'
          timeAggregation: 'Count'
          operator: 'GreaterThanOrEqual'
          threshold: authFailureThreshold
          failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
        }
      ]
    }
    actions: { actionGroups: [ breachTeam.id ] }
  }
}

output actionGroupId string = breachTeam.id
