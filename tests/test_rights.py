"""People's rights end to end, against Azurite, through the HTTP functions and the queue-triggered worker.

The scenario uses its own small policy: a school (consent), a clinic (legitimate interest) and a statutory
register (legal obligation), each sending NHS numbers, the school also its own pupil references."""

from __future__ import annotations

import io
import json
import urllib.request
import zipfile
from datetime import date
from pathlib import Path

import pytest

from shared.identity.register import SuppressionRegister
from shared.platform.audit import AuditLog
from shared.platform.storage import AUDIT, REGISTER
from shared.rights.deadlines import due_date
from tests.helpers import (
    ADMIN,
    DPO,
    curated_rows,
    deliver_all,
    finished_request,
    http_api,
    index_records,
    receipts,
    rights_request,
    upload,
)

NHS, OTHER_NHS, REF = "943 476 5919", "4010232137", "PUPIL-77"

POLICY = """
programme: {name: Rights test, controller: Test council, data_residency: UK, region: uksouth}
partners:
  school:
    name: Test school
    kind: school
    datasets:
      clubs:
        description: After-school clubs
        basis: consent
        retention: {anchor: received, years: 5}
        columns:
          pupil_ref: {role: identifier, type: partner_ref}
          nhs_number: {role: identifier, type: nhs_number, required: false}
          pupil_name: {role: direct}
          club: {role: attribute, type: string, values: [chess, drama, football, "=HYPERLINK()"]}
          consent: {role: consent}
  clinic:
    name: Test clinic
    kind: nhs_trust
    datasets:
      visits:
        basis: legitimate_interest
        retention: {anchor: received, years: 5}
        columns:
          nhs_number: {role: identifier, type: nhs_number}
          score: {role: attribute, type: integer, min: 0, max: 60}
  registry:
    name: Statutory register
    kind: council
    datasets:
      census:
        basis: legal_obligation
        retention: {anchor: received, years: 5}
        columns:
          nhs_number: {role: identifier, type: nhs_number}
          band: {role: attribute, type: string, values: [a, b]}
reports:
  - {name: clubs, audience: Test council, datasets: [clubs], dimensions: [club]}
"""

SCHOOL_LINKED = "pupil_ref,nhs_number,pupil_name,club,consent\r\nPUPIL-77,943 476 5919,Ann Example,chess,Y\r\n" \
                "PUPIL-12,4010232137,Bob Example,drama,Y\r\n"
SCHOOL_BY_REF = "pupil_ref,nhs_number,pupil_name,club,consent\r\nPUPIL-77,,Ann Example,=HYPERLINK(),Y\r\n" \
                "PUPIL-13,,Cat Example,football,Y\r\n"
CLINIC = "nhs_number,score\r\n9434765919,40\r\n4010232137,35\r\n"
REGISTRY = "nhs_number,band\r\n9434765919,a\r\n4010232137,b\r\n"
UPLOADS = [("school", "clubs/linked.csv", SCHOOL_LINKED), ("school", "clubs/by-ref.csv", SCHOOL_BY_REF),
           ("clinic", "visits/october.csv", CLINIC)]


@pytest.fixture
def api(app_env, storage, tmp_path: Path, monkeypatch):
    policy_file = tmp_path / "rights.yaml"
    policy_file.write_text(POLICY)
    app_env(policy_file)
    return http_api(monkeypatch)


def ingest(storage, uploads=UPLOADS) -> None:
    for partner, blob, text in uploads:
        upload(storage, partner, blob, text.encode())
    deliver_all(storage)


def request(api, kind: str, identifiers: list[dict], **extra) -> dict:
    return rights_request(api, DPO, kind, identifiers, **extra)


def finish(api, storage, request_id: str) -> dict:
    return finished_request(api, storage, DPO, request_id)


def nhs(value: str = NHS) -> dict:
    return {"type": "nhs_number", "value": value}


def rows_of(storage, wanted: dict) -> list[dict]:
    return [r for r in curated_rows(storage) if all(r.get(k) == v for k, v in wanted.items())]


