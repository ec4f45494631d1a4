// Azure Policy makes the region promise structural: nothing can be created in this resource group outside the
// allowed locations, whoever deploys it and however.
targetScope = 'resourceGroup'

param allowedLocations array

// Built-in definition "Allowed locations".
var allowedLocationsDefinition = '/providers/Microsoft.Authorization/policyDefinitions/e56962a6-4747-49cd-b67b-bf8b01975c4c'

resource assignment 'Microsoft.Authorization/policyAssignments@2024-04-01' = {
  name: 'fdp-allowed-locations'
  properties: {
    displayName: 'Family Data Platform: resources only in the programme\'s data residency region'
    policyDefinitionId: allowedLocationsDefinition
    enforcementMode: 'Default'
    parameters: { listOfAllowedLocations: { value: allowedLocations } }
    nonComplianceMessages: [ { message: 'The privacy notice promises data residency in this region only.' } ]
  }
}
