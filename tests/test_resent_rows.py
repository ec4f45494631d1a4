"""Issue 12, item 7: a re-sent row replaces the stored copy. A dataset's row_key says what makes a row the same row
(identifier columns by pseudonym); the newest upload's copy is kept, the replaced one leaves its curated file (which
keeps its metadata) and the person index, and the receipt counts it. Idempotent and crash-safe: a crash after any
step and a retry, or an old upload delivered late, end with one copy, the newest. The loader checks the row key."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest

from devtools.eventgrid import deliver_in_process, waiting_uploads
from shared.identity.keys import LocalKeySource
from shared.identity.pseudonymise import Pseudonymiser, normalise
from shared.ingest.events import parse_blob_created
from shared.ingest.pipeline import STEPS, IngestPipeline
from shared.platform.audit import AuditLog
from shared.platform.storage import AUDIT
from shared.policy.loader import PolicyError, load_policy
from tests.conftest import TEST_ROOT_KEY
from tests.helpers import (
    curated_rows,
    deliver_all,
    index_records,
    ledger_rows,
    person_index,
    raw_blobs,
    receipts,
    upload,
)
from tests.test_retention_integrity import PEOPLE, RETENTION_POLICY, file_metadata, rows_by_file


def keys() -> LocalKeySource:
    return LocalKeySource(base64.b64encode(TEST_ROOT_KEY).decode())


def pseudonym(nhs: str) -> str:
    return Pseudonymiser(TEST_ROOT_KEY).pseudonym("nhs_number", normalise("nhs_number", nhs))


ROW_KEY_POLICY = RETENTION_POLICY.replace("""          score: {role: attribute, type: integer, min: 0, max: 60}""",
                                          """          visit_date: {role: attribute, type: date}
          score: {role: attribute, type: integer, min: 0, max: 60}""").replace(
    """        retention: {anchor: received, years: 1}
        columns:""", """        retention: {anchor: received, years: 1}
        row_key: [nhs_number, visit_date]
        columns:""", 1)
FIRST = f"nhs_number,visit_date,score\r\n{PEOPLE[0]},2025-01-10,10\r\n{PEOPLE[1]},2025-01-10,20\r\n" \
        f"{PEOPLE[0]},2025-02-10,30\r\n"
CORRECTED = f"nhs_number,visit_date,score\r\n{PEOPLE[2]},2025-01-10,40\r\n{PEOPLE[0]},2025-01-10,11\r\n"


@pytest.fixture
def row_key_policy(app_env, tmp_path: Path):
    path = tmp_path / "row-key.yaml"
    path.write_text(ROW_KEY_POLICY)
    return app_env(path)


def scores(storage) -> list[tuple[str, str, int]]:
    people = {pseudonym(nhs): nhs for nhs in PEOPLE}
    return sorted((people[r["nhs_number_pseudonym"]], r["visit_date"].isoformat(), r["score"])
                  for r in curated_rows(storage))


EXPECTED = sorted([(PEOPLE[0], "2025-01-10", 11), (PEOPLE[0], "2025-02-10", 30), (PEOPLE[1], "2025-01-10", 20),
                   (PEOPLE[2], "2025-01-10", 40)])


def assert_replaced_once(storage) -> None:
    assert scores(storage) == EXPECTED
    assert sorted(row["status"] for row in ledger_rows(storage)) == ["accepted", "accepted"]
    second = next(r for r in receipts(storage) if r["rows"]["read"] == 2)
    assert second["rows"]["replaced"] == 1 and second["rows"]["stored"] == 2
    assert second["replaced"]["rows"] == [3] and second["replaced"]["total"] == 1
    stored = {(r["_ingest_id"], r["_row"]) for r in curated_rows(storage)}
    assert {(r["ingest_id"], r["row"]) for r in index_records(storage)} == stored, "one record per stored row"
    rows = rows_by_file(storage)
    assert all(m["rows"] == str(rows[name]) and m["retention"] for name, m in file_metadata(storage).items())
    assert [e.action for e in AuditLog(storage.table(AUDIT)).entries()].count("ingest.accepted") == 2
    assert raw_blobs(storage) == []
    assert not list(storage.platform_container("linkage").list_blobs(name_starts_with="replacements/"))


def test_a_re_sent_row_replaces_the_stored_copy(row_key_policy, storage):
    upload(storage, "clinic", "visits/january.csv", FIRST.encode())
    deliver_all(storage)
    upload(storage, "clinic", "visits/january corrected.csv", CORRECTED.encode())
    deliver_all(storage)
    assert_replaced_once(storage)
    index = person_index(storage)
    index.ensure_linked()
    assert len(index.records_of(index.resolve({pseudonym(PEOPLE[0])}))) == 2


def test_a_row_sent_twice_in_one_file_is_stored_once(row_key_policy, storage):
    upload(storage, "clinic", "visits/january.csv", (FIRST + f"{PEOPLE[0]},2025-01-10,12\r\n").encode())
    deliver_all(storage)
    [receipt] = receipts(storage)
    assert receipt["rows"]["replaced"] == 1
    assert receipt["rows"]["stored"] == 3 and receipt["replaced"]["rows"] == [5]
    assert sorted(r["score"] for r in curated_rows(storage)) == [12, 20, 30]
    assert len(index_records(storage)) == 3


@pytest.mark.parametrize("step", STEPS)
def test_a_re_sent_row_is_replaced_exactly_once_whatever_step_a_crash_comes_after(row_key_policy, storage, step):
    from tests.test_crash_safety import InjectedCrash, crash_at

    upload(storage, "clinic", "visits/january.csv", FIRST.encode())
    deliver_all(storage)
    upload(storage, "clinic", "visits/january corrected.csv", CORRECTED.encode())
    [raw] = waiting_uploads(storage)
    event = parse_blob_created(raw["eventType"], raw["subject"], raw["data"])
    with pytest.raises(InjectedCrash):
        IngestPipeline(row_key_policy, storage, keys(), checkpoint=crash_at(step)).handle(event)
    IngestPipeline(row_key_policy, storage, keys()).handle(event)  # the retry: the same event again
    IngestPipeline(row_key_policy, storage, keys()).handle(event)  # and a late duplicate of it
    assert_replaced_once(storage)


def test_an_older_upload_delivered_late_never_replaces_a_newer_copy(row_key_policy, storage):
    upload(storage, "clinic", "visits/january.csv", FIRST.encode())
    time.sleep(1.1)  # blob creation times are kept to the second
    upload(storage, "clinic", "visits/january corrected.csv", CORRECTED.encode())
    events = sorted(waiting_uploads(storage), key=lambda e: "corrected" not in e["subject"])
    for event in events:  # the newer upload's event first
        deliver_in_process(event)
    assert scores(storage) == EXPECTED
    older = next(r for r in receipts(storage) if r["rows"]["read"] == 3)
    assert older["rows"]["superseded"] == 1 and older["left_out"]["superseded"]["rows"] == [2]
    assert older["rows"]["stored"] == 2 and older["rows"]["replaced"] == 0


@pytest.mark.parametrize(("row_key", "path", "problem"), [
    ("[nhs_number, visit_day]", "row_key[1]", "'visit_day' is not a column of this dataset"),
    ("[nhs_number, name]", "row_key[1]", "'name' has role direct"),
    ("[nhs_number, note]", "row_key[1]", "'note' is optional"),
    ("[family_ref, visit_date]", "row_key", "names no identifier of a person"),
    ("nhs_number", "row_key", "must be a list"),
    ("[nhs_number, nhs_number]", "row_key", "names a column twice"),
])
def test_the_loader_checks_a_row_key_and_says_what_to_fix(tmp_path, row_key, path, problem):
    text = ROW_KEY_POLICY.replace("row_key: [nhs_number, visit_date]", f"row_key: {row_key}").replace(
        "          score: {role: attribute, type: integer, min: 0, max: 60}\n",
        "          score: {role: attribute, type: integer, min: 0, max: 60}\n"
        "          name: {role: direct}\n"
        "          note: {role: attribute, type: string, required: false}\n"
        "          family_ref: {role: identifier, type: partner_ref, identifies: group}\n", 1)
    policy = tmp_path / "bad.yaml"
    policy.write_text(text)
    with pytest.raises(PolicyError) as failure:
        load_policy(policy)
    [issue] = [i for i in failure.value.issues if i.path.endswith(path)]
    assert issue.file == str(policy) and issue.path == f"partners.clinic.datasets.visits.{path}"
    assert problem in issue.problem and issue.allowed, "the issue says what to do instead"