def test_access_by_nhs_number_finds_rows_held_under_a_linked_reference(api, storage):
    ingest(storage)
    created = request(api, "access", [nhs()], context="Via the school office")
    assert created["status"] == "in_progress" and created["due"] == due_date(date.today()).isoformat()
    status, _polled, response = api("GET", f"requests/{created['id']}", DPO)
    assert status == 202 and response.headers["Location"] == f"/api/requests/{created['id']}"

    done = finish(api, storage, created["id"])
    assert done["status"] == "completed" and done["result"]["rows"] == 3
    with urllib.request.urlopen(done["result"]["link"]) as response:  # noqa: S310 - a local Azurite link
        pack = zipfile.ZipFile(io.BytesIO(response.read()))
    clubs = json.loads(pack.read("school-clubs.json"))
    assert sorted(row["club"] for row in clubs) == ["=HYPERLINK()", "chess"]
    assert {row["pupil_ref"] for row in clubs} == {"a linked identifier"}
    assert {row["nhs_number"] for row in clubs} == {"the NHS number given", "(not held)"}
    assert json.loads(pack.read("clinic-visits.json"))[0]["score"] == 40
    assert "'=HYPERLINK()" in pack.read("school-clubs.csv").decode(), "CSV cells cannot start a formula"
    summary = pack.read("summary.md").decode()
    assert "Purpose: After-school clubs" in summary and "withdraw consent" in summary and "object" in summary
    assert "9434765919" not in json.dumps([json.loads(pack.read(n)) for n in pack.namelist() if n.endswith(".json")])


def test_erasure_removes_every_row_and_later_uploads_of_them_are_dropped(api, storage):
    ingest(storage)
    before = {str(row) for row in curated_rows(storage)}
    done = finish(api, storage, request(api, "erasure", [{"type": "partner_ref", "value": REF,
                                                           "partner": "school"}])["id"])
    assert done["status"] == "completed" and done["result"]["erased"] == {"clubs": 2, "visits": 1}
    remaining = curated_rows(storage)
    assert len(remaining) == 3 and all(r["club"] != "chess" for r in remaining if "club" in r)
    assert {str(row) for row in remaining} <= before, "everyone else's rows are unchanged"
    assert not [r for r in index_records(storage) if r["dataset"] == "visits"
                and any(i.endswith(tuple(done_pseudonyms(storage, NHS))) for i in r["ids"])], "their records go too"

    ingest(storage)  # the same files again
    assert sum(r["rows"]["suppressed"] for r in receipts(storage)) == 3
    assert len(curated_rows(storage)) == 6, "their rows came back for no one else"


def done_pseudonyms(storage, value: str) -> set[str]:
    from shared.identity.pseudonymise import Pseudonymiser, normalise
    from tests.conftest import TEST_ROOT_KEY

    return {Pseudonymiser(TEST_ROOT_KEY).pseudonym("nhs_number", normalise("nhs_number", value))}


def test_withdrawal_of_consent_removes_only_consent_based_rows(api, storage):
    ingest(storage)
    done = finish(api, storage, request(api, "withdraw-consent", [nhs()])["id"])
    assert done["result"]["erased"] == {"clubs": 2}
    assert rows_of(storage, {"score": 40}), "legitimate-interest data stays"
    assert not [r for r in curated_rows(storage) if r.get("club") in ("chess", "=HYPERLINK()")]


def test_erasure_of_statutory_data_waits_for_the_officer_decision(api, storage):
    ingest(storage, [*UPLOADS, ("registry", "census/return.csv", REGISTRY)])
    done = finish(api, storage, request(api, "erasure", [nhs()])["id"])
    assert done["status"] == "awaiting_decision" and done["result"]["needs_decision"]["datasets"] == ["census"]
    assert rows_of(storage, {"band": "a"})
    status, decided, _ = api("POST", f"requests/{done['id']}/decide", DPO,
                             {"outcome": "refused", "reasons": "Statutory return: Art 17(3)(b)"})
    assert status == 200 and decided["status"] == "completed" and decided["outcome"] == "refused"
    assert rows_of(storage, {"band": "a"}), "kept, with the reasons recorded"


def test_objection_restricts_until_decided_and_upheld_erases(api, storage):
    ingest(storage)
    created = request(api, "objection", [nhs()])
    assert created["status"] == "awaiting_decision"
    restricted = SuppressionRegister(storage.table(REGISTER)).restricted()
    assert done_pseudonyms(storage, NHS) <= restricted
    status, decided, _ = api("POST", f"requests/{created['id']}/decide", DPO,
                             {"outcome": "upheld", "reasons": "No compelling grounds"})
    assert status == 200 and decided["result"]["erased"] == {"visits": 1}
    assert not rows_of(storage, {"score": 40}) and rows_of(storage, {"club": "chess"})
    assert not done_pseudonyms(storage, NHS) & SuppressionRegister(storage.table(REGISTER)).restricted()


