"""Retention against Azurite, with the clock set by the test: data goes on the first run after its purge month and
not a day before; held data survives until the hold is lifted; an interrupted run finishes without a second
record; a changed rule re-plans what is held; expired exports are destroyed; every run is audited."""

from __future__ import annotations

import calendar
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from shared.identity.pseudonymise import Pseudonymiser, normalise
from shared.platform.audit import AuditLog
from shared.platform.storage import AUDIT, EXPORTS, HOLDS, REPORTS
from shared.policy.loader import load_policy
from shared.policy.retention_rules import Offset, add_offset
from shared.retention.holds import HoldRegister
from shared.retention.purge import RetentionService
from tests.conftest import TEST_ROOT_KEY
from tests.helpers import (
    ADMIN,
    curated_files,
    curated_rows,
    deliver_all,
    http_api,
    index_records,
    person_index,
    records_of,
    upload,
)

POLICY = """
programme: {name: Retention test, controller: Test council, data_residency: UK, region: uksouth}
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
"""
FILE = "nhs_number,score\r\n9434765919,40\r\n4010232137,35\r\n"
HELD_NHS = "9434765919"


def month_end(day: date) -> date:
    return date(day.year, day.month, calendar.monthrange(day.year, day.month)[1])


@pytest.fixture
def policy_file(app_env, tmp_path: Path) -> Path:
    path = tmp_path / "retention.yaml"
    path.write_text(POLICY)
    app_env(path)
    return path


@pytest.fixture
def purge_day(policy_file, storage) -> date:
    """Ingest the clinic's file today; its rows are due on the first day after received + 1 year's month end."""
    upload(storage, "clinic", "visits/today.csv", FILE.encode())
    deliver_all(storage)
    return month_end(add_offset(datetime.now(UTC).date(), Offset(years=1))) + timedelta(days=1)


def service(policy_file: Path, storage, on: date) -> RetentionService:
    return RetentionService(load_policy(policy_file), storage, person_index(storage),
                            clock=lambda: datetime(on.year, on.month, on.day, 3, tzinfo=UTC))


def pseudonym(nhs: str) -> str:
    return Pseudonymiser(TEST_ROOT_KEY).pseudonym("nhs_number", normalise("nhs_number", nhs))


def record(storage, on: date) -> dict:
    return json.loads(storage.platform_blob(REPORTS, f"retention/{on.isoformat()}.json").download_blob().readall())


def test_purged_by_the_first_run_after_the_purge_month_and_not_a_day_before(policy_file, storage, purge_day):
    eve = purge_day - timedelta(days=1)
    assert service(policy_file, storage, eve).preview(eve)["delete"] == []
    assert service(policy_file, storage, eve).run(eve)["summary"]["rows_deleted"] == 0
    assert len(curated_rows(storage)) == 2

    preview = service(policy_file, storage, purge_day).preview(purge_day)
    assert preview["delete"] == [{"dataset": "visits", "purge_month": eve.strftime("%Y-%m"), "rows": 2}]
    done = service(policy_file, storage, purge_day).run(purge_day)
    assert done["summary"]["rows_deleted"] == 2 and curated_files(storage) == []
    assert index_records(storage) == [], "the index's records go with the data"
    saved = record(storage, purge_day)
    assert saved["status"] == "completed" and saved["actions"][0]["rule"].startswith("1 years 0 months after")
    assert HELD_NHS not in json.dumps(saved) and pseudonym(HELD_NHS) not in json.dumps(saved)
    assert AuditLog(storage.table(AUDIT)).verify().ok


def test_a_dataset_hold_keeps_data_until_it_is_lifted(policy_file, storage, purge_day):
    holds = HoldRegister(storage.table(HOLDS))
    hold = holds.set(reason="Litigation 2027/1", by="admin", dataset="visits")
    assert service(policy_file, storage, purge_day).run(purge_day)["summary"]["files_held"] == 1
    assert len(curated_rows(storage)) == 2
    holds.lift(hold["id"], reason="Case closed", by="admin")
    later = purge_day + timedelta(days=1)
    assert service(policy_file, storage, later).run(later)["summary"]["rows_deleted"] == 2
    assert curated_rows(storage) == []


