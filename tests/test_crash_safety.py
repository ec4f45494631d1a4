"""Idempotent and crash-safe: a duplicate delivery, or a crash between any two steps followed by a retry, ends
with exactly one copy of the data and one ledger entry; a transient storage error leaves the raw file in place.

The crash is injected through the pipeline's checkpoint hook (an exception raised between two real steps);
everything else is real: Azurite, the SDK clients and the function entry point for the retry."""

from __future__ import annotations

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from devtools import synthetic
from devtools.eventgrid import waiting_uploads
from shared.identity.keys import LocalKeySource
from shared.ingest.events import parse_blob_created
from shared.ingest.pipeline import STEPS, IngestPipeline
from shared.platform.audit import AuditLog
from shared.platform.storage import AUDIT, Storage
from tests.conftest import TEST_ROOT_KEY
from tests.helpers import curated_files, curated_rows, deliver_all, ledger_rows, raw_blobs, receipts, upload


class InjectedCrash(Exception):
    pass


def local_keys() -> LocalKeySource:
    import base64

    return LocalKeySource(base64.b64encode(TEST_ROOT_KEY).decode())


def crash_at(step: str):
    def checkpoint(reached: str) -> None:
        if reached == step:
            raise InjectedCrash(step)
    return checkpoint


def blob_created(storage: Storage):
    [event] = waiting_uploads(storage)
    return event, parse_blob_created(event["eventType"], event["subject"], event["data"])


def ingest_audit_entries(storage: Storage) -> list:
    return [e for e in AuditLog(storage.table(AUDIT)).entries() if e.action.startswith("ingest.")]


def reference_run(app_env, storage, invalid_rate: float = 0.1):
    policy = app_env("achieving-for-children")
    file = synthetic.generate(policy, "afc-early-help", "early-help", rows=40, seed=21, invalid_rate=invalid_rate)
    upload(storage, "afc-early-help", file.blob_name, file.content)
    return policy, file


def partitions(files: list[str]) -> list[str]:
    """The folders of the curated files (their names carry the upload's id, which differs between uploads)."""
    return [name.rsplit("/", 1)[0] for name in files]


def assert_exactly_once(storage: Storage, expected_rows: int, expected_files: list[str]) -> None:
    assert raw_blobs(storage) == []
    assert len(ledger_rows(storage)) == 1
    assert ledger_rows(storage)[0]["status"] == "accepted"
    assert partitions(curated_files(storage)) == partitions(expected_files), "one file per purge month, no copies"
    assert len(curated_rows(storage)) == expected_rows
    assert len(receipts(storage)) == 1
    assert len(ingest_audit_entries(storage)) == 1
    assert AuditLog(storage.table(AUDIT)).verify().ok


@pytest.fixture
def clean_result(app_env, storage):
    """What one uninterrupted ingest of the reference file stores."""
    reference_run(app_env, storage)
    deliver_all(storage)
    return len(curated_rows(storage)), curated_files(storage)


def test_duplicate_delivery_is_harmless(app_env, storage):
    reference_run(app_env, storage)
    [event] = waiting_uploads(storage)
    from devtools.eventgrid import deliver_in_process

    deliver_in_process(event)
    rows, files = len(curated_rows(storage)), curated_files(storage)
    deliver_in_process(event)
    deliver_in_process(event)
    assert_exactly_once(storage, rows, files)


def empty_the_store(storage):
    """Curated files, receipts and every table row gone: the store as before the reference upload."""
    for container in ("curated", "receipts"):
        for blob in storage.platform_container(container).list_blobs():
            storage.platform_blob(container, blob.name).delete_blob()
    for table in storage.platform_tables.list_tables():
        for entity in storage.table(table.name).list_entities():
            storage.table(table.name).delete_entity(entity)


@pytest.mark.parametrize("step", STEPS)
def test_crash_after_each_step_then_retry(app_env, storage, clean_result, step):
    rows, files = clean_result
    empty_the_store(storage)  # start again with the same upload
    policy, _ = reference_run(app_env, storage)

    _, event = blob_created(storage)
    crashing = IngestPipeline(policy, storage, local_keys(), checkpoint=crash_at(step))
    with pytest.raises(InjectedCrash):
        crashing.handle(event)

    deliver_all(storage) if raw_blobs(storage) else IngestPipeline(policy, storage, local_keys()).handle(event)
    assert_exactly_once(storage, rows, files)


def test_transient_storage_error_leaves_the_raw_file_for_the_retry(app_env, storage):
    """The platform account is unreachable (a closed port, no retries): the upload must stay in its drop zone."""
    from devtools.azurite import free_port

    policy, _ = reference_run(app_env, storage, invalid_rate=0)
    _, event = blob_created(storage)
    dead = f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=eA==;" \
           f"BlobEndpoint=http://127.0.0.1:{free_port()}/devstoreaccount1;" \
           f"TableEndpoint=http://127.0.0.1:{free_port()}/devstoreaccount1;"
    broken = Storage(storage.ingest_blobs, BlobServiceClient.from_connection_string(dead, retry_total=0),
                     TableServiceClient.from_connection_string(dead, retry_total=0))
    with pytest.raises(Exception) as failure:
        IngestPipeline(policy, broken, local_keys()).handle(event)
    assert not isinstance(failure.value, InjectedCrash)
    assert len(raw_blobs(storage)) == 1, "the raw file stays for the retry"

    deliver_all(storage)
    assert raw_blobs(storage) == []
    assert receipts(storage)[0]["status"] == "accepted"


def test_a_new_upload_under_the_same_name_is_not_deleted_by_an_old_event(app_env, storage):
    _policy, file = reference_run(app_env, storage, invalid_rate=0)
    [old_event] = waiting_uploads(storage)
    from devtools.eventgrid import deliver_in_process

    deliver_in_process(old_event)
    upload(storage, "afc-early-help", file.blob_name, file.content)  # the partner sends it again
    deliver_in_process(old_event)  # a late duplicate of the first event
    assert len(raw_blobs(storage)) == 1, "the second upload waits for its own event"
    deliver_all(storage)
    assert raw_blobs(storage) == []
    assert len(ledger_rows(storage)) == 2


def test_a_write_failing_among_those_made_at_once_leaves_the_upload_for_its_retry(app_env, storage, clean_result):
    """The curated files, the person index's records and the receipt are written at once: when one of them fails
    (here the linkage container is gone, a real storage error), the others still complete, the error reaches the
    host, the ledger does not commit (a partner is shown a receipt only once it has), and the retry ends with
    exactly one copy."""
    from devtools.eventgrid import deliver_in_process
    from shared.platform.storage import LINKAGE

    rows, files = clean_result
    empty_the_store(storage)
    storage.platform_blobs.delete_container(LINKAGE)
    reference_run(app_env, storage)
    event, _ = blob_created(storage)

    with pytest.raises(Exception, match=r"ContainerNotFound|container does not exist"):
        deliver_in_process(event)
    assert [row["status"] for row in ledger_rows(storage)] == ["processing"]
    assert len(raw_blobs(storage)) == 1, "the raw file stays for the retry"

    storage.platform_blobs.create_container(LINKAGE)
    deliver_in_process(event)
    assert_exactly_once(storage, rows, files)
