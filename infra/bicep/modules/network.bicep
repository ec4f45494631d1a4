// Private networking, on unless a deployment takes the allowPublicNetworkAccess opt-out (main.bicep): the function
// app joins a VNet and reaches the platform account and Key Vault through private endpoints only. The ingest
// account stays public (partners upload from their own networks with SAS links), and Event Grid still reaches the
// function over its public HTTPS endpoint: a webhook delivery is inbound to the app, not outbound from the VNet, so
// VNet integration does not affect it (docs/deploy.md).
param location string
param tags object
param name string
param platformStorageId string
param keyVaultId string

// One private endpoint, and one private DNS zone, per service the function app reaches privately.
var endpoints = [
  { name: 'blob', target: platformStorageId, group: 'blob', zone: 'privatelink.blob.${environment().suffixes.storage}' }
  { name: 'queue', target: platformStorageId, group: 'queue', zone: 'privatelink.queue.${environment().suffixes.storage}' }
  { name: 'table', target: platformStorageId, group: 'table', zone: 'privatelink.table.${environment().suffixes.storage}' }
  { name: 'vault', target: keyVaultId, group: 'vault', zone: 'privatelink.vaultcore.azure.net' }
]

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    addressSpace: { addressPrefixes: [ '10.40.0.0/16' ] }
    subnets: [
      {
        name: 'app'
        properties: {
          addressPrefix: '10.40.1.0/24'
          delegations: [ { name: 'flex', properties: { serviceName: 'Microsoft.App/environments' } } ]
        }
      }
      {
        name: 'private-endpoints'
        properties: { addressPrefix: '10.40.2.0/24', privateEndpointNetworkPolicies: 'Disabled' }
      }
    ]
  }
}

resource zones 'Microsoft.Network/privateDnsZones@2024-06-01' = [for endpoint in endpoints: {
  name: endpoint.zone
  location: 'global'
  tags: tags
}]

resource zoneLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2024-06-01' = [for i in range(0, length(endpoints)): {
  parent: zones[i]
  name: '${name}-link'
  location: 'global'
  properties: { virtualNetwork: { id: vnet.id }, registrationEnabled: false }
}]

resource privateEndpoints 'Microsoft.Network/privateEndpoints@2024-05-01' = [for endpoint in endpoints: {
  name: '${name}-pe-${endpoint.name}'
  location: location
  tags: tags
  properties: {
    subnet: { id: vnet.properties.subnets[1].id }
    privateLinkServiceConnections: [
      { name: endpoint.name, properties: { privateLinkServiceId: endpoint.target, groupIds: [ endpoint.group ] } }
    ]
  }
}]

resource dnsGroups 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-05-01' = [for i in range(0, length(endpoints)): {
  parent: privateEndpoints[i]
  name: 'default'
  properties: {
    privateDnsZoneConfigs: [ { name: endpoints[i].name, properties: { privateDnsZoneId: zones[i].id } } ]
  }
}]

output appSubnetId string = vnet.properties.subnets[0].id
