#!/usr/bin/env sh
# azd post-deploy hook: subscribe the ingest function to BlobCreated events from every drop-* container.
# It runs after the code is deployed because the webhook needs the function app's Event Grid system key,
# which exists only once the app has indexed its Event Grid trigger. Safe to run again.
set -eu

: "${AZURE_RESOURCE_GROUP:?run through azd, or export the outputs of main.bicep}"
: "${FUNCTION_APP_NAME:?}" "${FUNCTION_APP_HOSTNAME:?}" "${EVENTGRID_TOPIC_NAME:?}" "${INGEST_STORAGE_NAME:?}"

echo "Waiting for the function app's Event Grid system key ..."
key=""
for attempt in 1 2 3 4 5 6 7 8 9 10 11 12; do
  key=$(az functionapp keys list --resource-group "$AZURE_RESOURCE_GROUP" --name "$FUNCTION_APP_NAME" \
        --query "systemKeys.eventgrid_extension" --output tsv 2>/dev/null || true)
  [ -n "$key" ] && break
  sleep 10
done
[ -n "$key" ] || { echo "no eventgrid_extension key yet: is the code deployed?" >&2; exit 1; }

endpoint="https://${FUNCTION_APP_HOSTNAME}/runtime/webhooks/eventgrid?functionName=ingest&code=${key}"
az deployment group create --resource-group "$AZURE_RESOURCE_GROUP" --name drop-zones-to-ingest \
  --template-file "$(dirname "$0")/../bicep/modules/eventgrid-subscription.bicep" \
  --parameters systemTopicName="$EVENTGRID_TOPIC_NAME" ingestStorageName="$INGEST_STORAGE_NAME" \
               endpointUrl="$endpoint" \
  --only-show-errors --output none
echo "Event Grid subscription drop-zones-to-ingest is in place."
