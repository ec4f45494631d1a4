"""Event Grid's BlobCreated event, reduced to what the pipeline needs."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

BLOB_CREATED = "Microsoft.Storage.BlobCreated"
_SUBJECT = re.compile(r"^/blobServices/default/containers/(?P<container>[^/]+)/blobs/(?P<blob>.+)$")


@dataclass(frozen=True)
class BlobCreated:
    container: str
    blob: str
    etag: str | None = None
    size: int | None = None

    @property
    def ingest_id(self) -> str:
        """Stable for one upload: the same event delivered twice gets the same id; a new upload, a new one."""
        return hashlib.sha256(f"{self.container}/{self.blob}|{self.etag or ''}".encode()).hexdigest()[:32]


def bare_etag(etag: str | None) -> str | None:
    """Event Grid sends ETags bare, the blob API quoted: compare them bare."""
    return etag.strip('"') or None if etag else None


def parse_blob_created(event_type: str, subject: str, data: dict[str, Any]) -> BlobCreated | None:
    """None for events the pipeline does not handle (other event types, or subjects it cannot read)."""
    if event_type != BLOB_CREATED:
        return None
    match = _SUBJECT.match(subject or "")
    if not match:
        return None
    size = data.get("contentLength")
    return BlobCreated(match["container"], match["blob"], bare_etag(data.get("eTag")),
                       int(size) if isinstance(size, int | str) and str(size).isdigit() else None)


def blob_created_event(container: str, blob: str, etag: str, size: int, url: str) -> dict[str, Any]:
    """The event Event Grid sends for a new block blob (schema: Event Grid event schema, BlobCreated)."""
    return {
        "subject": f"/blobServices/default/containers/{container}/blobs/{blob}",
        "eventType": BLOB_CREATED,
        "dataVersion": "",
        "data": {"api": "PutBlockList", "eTag": etag, "contentType": "application/octet-stream",
                 "contentLength": size, "blobType": "BlockBlob", "url": url, "sequencer": "0"},
    }
