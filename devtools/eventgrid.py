"""Local stand-in for Event Grid: turns each blob waiting in a drop zone into the BlobCreated event that Event
Grid would send, and delivers it to the ingest function.

Azurite has no Event Grid. By default the events are delivered in process, the way Microsoft documents unit
tests of the Python v2 model (`app.get_functions()` and `get_user_function()` with a real `EventGridEvent`).
With `--post URL`, they go to a running Functions host instead (Core Tools: `func start`), at its Event Grid
webhook: http://localhost:7071/runtime/webhooks/EventGrid?functionName=ingest

    python -m devtools.eventgrid            # deliver every waiting upload once
    python -m devtools.eventgrid --post URL # send them to `func start`
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import uuid
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from shared.ingest.events import blob_created_event
from shared.platform.settings import Settings
from shared.platform.storage import Storage


def waiting_uploads(storage: Storage) -> list[dict[str, Any]]:
    """One BlobCreated event (Event Grid schema) for every blob in every drop-* container."""
    events = []
    for container in storage.ingest_blobs.list_containers(name_starts_with="drop-"):
        client = storage.drop_zone(container.name)
        for blob in client.list_blobs():
            events.append(_with_envelope(blob_created_event(
                container.name, blob.name, blob.etag, blob.size, f"{client.url}/{blob.name}")))
    return events


def _with_envelope(event: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "topic": "/subscriptions/local/resourceGroups/local/providers/"
            "Microsoft.Storage/storageAccounts/devstoreaccount1", "eventTime": datetime.now(UTC).isoformat(),
            **event}


@lru_cache(maxsize=1)
def indexed_functions() -> dict[str, Any]:
    """The app's functions by name, indexed once as the host does (indexing the same app twice is refused)."""
    from function_app import app

    functions: dict[str, Any] = {}
    for function in app.get_functions():
        name = function.get_function_name()
        if name is None:
            raise RuntimeError(f"a function of the app has no name: {function}")
        functions[name] = function
    return functions


def deliver_in_process(event: dict[str, Any]) -> None:
    """Call the ingest function exactly as the Functions host would, with a real EventGridEvent."""
    import azure.functions as func

    indexed_functions()["ingest"].get_user_function()(func.EventGridEvent(
        id=event["id"], data=event["data"], topic=event["topic"], subject=event["subject"],
        event_type=event["eventType"], event_time=datetime.fromisoformat(event["eventTime"]),
        data_version=event.get("dataVersion", "")))


def post_to_host(event: dict[str, Any], url: str) -> None:
    """Send the event to a Functions host's Event Grid webhook, as Event Grid does."""
    import urllib.request

    if not url.startswith(("http://", "https://")):
        raise ValueError("--post takes an http(s) URL")
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url, data=json.dumps([event]).encode(), method="POST",
        headers={"Content-Type": "application/json", "aeg-event-type": "Notification"})
    with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 - scheme checked above
        response.read()


def watch(storage: Storage, stop: threading.Event, interval: float = 0.5) -> None:
    """Deliver each new upload once, until `stop` is set: Event Grid's part, for local runs and browser tests."""
    delivered: set[str] = set()
    while not stop.is_set():
        for event in waiting_uploads(storage):
            key = f"{event['subject']}|{event['data']['eTag']}"
            if key not in delivered:
                delivered.add(key)
                try:
                    deliver_in_process(event)
                except Exception:  # Event Grid would retry: so do we, on the next pass
                    delivered.discard(key)
                    logging.exception("delivery failed; retrying")
        stop.wait(interval)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--post", metavar="URL", help="send to a running Functions host instead of in process")
    args = parser.parse_args()
    events = waiting_uploads(Storage.from_settings(Settings.from_env()))
    for event in events:
        post_to_host(event, args.post) if args.post else deliver_in_process(event)
    print(f"delivered {len(events)} BlobCreated event(s)")


if __name__ == "__main__":
    main()
