// The function app on Flex Consumption: Python, a user-assigned identity, identity-based AzureWebJobsStorage,
// code deployed from a private container of the platform account, optional VNet integration.
param location string
param tags object
param planName string
param appName string
param identityId string
param identityClientId string
param platformStorageName string
param ingestStorageName string
param keyVaultUri string
@description('The Key Vault key that signs audit checkpoints.')
param auditKeyName string
param appInsightsConnectionString string
@allowed([ '3.11', '3.12' ])
param pythonVersion string = '3.11'
@allowed([ 512, 2048, 4096 ])
param instanceMemoryMB int = 2048
param maximumInstanceCount int = 40
param policyFile string
param subnetId string = ''

var platformBlob = 'https://${platformStorageName}.blob.${environment().suffixes.storage}'

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { tier: 'FlexConsumption', name: 'FC1' }
  properties: {
    // checkov:skip=CKV_AZURE_225:Flex Consumption zone redundancy is not offered in every allowed region (ukwest has no availability zones); Event Grid retries undelivered uploads for 24 hours.
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: appName
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: { type: 'UserAssigned', userAssignedIdentities: { '${identityId}': {} } }
  properties: {
    // checkov:skip=CKV_AZURE_17:Callers are Event Grid and administrators behind App Service authentication; client certificates would shut Event Grid out.
    // checkov:skip=CKV_AZURE_222:Event Grid delivers BlobCreated events to the app's public webhook; every HTTP function also needs a function key and an App Service authentication role.
    // checkov:skip=CKV_AZURE_212:Flex Consumption scales from zero per event; there is no instance minimum to fail over between.
    // checkov:skip=CKV_AZURE_213:Flex Consumption manages instance health itself; the App Service health check applies to dedicated plans.
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    virtualNetworkSubnetId: empty(subnetId) ? null : subnetId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${platformBlob}/app-package'
          authentication: { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: identityId }
        }
      }
      scaleAndConcurrency: { maximumInstanceCount: maximumInstanceCount, instanceMemoryMB: instanceMemoryMB }
      runtime: { name: 'python', version: pythonVersion }
    }
  }

  resource settings 'config' = {
    name: 'appsettings'
    properties: {
      AzureWebJobsStorage__credential: 'managedidentity'
      AzureWebJobsStorage__clientId: identityClientId
      AzureWebJobsStorage__blobServiceUri: platformBlob
      AzureWebJobsStorage__queueServiceUri: 'https://${platformStorageName}.queue.${environment().suffixes.storage}'
      AzureWebJobsStorage__tableServiceUri: 'https://${platformStorageName}.table.${environment().suffixes.storage}'
      APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
      AZURE_CLIENT_ID: identityClientId
      FDP_POLICY_PATH: policyFile
      FDP_INGEST_STORAGE: ingestStorageName
      FDP_PLATFORM_STORAGE: platformStorageName
      FDP_KEY_VAULT_URL: keyVaultUri
      FDP_ROOT_KEY_SECRET: 'pseudonymisation-root-key'
      FDP_AUDIT_KEY_NAME: auditKeyName
      // The retention run: 02:00 UTC every day (NCRONTAB, evaluated in UTC).
      FDP_RETENTION_SCHEDULE: '0 0 2 * * *'
      FDP_IDENTITY_SCHEDULE: '0 */15 * * * *'
      // Standing reports are refreshed after it: 03:30 UTC every day.
      FDP_REPORTS_SCHEDULE: '0 30 3 * * *'
    }
  }

  // Deployment only through identity-based publishing (azd uses the OneDeploy API with Entra ID).
  resource ftp 'basicPublishingCredentialsPolicies' = {
    name: 'ftp'
    properties: { allow: false }
  }
  resource scm 'basicPublishingCredentialsPolicies' = {
    name: 'scm'
    properties: { allow: false }
  }
}

output name string = app.name
output id string = app.id
output hostName string = app.properties.defaultHostName
