"""Issue 12, item 6: rights work must not break retention. Erasure and rectification rewrite curated files with
their metadata (row count, rule, received date), so a later purge counts what it deletes and a changed rule
re-plans them; a re-plan never writes over another file of the same upload; rectifying the anchor date re-plans
the rows; and each deletion record equals what was deleted, compared file by file and row by row. Against Azurite,
through the HTTP functions and the queue-triggered rights worker."""

from __future__ import annotations

import io
import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from devtools.queues import drain
from shared.platform.audit import AuditLog
from shared.platform.storage import AUDIT, CURATED, REPORTS
from shared.policy.loader import load_policy
from shared.retention.purge import RetentionService
from tests.helpers import (
    DPO,
    curated_files,
    curated_rows,
    deliver_all,
    http_api,
    index_records,
    person_index,
    upload,
)

RETENTION_POLICY = """
programme: {name: Integrity test, controller: Test council, data_residency: UK, region: uksouth}
partners:
  clinic:
    name: Test clinic
    kind: nhs_trust
    datasets:
      visits:
        basis: public_task
        retention: {anchor: received, years: 1}
        columns:
          nhs_number: {role: identifier, type: nhs_number}
          score: {role: attribute, type: integer, min: 0, max: 60}
  school:
    name: Test school
    kind: school
    datasets:
      checks:
        basis: public_task
        retention: {anchor: column, column: check_date, years: 1}
        columns:
          nhs_number: {role: identifier, type: nhs_number}
          check_date: {role: attribute, type: date}
"""
PEOPLE = ["9434765919", "4010232137", "4505577104", "9458073022", "1573681938", "5499095140"]


def month_end(day: date) -> date:
    following = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return following - timedelta(days=1)


@pytest.fixture
def retention_policy(app_env, tmp_path: Path) -> Path:
    path = tmp_path / "integrity.yaml"
    path.write_text(RETENTION_POLICY)
    app_env(path)
    return path


def retention(path: Path, storage, on: date) -> RetentionService:
    return RetentionService(load_policy(path), storage, person_index(storage),
                            clock=lambda: datetime(on.year, on.month, on.day, 3, tzinfo=UTC))


def rights_request(api, storage, body: dict) -> dict:
    status, created, _ = api("POST", "requests", DPO, body)
    assert status == 201, created
    drain(storage)
    return api("GET", f"requests/{created['id']}", DPO)[1]


def file_metadata(storage) -> dict[str, dict[str, str]]:
    container = storage.platform_container(CURATED)
    return {blob.name: dict(blob.metadata or {}) for blob in container.list_blobs(include=["metadata"])}


def rows_by_file(storage) -> Counter[str]:
    return Counter({name: len(rows) for name, rows in _rows_per_file(storage).items()})


def _rows_per_file(storage) -> dict[str, list[dict]]:
    import pyarrow.parquet as pq

    return {name: pq.read_table(io.BytesIO(storage.platform_blob(CURATED, name).download_blob().readall()))
            .to_pylist() for name in curated_files(storage)}


def test_rights_work_keeps_retention_metadata_and_the_deletion_record_equals_what_was_deleted(
        retention_policy, storage, monkeypatch):
    api = http_api(monkeypatch)
    upload(storage, "clinic", "visits/october.csv",
           ("nhs_number,score\r\n" + "".join(f"{nhs},{10 + i}\r\n" for i, nhs in enumerate(PEOPLE))).encode())
    deliver_all(storage)
    erased = rights_request(api, storage, {"type": "erasure", "identifiers": [{"type": "nhs_number",
                                                                                 "value": PEOPLE[0]}]})
    assert erased["status"] == "completed" and erased["result"]["erased"] == {"visits": 1}
    rectified = rights_request(api, storage, {"type": "rectification", "identifiers": [
        {"type": "nhs_number", "value": PEOPLE[1]}], "corrections": [
        {"dataset": "visits", "column": "score", "value": "55"}]})
    assert rectified["status"] == "completed"

    rows = rows_by_file(storage)
    for name, metadata in file_metadata(storage).items():
        assert metadata["rows"] == str(rows[name]), "the row count is the file's own"
        assert metadata["retention"] and metadata["received"] and metadata["ingest_id"], "retention metadata kept"

    purge_day = month_end(date.today().replace(year=date.today().year + 1)) + timedelta(days=1)
    before = {name: [(r["_ingest_id"], r["_row"]) for r in rows] for name, rows in _rows_per_file(storage).items()}
    record = retention(retention_policy, storage, purge_day).run(purge_day)
    after = {name: [(r["_ingest_id"], r["_row"]) for r in rows] for name, rows in _rows_per_file(storage).items()}
    deleted = {name: [row for row in rows if row not in after.get(name, [])] for name, rows in before.items()}
    assert {a["file"]: a["rows_deleted"] for a in record["actions"] if a["action"] == "delete"} == {
        name: len(rows) for name, rows in deleted.items()}, "each file's record counts the rows it lost"
    assert record["summary"]["rows_deleted"] == sum(len(rows) for rows in deleted.values()) == len(PEOPLE) - 1
    saved = json.loads(storage.platform_blob(REPORTS, f"retention/{purge_day}.json").download_blob().readall())
    assert saved["summary"] == record["summary"]
    [audited] = [e for e in AuditLog(storage.table(AUDIT)).entries() if e.action == "retention.run"]
    assert audited.details["rows_deleted"] == len(PEOPLE) - 1
    assert index_records(storage) == []


