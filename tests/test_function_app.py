"""The function app as the Functions host sees it: its functions and bindings, and events it must ignore."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import azure.functions as func

from devtools.eventgrid import indexed_functions
from tests.helpers import ledger_rows, raw_blobs, upload


def test_ingest_is_an_event_grid_trigger():
    [binding] = json.loads(indexed_functions()["ingest"].get_function_json())["bindings"]
    assert binding["type"] == "eventGridTrigger" and binding["direction"] == "IN"


def event(event_type: str, subject: str) -> func.EventGridEvent:
    return func.EventGridEvent(id="1", data={"eTag": "0x1"}, topic="t", subject=subject, event_type=event_type,
                               event_time=datetime.now(UTC), data_version="")


def test_events_that_are_not_uploads_to_a_drop_zone_are_ignored(app_env, storage):
    app_env()
    upload(storage, "family-support-charity", "sessions/a.csv", b"family_ref\r\nX\r\n")
    ingest = indexed_functions()["ingest"].get_user_function()
    ingest(event("Microsoft.Storage.BlobDeleted",
                 "/blobServices/default/containers/drop-family-support-charity/blobs/sessions/a.csv"))
    ingest(event("Microsoft.Storage.BlobCreated", "/blobServices/default/containers/curated/blobs/x.parquet"))
    ingest(event("Microsoft.Storage.BlobCreated", "not a blob subject"))
    assert raw_blobs(storage) == ["drop-family-support-charity/sessions/a.csv"]
    assert ledger_rows(storage) == []


def test_the_app_takes_arrows_memory_from_jemalloc():
    """pyarrow's default allocator kept freed pages, and a large upload's peak memory grew with them (bench/)."""
    code = "import function_app, pyarrow; print(pyarrow.default_memory_pool().backend_name)"
    environment = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=environment)
    assert shown.stdout.strip() == "jemalloc"