def test_a_person_hold_keeps_only_that_persons_rows(policy_file, storage, purge_day):
    holds = HoldRegister(storage.table(HOLDS))
    hold = holds.set(reason="Inquiry", by="admin", pseudonyms={pseudonym(HELD_NHS)})
    service(policy_file, storage, purge_day).run(purge_day)
    assert [row["score"] for row in curated_rows(storage)] == [40]
    assert records_of(storage, pseudonym(HELD_NHS)) and not records_of(storage, pseudonym("4010232137"))
    holds.lift(hold["id"], reason="Inquiry closed", by="admin")
    later = purge_day + timedelta(days=1)
    service(policy_file, storage, later).run(later)
    assert curated_rows(storage) == []


def test_an_interrupted_run_resumes_without_partial_state_or_a_second_record(policy_file, storage, purge_day,
                                                                               monkeypatch):
    upload(storage, "clinic", "visits/second.csv", FILE.encode())
    deliver_all(storage)
    assert len(curated_files(storage)) == 2
    crashing = service(policy_file, storage, purge_day)
    calls = []
    original = RetentionService._execute

    def crash_after_first(self, action, on):
        if calls:
            raise RuntimeError("instance recycled")
        calls.append(action)
        original(self, action, on)

    monkeypatch.setattr(RetentionService, "_execute", crash_after_first)
    with pytest.raises(RuntimeError):
        crashing.run(purge_day)
    assert len(curated_files(storage)) == 1 and record(storage, purge_day)["status"] == "in_progress"
    monkeypatch.setattr(RetentionService, "_execute", original)

    done = service(policy_file, storage, purge_day).run(purge_day)
    again = service(policy_file, storage, purge_day).run(purge_day)
    assert done["summary"]["rows_deleted"] == 4 and again == done and curated_files(storage) == []
    runs = [e for e in AuditLog(storage.table(AUDIT)).entries() if e.action == "retention.run"]
    assert len(runs) == 1 and runs[0].details["rows_deleted"] == 4
    assert AuditLog(storage.table(AUDIT)).verify().ok


def test_a_changed_rule_re_plans_the_data_held(policy_file, storage, purge_day):
    policy_file.write_text(POLICY.replace("years: 1", "years: 2"))
    preview = service(policy_file, storage, purge_day).preview(purge_day)
    new_month = month_end(add_offset(datetime.now(UTC).date(), Offset(years=2))).strftime("%Y-%m")
    assert preview["delete"] == [] and preview["replan"][0]["to_months"] == {new_month: 2}
    service(policy_file, storage, purge_day).run(purge_day)
    assert len(curated_rows(storage)) == 2 and all(f"purge_month={new_month}/" in f for f in curated_files(storage))
    [entry] = records_of(storage, pseudonym(HELD_NHS))
    assert f"purge_month={new_month}/" in entry["file"]


def test_expired_exports_are_destroyed_in_the_same_run(policy_file, storage, purge_day):
    exports = storage.platform_container(EXPORTS)
    exports.upload_blob("access/old.zip", b"pack", metadata={"expires": (purge_day - timedelta(2)).isoformat()})
    exports.upload_blob("access/new.zip", b"pack", metadata={"expires": (purge_day + timedelta(2)).isoformat()})
    assert service(policy_file, storage, purge_day).run(purge_day)["summary"]["exports_destroyed"] == 1
    assert [b.name for b in exports.list_blobs()] == ["access/new.zip"]


def test_retention_calls_need_the_admin_role_and_holds_a_reason(policy_file, storage, monkeypatch):
    api = http_api(monkeypatch)

    def call(method, path, headers=None, body=None):
        status, document, _ = api(method, path, headers, body)
        return status, document

    assert call("POST", "retention/preview")[0] == 401
    status, preview = call("POST", "retention/preview", ADMIN, {"date": "2099-01-01"})
    assert status == 200 and preview["date"] == "2099-01-01"
    assert call("POST", "retention/run", ADMIN, {"date": "2099-01-01"})[1]["rule"] == "date.future"
    assert call("POST", "retention/holds", ADMIN, {"dataset": "visits"})[1]["field"] == "reason"
    status, hold = call("POST", "retention/holds", ADMIN, {"identifiers": [{"type": "nhs_number",
                                                                           "value": HELD_NHS}], "reason": "Inquiry"})
    assert status == 201 and hold["scope"] == "person" and "pseudonyms" not in hold