def test_restriction_keeps_the_data_but_marks_the_person(api, storage):
    ingest(storage)
    finish(api, storage, request(api, "restriction", [nhs()])["id"])
    assert len(curated_rows(storage)) == 6
    assert done_pseudonyms(storage, NHS) <= SuppressionRegister(storage.table(REGISTER)).restricted()


def test_rectification_corrects_values_and_keeps_the_old_one_only_as_a_hash(api, storage):
    ingest(storage)
    done = finish(api, storage, request(api, "rectification", [nhs()], corrections=[
        {"dataset": "clubs", "column": "club", "value": "football"}])["id"])
    assert done["result"]["rectified"] == {"clubs": 2}
    assert sorted(r["club"] for r in curated_rows(storage) if "club" in r) == ["drama", "football", "football",
                                                                                 "football"]
    trail = json.dumps([e.details for e in AuditLog(storage.table(AUDIT)).entries()])
    assert "old_value_hmac" in trail and "chess" not in trail


def test_extension_needs_a_reason_and_adds_two_months(api, storage):
    created = request(api, "access", [nhs()])
    status, problem, _ = api("POST", f"requests/{created['id']}/extend", DPO, {})
    assert status == 400 and problem["field"] == "reason"
    status, extended, _ = api("POST", f"requests/{created['id']}/extend", DPO, {"reason": "Complex: many partners"})
    assert extended["due"] == due_date(date.today(), extended=True).isoformat()
    assert api("POST", f"requests/{created['id']}/extend", DPO, {"reason": "again"})[0] == 409
    status, listing, _ = api("GET", "requests?status=open", DPO)
    [item] = listing["items"]
    assert item["days_left"] == (due_date(date.today(), extended=True) - date.today()).days
    assert item["extension_reason"] == "Complex: many partners"


@pytest.mark.parametrize(("received", "due"), [("2025-01-31", "2025-02-28"), ("2025-02-08", "2025-03-10"),
                                                ("2025-04-26", "2025-05-27"), ("2025-12-24", "2026-01-26")])
def test_due_dates(received, due):
    assert due_date(date.fromisoformat(received)).isoformat() == due


def test_wrong_role_and_malformed_identifiers_are_refused_without_echo(api, storage, all_logs):
    assert api("POST", "requests", ADMIN, {"type": "access", "identifiers": [nhs()]})[0] == 403
    assert api("POST", "requests", None, {"type": "access", "identifiers": [nhs()]})[0] == 401
    status, problem, response = api("POST", "requests", DPO, {"type": "access", "identifiers": [
        nhs(), {"type": "nhs_number", "value": "943 476 5918"}]})
    assert status == 400 and response.mimetype == "application/problem+json"
    assert problem["field"] == "identifiers[1].value" and problem["rule"] == "nhs_number.check_digit"
    logs = "\n".join(record.getMessage() for record in all_logs.records)
    assert "5918" not in json.dumps(problem) and "5918" not in logs
    status, problem, _ = api("POST", "requests", DPO, {"type": "access", "identifiers": [
        {"type": "partner_ref", "value": "X"}]})
    assert status == 400 and problem["field"] == "identifiers[0].partner"


def test_requests_are_listed_by_status_and_a_wrong_status_is_a_problem(api, storage):
    ingest(storage)
    done = finish(api, storage, request(api, "access", [nhs()])["id"])
    waiting = request(api, "access", [nhs(OTHER_NHS)])
    assert [r["id"] for r in api("GET", "requests?status=completed", DPO)[1]["items"]] == [done["id"]]
    assert [r["id"] for r in api("GET", "requests?status=open", DPO)[1]["items"]] == [waiting["id"]]
    assert len(api("GET", "requests?status=all", DPO)[1]["items"]) == 2
    status, problem, response = api("GET", "requests?status=closed", DPO)
    assert status == 400 and response.mimetype == "application/problem+json"
    assert problem["field"] == "status" and problem["rule"] == "requests.status"


def test_the_local_queue_worker_completes_requests_without_another_command(api, storage):
    """`python -m devtools.localhost --watch` runs devtools.queues.work beside the HTTP host (issue 16: requests
    stayed 202 until someone drained the queue by hand)."""
    import threading
    import time

    from devtools.queues import work

    ingest(storage)
    created = request(api, "access", [nhs()])
    stop = threading.Event()
    worker = threading.Thread(target=work, args=(storage, stop, 0.1), daemon=True)
    worker.start()
    try:
        for _ in range(100):
            status, body, _ = api("GET", f"requests/{created['id']}", DPO)
            if status == 200:
                break
            time.sleep(0.1)
    finally:
        stop.set()
        worker.join(5)
    assert status == 200 and body["status"] == "completed"