def test_a_changed_rule_re_plans_a_file_that_rights_work_rewrote(retention_policy, storage, monkeypatch):
    api = http_api(monkeypatch)
    upload(storage, "clinic", "visits/october.csv",
           ("nhs_number,score\r\n" + "".join(f"{nhs},{10 + i}\r\n" for i, nhs in enumerate(PEOPLE))).encode())
    deliver_all(storage)
    rights_request(api, storage, {"type": "erasure", "identifiers": [{"type": "nhs_number", "value": PEOPLE[0]}]})
    retention_policy.write_text(RETENTION_POLICY.replace("anchor: received, years: 1", "anchor: received, years: 2"))
    today = date.today()
    preview = retention(retention_policy, storage, today).preview(today)
    new_month = month_end(today.replace(year=today.year + 2)).strftime("%Y-%m")
    assert [(r["to_months"], r["rows"]) for r in preview["replan"]] == [({new_month: len(PEOPLE) - 1},
                                                                          len(PEOPLE) - 1)]
    retention(retention_policy, storage, today).run(today)
    assert [f"purge_month={new_month}/" in name for name in curated_files(storage)] == [True]
    assert len(curated_rows(storage)) == len(PEOPLE) - 1


def test_a_re_plan_never_writes_over_another_file_of_the_same_upload(retention_policy, storage):
    """One upload with rows in two purge months; the new rule moves the first month's rows onto the second's."""
    upload(storage, "school", "checks/spring.csv",
           f"nhs_number,check_date\r\n{PEOPLE[0]},2024-01-15\r\n{PEOPLE[1]},2024-03-15\r\n".encode())
    deliver_all(storage)
    assert sorted(name.split("/")[1] for name in curated_files(storage)) == ["purge_month=2025-01",
                                                                            "purge_month=2025-03"]
    retention_policy.write_text(RETENTION_POLICY.replace("column: check_date, years: 1",
                                                         "column: check_date, years: 1, months: 2"))
    today = date.today()
    record = retention(retention_policy, storage, today).run(today)
    assert record["summary"]["rows_deleted"] == 0 and record["summary"]["files_replanned"] == 2
    assert sorted(r["check_date"].isoformat() for r in curated_rows(storage)) == ["2024-01-15", "2024-03-15"]
    assert sorted(r["_purge_month"] for r in curated_rows(storage)) == ["2025-03", "2025-05"]
    rows = rows_by_file(storage)
    assert all(metadata["rows"] == str(rows[name]) for name, metadata in file_metadata(storage).items())
    assert {record["file"] for record in index_records(storage)} == set(curated_files(storage))


def test_rectifying_the_retention_date_re_plans_the_rows(retention_policy, storage, monkeypatch):
    api = http_api(monkeypatch)
    upload(storage, "school", "checks/spring.csv", f"nhs_number,check_date\r\n{PEOPLE[0]},2024-01-15\r\n".encode())
    deliver_all(storage)
    rights_request(api, storage, {"type": "rectification", "identifiers": [{"type": "nhs_number",
                                                                             "value": PEOPLE[0]}],
                                  "corrections": [{"dataset": "checks", "column": "check_date",
                                                   "value": "2024-06-15"}]})
    today = date.today()
    assert [r["to_months"] for r in retention(retention_policy, storage, today).preview(today)["replan"]] == [
        {"2025-06": 1}]
    retention(retention_policy, storage, today).run(today)
    assert [r["_purge_month"] for r in curated_rows(storage)] == ["2025-06"]
