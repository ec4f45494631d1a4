"""Helpers the tests share: upload like a partner, deliver like Event Grid, read storage back."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import pyarrow.parquet as pq
from azure.core.exceptions import ResourceExistsError

from devtools.eventgrid import deliver_in_process, waiting_uploads
from shared.identity.index import RECORDS, PersonIndex
from shared.identity.keys import LocalKeySource
from shared.platform.storage import CURATED, LINKAGE, PLATFORM_CONTAINERS, PLATFORM_TABLES, RECEIPTS, Storage


def upload(storage: Storage, partner: str, blob_name: str, content: bytes) -> None:
    """Put a file in a partner's drop zone, as their upload link would."""
    container = f"drop-{partner}"
    with contextlib.suppress(ResourceExistsError):
        storage.ingest_blobs.create_container(container)
    storage.raw_blob(container, blob_name).upload_blob(content)


def deliver_all(storage: Storage) -> list[dict[str, Any]]:
    """Turn every waiting upload into its BlobCreated event and deliver it to the ingest function."""
    events = waiting_uploads(storage)
    for event in events:
        deliver_in_process(event)
    return events


def raw_blobs(storage: Storage) -> list[str]:
    return [f"{c.name}/{b.name}" for c in storage.ingest_blobs.list_containers(name_starts_with="drop-")
            for b in storage.drop_zone(c.name).list_blobs()]


def curated_files(storage: Storage) -> list[str]:
    return sorted(b.name for b in storage.platform_container(CURATED).list_blobs())


def curated_rows(storage: Storage) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name in curated_files(storage):
        data = storage.platform_blob(CURATED, name).download_blob().readall()
        rows.extend(pq.read_table(io.BytesIO(data)).to_pylist())
    return rows


def person_index(storage: Storage) -> PersonIndex:
    """The person index under the tests' root key (tests.conftest.TEST_ROOT_KEY)."""
    import base64

    from tests.conftest import TEST_ROOT_KEY

    return PersonIndex(storage, LocalKeySource(base64.b64encode(TEST_ROOT_KEY).decode()))


def index_records(storage: Storage) -> list[dict[str, Any]]:
    """Every record the person index holds (one per stored row), from the linkage store."""
    container = storage.platform_container(LINKAGE)
    rows: list[dict[str, Any]] = []
    for blob in container.list_blobs(name_starts_with=RECORDS):
        rows.extend(pq.read_table(io.BytesIO(container.download_blob(blob.name).readall())).to_pylist())
    return rows


def records_of(storage: Storage, *pseudonyms: str) -> list[dict[str, Any]]:
    """The records of whoever the index resolves these identifier pseudonyms to, after linking."""
    index = person_index(storage)
    index.ensure_linked()
    return index.records_of(index.resolve(set(pseudonyms)))


def receipts(storage: Storage) -> list[dict[str, Any]]:
    container = storage.platform_container(RECEIPTS)
    return [json.loads(container.download_blob(b.name).readall()) for b in container.list_blobs()]


def ledger_rows(storage: Storage) -> list[dict[str, Any]]:
    return list(storage.table("ingests").list_entities())


def everything_stored(storage: Storage, leave_out: tuple[str, ...] = ()) -> str:
    """All platform storage as text: every blob (Parquet decoded), every table entity; less the containers named."""
    parts: list[str] = []
    for container in PLATFORM_CONTAINERS:
        if container in leave_out:
            continue
        client = storage.platform_container(container)
        for blob in client.list_blobs():
            data = client.download_blob(blob.name).readall()
            parts.append(blob.name)
            if blob.name.endswith(".parquet"):
                table = pq.read_table(io.BytesIO(data))
                parts.append(json.dumps(table.to_pylist(), default=str))
                parts.append(json.dumps({k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}))
            else:
                parts.append(data.decode("utf-8", "replace"))
    for table in PLATFORM_TABLES:
        for entity in storage.table(table).list_entities():
            parts.append(json.dumps(dict(entity), default=str))
    return "\n".join(parts)


def principal(caller_id: str, *roles: str) -> dict[str, str]:
    """The header App Service authentication sets for a signed-in caller with these app roles."""
    from shared.platform.auth import encode_principal

    return {"x-ms-client-principal": encode_principal(caller_id, list(roles))}


ADMIN = principal("admin-object-id", "Platform.Admin")
DPO = principal("dpo-object-id", "DataProtection.Officer")
ANALYST = principal("analyst-object-id", "Analyst")
"""The signed-in callers most tests act as, one per role."""


def http_api(monkeypatch):
    """Call the app's HTTP functions as the Functions host would, with App Service authentication on.
    Returns call(method, path, headers, body) -> (status, JSON body or None, the HttpResponse)."""
    from devtools.localhost import dispatch, http_routes

    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    routes = http_routes()

    def call(method: str, path: str, headers: dict | None = None, body: dict | None = None):
        response = dispatch(routes, method, f"http://localhost/api/{path}", headers or {},
                            json.dumps(body).encode() if body is not None else b"")
        text = response.get_body().decode()
        is_json = response.mimetype in ("application/json", "application/problem+json")
        return response.status_code, (json.loads(text) if text and is_json else None), response

    return call


def rights_request(api: Any, caller: dict[str, str], kind: str, identifiers: list[dict], **extra: Any) -> dict:
    """Submit a rights request through the HTTP function, as the data protection officer's tool would."""
    status, body, response = api("POST", "requests", caller, {"type": kind, "identifiers": identifiers, **extra})
    assert status == 201, body
    assert response.headers["Location"] == f"/api/requests/{body['id']}"
    return body


def finished_request(api: Any, storage: Storage, caller: dict[str, str], request_id: str) -> dict:
    """Poll a request; while it is in progress, run the queued work (the local queue trigger), then poll again."""
    from devtools.queues import drain

    status, body, _ = api("GET", f"requests/{request_id}", caller)
    if status == 202:
        drain(storage)
        status, body, _ = api("GET", f"requests/{request_id}", caller)
    assert status == 200, body
    return body
