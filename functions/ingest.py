"""Event Grid trigger: one BlobCreated subscription serves every drop-<partner> container.

A thin adapter: it reads the event and hands it to the ingest pipeline in shared/. An exception here makes
Event Grid deliver the event again (with back-off, then to the dead-letter container), which is what a
transient storage error needs: the raw file stays in the drop zone until an attempt completes.
"""

import logging

import azure.functions as func

from shared.ingest.events import parse_blob_created
from shared.runtime import ingest_pipeline

bp = func.Blueprint()


@bp.function_name("ingest")
@bp.event_grid_trigger(arg_name="event")
def ingest(event: func.EventGridEvent) -> None:
    blob_created = parse_blob_created(event.event_type, event.subject, event.get_json())
    if blob_created is None:
        logging.warning("ingest: ignored event %s of type %s", event.id, event.event_type)
        return
    outcome = ingest_pipeline().handle(blob_created)
    logging.info("ingest: event %s -> %s (ingest %s)", event.id, outcome.status, outcome.ingest_id)
