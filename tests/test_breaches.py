"""The breach register end to end, against Azurite, through the HTTP functions: open, assess, report, close; the
72-hour clock; who is affected, counted through the person index and never shown; and the value-free log events
the breach alerts (infra/bicep/modules/alerts.bicep) count.

The scenario's small policy: a school and a clinic both send NHS numbers, so the index links their rows into the
same two children; a breach of the clinic's upload affects those two, and the school can reach them too."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.identity.index import PersonIndex
from shared.platform.audit import AuditLog
from shared.platform.checkpoints import VERIFY_FAILED_EVENT, AuditCheckpoints
from shared.platform.storage import AUDIT, BREACHES
from shared.rights.breaches import CATEGORIES, personal_data_in
from tests.helpers import (
    ADMIN,
    ANALYST,
    DPO,
    deliver_all,
    http_api,
    index_records,
    ledger_rows,
    person_index,
    upload,
)

POLICY = """
programme: {name: Breach test, controller: Test council, data_residency: UK, region: uksouth}
partners:
  school:
    name: Test school
    kind: school
    datasets:
      clubs:
        basis: consent
        retention: {anchor: received, years: 5}
        columns:
          pupil_ref: {role: identifier, type: partner_ref}
          nhs_number: {role: identifier, type: nhs_number}
          club: {role: attribute, type: string, values: [chess, drama]}
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
"""
SCHOOL = "pupil_ref,nhs_number,club,consent\r\nPUPIL-77,943 476 5919,chess,Y\r\nPUPIL-12,4010232137,drama,Y\r\n" \
         "PUPIL-13,6541230986,chess,Y\r\n"
CLINIC = "nhs_number,score\r\n9434765919,40\r\n4010232137,35\r\n"


@pytest.fixture
def api(app_env, storage, tmp_path: Path, monkeypatch):
    policy_file = tmp_path / "breach.yaml"
    policy_file.write_text(POLICY)
    app_env(policy_file)
    return http_api(monkeypatch)


def ingest(storage) -> dict[str, str]:
    """Both partners' uploads; returns partner -> its upload (ingest) id."""
    upload(storage, "school", "clubs/autumn.csv", SCHOOL.encode())
    upload(storage, "clinic", "visits/october.csv", CLINIC.encode())
    deliver_all(storage)
    return {row["PartitionKey"]: row["RowKey"] for row in ledger_rows(storage)}


def opened(api, caller=ADMIN, **body) -> dict:
    body = {"category": "upload_link_misuse", "description": "The clinic's upload link was sent to the wrong "
            "mailbox and used once before it was revoked.", **body}
    status, breach, response = api("POST", "breaches", caller, body)
    assert status == 201, breach
    assert response.headers["Location"] == f"/api/breaches/{breach['id']}"
    return breach


def step(api, breach_id: str, name: str, body: dict, caller=DPO, expect: int = 200) -> dict:
    status, answer, response = api("POST", f"breaches/{breach_id}/{name}", caller, body)
    assert status == expect, answer
    if status >= 400:
        assert response.mimetype == "application/problem+json"
    return answer


def test_a_breach_is_opened_assessed_reported_and_closed_with_its_history_and_audit_trail(api, storage):
    breach = opened(api, scope={"partners": ["clinic"]})
    assert breach["status"] == "open" and breach["ico"]["report"] == "due" and breach["people"]["notice"] == \
        "undecided"
    assert 71.9 <= breach["hours_left"] <= 72 and breach["overdue"] is False
    assert step(api, breach["id"], "close", {"outcome": "nothing found"}, expect=409)["rule"] == \
        "breach.close.not_assessed"

    assessed = step(api, breach["id"], "assess", {"risk": "high", "reason": "Special category data of two children "
                                                                            "was readable by a third party."})
    assert assessed["ico"]["report"] == "due" and assessed["people"]["notice"] == "due"
    refused = step(api, breach["id"], "close", {"outcome": "done"}, expect=409)
    assert refused["rule"] == "breach.close.ico_report_due" and "ico-notified" in refused["detail"]

    reported = step(api, breach["id"], "ico-notified", {"reference": "IC-123456-A1B2"})
    assert reported["ico"]["report"] == "recorded" and reported["hours_left"] is None
    assert step(api, breach["id"], "close", {"outcome": "done"}, expect=409)["rule"] == \
        "breach.close.people_notice_due"
    step(api, breach["id"], "people-notified", {"how": "via_partners"})
    closed = step(api, breach["id"], "close", {"outcome": "Link revoked, mailbox cleared, partner retrained."})
    assert closed["status"] == "closed" and closed["closed_by"] == "dpo-object-id"
    assert step(api, breach["id"], "assess", {"risk": "unlikely", "reason": "x"}, expect=409)["rule"] == \
        "breach.closed"

    status, shown, _ = api("GET", f"breaches/{breach['id']}", ADMIN)
    assert status == 200
    assert [(s["step"], s["by"]) for s in shown["history"]] == [
        ("opened", "admin-object-id"), ("assessed", "dpo-object-id"), ("ico_notified", "dpo-object-id"),
        ("people_notified", "dpo-object-id"), ("closed", "dpo-object-id")]
    audited = [(e.action, e.details["status"]) for e in AuditLog(storage.table(AUDIT)).entries()
               if e.action.startswith("admin.breach") and e.details["route"].get("id") in (None, breach["id"])]
    assert audited == [("admin.breach.open", 201), ("admin.breach.close", 409), ("admin.breach.assess", 200),
                       ("admin.breach.close", 409), ("admin.breach.ico_notified", 200),
                       ("admin.breach.close", 409), ("admin.breach.people_notified", 200),
                       ("admin.breach.close", 200), ("admin.breach.assess", 409), ("admin.breach.read", 200)]


def test_the_clock_runs_72_hours_from_awareness_and_stops_when_the_report_is_recorded_or_not_needed(api):
    now = datetime.now(UTC)
    nearly = opened(api, aware_at=(now - timedelta(hours=70)).isoformat())
    assert 1.9 <= nearly["hours_left"] <= 2.0 and nearly["overdue"] is False
    assert nearly["ico_deadline"] == (datetime.fromisoformat(nearly["aware_at"]) + timedelta(hours=72)).isoformat()

    late = opened(api, aware_at=(now - timedelta(hours=80)).isoformat())
    assert late["overdue"] is True and -8.1 <= late["hours_left"] <= -7.9
    problem = step(api, late["id"], "ico-notified", {"reference": "IC-1"}, expect=400)
    assert problem["field"] == "delay_reason" and problem["rule"] == "breach.ico.delay_reason"
    reported = step(api, late["id"], "ico-notified", {"reference": "IC-1", "delay_reason": "The extent was only "
                                                                                           "known after two days."})
    assert reported["overdue"] is False and reported["ico"]["delay_reason"].startswith("The extent")
    assert reported["history"][-1]["late"] is True

    unlikely = step(api, nearly["id"], "assess", {"risk": "unlikely", "reason": "Pseudonymised rows only, read by "
                                                                                "our own administrator."})
    assert unlikely["ico"]["report"] == "not_required" and unlikely["hours_left"] is None
    assert unlikely["overdue"] is False and unlikely["people"]["notice"] == "not_required"
    assert step(api, nearly["id"], "close", {"outcome": "Recorded; no report needed."})["status"] == "closed"


def test_administrators_open_and_read_but_only_the_officer_decides(api, storage):
    ingest(storage)
    breach = opened(api, scope={"partners": ["clinic"]})
    assert api("GET", f"breaches/{breach['id']}", ADMIN)[0] == 200
    assert api("GET", f"breaches/{breach['id']}/affected", ADMIN)[0] == 200
    for name in ("assess", "ico-notified", "people-notified", "close"):
        status, problem, _ = api("POST", f"breaches/{breach['id']}/{name}", ADMIN, {})
        assert status == 403 and problem["title"] == "Forbidden", name
    assert api("GET", f"breaches/{breach['id']}/affected?partner=school", ADMIN)[0] == 403
    assert api("GET", "breaches", ANALYST)[0] == 403
    assert api("POST", "breaches", None, {"category": "other", "description": "x"})[0] == 401
    assert opened(api, caller=DPO)["opened_by"] == "dpo-object-id"


@pytest.mark.parametrize(("body", "field", "rule"), [
    ({"category": "hacked"}, "category", "breach.category"),
    ({"category": {"not": "a name"}}, "category", "breach.category"),
    ({"description": ""}, "description", "breach.description"),
    ({"description": "Rows of the child with NHS number 943 476 5919 were exposed."}, "description",
     "breach.personal_data"),
    ({"description": "The parent (jo.bloggs@example.org) reported it."}, "description", "breach.personal_data"),
    ({"description": "A letter went to SW9 8AB by mistake."}, "description", "breach.personal_data"),
    ({"aware_at": "2999-01-01T00:00:00+00:00"}, "aware_at", "breach.time.future"),
    ({"aware_at": "yesterday"}, "aware_at", "breach.time"),
    ({"scope": {"partners": ["school", "nursery"]}}, "scope.partners[1]", "breach.scope.partners"),
    ({"scope": {"uploads": ["../etc"]}}, "scope.uploads[0]", "breach.scope.uploads"),
    ({"scope": {"window": {"from": "2026-03-02T10:00:00Z", "to": "2026-03-01T10:00:00Z"}}}, "scope.window",
     "breach.scope.window"),
])
def test_bad_input_is_refused_naming_the_field_and_rule_without_echoing_it(api, all_logs, body, field, rule):
    base = {"category": "other", "description": "An incident."}
    status, problem, response = api("POST", "breaches", ADMIN, {**base, **body})
    assert status == 400 and response.mimetype == "application/problem+json"
    assert (problem["field"], problem["rule"]) == (field, rule)
    logs = "\n".join(record.getMessage() for record in all_logs.records)
    for secret in ("943 476 5919", "jo.bloggs", "SW9 8AB", "nursery", "../etc"):
        assert secret not in json.dumps(problem) and secret not in logs
    assert api("GET", "breaches?status=all", ADMIN)[1]["items"] == []


def test_the_description_screen_knows_identifiers_from_ordinary_numbers():
    assert personal_data_in("Upload 3 of 12 refused at 09:30 on 2026-03-02; 1500 rows, 2 partners.") is None
    assert personal_data_in("pupil A123456789012 was in it") is None  # the UPN's check letter fails
    assert personal_data_in("call 07700 900123") == "a phone number"
    assert personal_data_in("NHS 4010232137") == "an NHS number"
    assert set(CATEGORIES) >= {"upload_link_misuse", "export_disclosure", "audit_tampering", "other"}


def test_the_register_lists_urgent_breaches_first_and_pages_with_a_token(api):
    now = datetime.now(UTC)
    later = opened(api, aware_at=(now - timedelta(hours=1)).isoformat())
    sooner = opened(api, aware_at=(now - timedelta(hours=60)).isoformat())
    decided = opened(api)
    step(api, decided["id"], "assess", {"risk": "unlikely", "reason": "No data left the platform."})
    done = opened(api)
    step(api, done["id"], "assess", {"risk": "unlikely", "reason": "No data left the platform."})
    step(api, done["id"], "close", {"outcome": "Closed."})

    listed = api("GET", "breaches", DPO)[1]
    assert [b["id"] for b in listed["items"]] == [sooner["id"], later["id"], decided["id"]]
    assert listed["next"] is None and "history" not in listed["items"][0]
    assert [b["id"] for b in api("GET", "breaches?status=closed", DPO)[1]["items"]] == [done["id"]]

    seen, token = [], None
    while True:
        page = api("GET", "breaches?status=all&limit=1" + (f"&page={token}" if token else ""), DPO)[1]
        seen += [b["id"] for b in page["items"]]
        token = page["next"]
        if token is None:
            break
    assert seen == [sooner["id"], later["id"], decided["id"], done["id"]]
    for query, field in (("status=shut", "status"), ("next=bm9wZQ", "next"), ("limit=0", "limit")):
        status, problem, _ = api("GET", f"breaches?{query}", DPO)
        assert status == 400 and problem["field"] == field


def test_affected_people_are_counted_through_the_index_and_never_shown(api, storage):
    uploads = ingest(storage)
    breach = opened(api, scope={"partners": ["clinic"]})
    status, affected, _ = api("GET", f"breaches/{breach['id']}/affected", ADMIN)
    assert status == 200
    assert affected["people"] == 2 and affected["rows_in_scope"] == 2
    assert affected["uploads"] == {"accepted": 1, "rejected": 0}
    assert affected["partners"] == [
        {"partner": "clinic", "name": "Test clinic", "people_known": 2, "rows_in_scope": 2,
         "uploads_in_scope": [uploads["clinic"]]},
        {"partner": "school", "name": "Test school", "people_known": 2, "rows_in_scope": 0,
         "uploads_in_scope": []}]

    shown = json.dumps(affected)
    index: PersonIndex = person_index(storage)
    person_keys = set(index.person_map().values())
    pseudonyms = {value.split("=", 1)[-1] for record in index_records(storage) for value in record["ids"] or []}
    assert person_keys and pseudonyms
    assert not any(secret in shown for secret in person_keys | pseudonyms)

    status, rows, _ = api("GET", f"breaches/{breach['id']}/affected?partner=school", DPO)
    assert status == 200 and rows == {"breach": breach["id"], "partner": "school",
                                      "uploads": [{"upload": uploads["school"], "rows": [2, 3]}]}
    [released] = [e for e in AuditLog(storage.table(AUDIT)).entries() if e.action == "breach.affected.rows"]
    assert released.details == {"breach": breach["id"], "partner": "school", "rows": 2}
    assert released.actor == "dpo-object-id"
    assert api("GET", f"breaches/{breach['id']}/affected?partner=nursery", DPO)[1]["rule"] == \
        "breach.affected.partner"


def test_a_time_window_scopes_uploads_by_when_they_arrived_and_counts_activity_in_it(api, storage):
    ingest(storage)
    now = datetime.now(UTC)
    before = opened(api, scope={"window": {"from": (now - timedelta(days=2)).isoformat(),
                                           "to": (now - timedelta(days=1)).isoformat()}})
    assert api("GET", f"breaches/{before['id']}/affected", ADMIN)[1]["people"] == 0
    around = opened(api, scope={"window": {"from": (now - timedelta(hours=1)).isoformat(),
                                           "to": (now + timedelta(minutes=1)).isoformat()}})
    affected = api("GET", f"breaches/{around['id']}/affected", ADMIN)[1]
    assert affected["people"] == 3 and affected["uploads"]["accepted"] == 2
    assert affected["activity"]["admin.breach.open"] == 2
    nothing = opened(api)
    assert api("GET", f"breaches/{nothing['id']}/affected", ADMIN)[1]["people"] == 0


def test_every_admin_call_logs_a_value_free_event_for_the_alerts(api, all_logs):
    breach = opened(api)
    api("POST", f"breaches/{breach['id']}/assess", ADMIN, {"risk": "high", "reason": "x"})
    events = [record.getMessage() for record in all_logs.records if record.getMessage().startswith("fdp.admin.call")]
    assert events == ["fdp.admin.call action=breach.open status=201",
                      "fdp.admin.call action=breach.assess status=403"]
    assert not any("admin-object-id" in message for message in events)


def test_an_upload_refused_logs_the_bulk_refusal_event(api, storage, all_logs):
    upload(storage, "clinic", "visits/extra.csv", b"nhs_number,score,home_address\r\n9434765919,40,1 High St\r\n")
    deliver_all(storage)
    assert [row["status"] for row in ledger_rows(storage)] == ["rejected"]
    events = [r for r in all_logs.records if r.getMessage().startswith("fdp.ingest.rejected")]
    assert [e.getMessage() for e in events] == ["fdp.ingest.rejected partner=clinic dataset=visits"]
    assert "High St" not in "\n".join(r.getMessage() for r in all_logs.records)


def test_audit_verification_failing_logs_its_event(storage, all_logs):
    audit = AuditLog(storage.table(AUDIT))
    for n in range(3):
        audit.append("test.step", {"n": n})
    checkpoints = AuditCheckpoints(storage, None)
    assert checkpoints.verify().ok
    assert not [r for r in all_logs.records if r.getMessage().startswith(VERIFY_FAILED_EVENT)]
    row = dict(storage.table(AUDIT).get_entity("chain", "000000000002"))
    row["details"] = json.dumps({"n": 99})
    storage.table(AUDIT).upsert_entity(row)
    assert not checkpoints.verify().ok
    [event] = [r for r in all_logs.records if r.getMessage().startswith(VERIFY_FAILED_EVENT)]
    assert event.levelname == "ERROR" and event.getMessage() == f"{VERIFY_FAILED_EVENT} stage=verify problems=1"


def test_the_register_table_holds_no_personal_data(api, storage):
    ingest(storage)
    breach = opened(api, scope={"partners": ["clinic"]})
    api("GET", f"breaches/{breach['id']}/affected?partner=school", DPO)
    stored = json.dumps([dict(e) for e in storage.table(BREACHES).list_entities()], default=str)
    assert "9434765919" not in stored and "PUPIL-77" not in stored
    assert not re.search(r"[0-9a-f]{32}", stored.replace(breach["id"], ""))  # no pseudonym or person key


DOC = Path(__file__).resolve().parent.parent / "docs" / "breaches.md"
ROLES = {"Platform.Admin": ADMIN, "DataProtection.Officer": DPO}


def documented_calls() -> list[tuple[dict, str, str, dict | None, int]]:
    """docs/breaches.md's http blocks: (caller, method, path, body, expected status), in order."""
    calls = []
    for block in re.findall(r"```http\n(.*?)```", DOC.read_text(), re.S):
        comment, request, *body = block.strip().split("\n")
        role, status = re.fullmatch(r"# (\S+) -> (\d{3})", comment).groups()
        method, path = request.split(" ", 1)
        calls.append((ROLES[role], method, path.removeprefix("/api/"), json.loads("\n".join(body)) if body else None,
                      int(status)))
    return calls


@pytest.fixture
def leap_api(app_env, storage, monkeypatch):
    """The app on the LEAP policy, with synthetic uploads from its three partners delivered."""
    from devtools.leap_files import partner_files
    from tests.conftest import TEST_ROOT_KEY

    policy = app_env("leap")
    for file in partner_files(policy, TEST_ROOT_KEY, families=15):
        upload(storage, file.partner, f"{file.dataset}/{file.name}", file.content)
    deliver_all(storage)
    return http_api(monkeypatch)


def test_the_documented_procedure_runs(leap_api, storage):
    calls = documented_calls()
    assert len(calls) >= 4
    breach_id = None
    for caller, method, path, body, expected in calls:
        status, answer, _ = leap_api(method, path.replace("{id}", breach_id or "{id}"), caller, body)
        assert status == expected, (method, path, answer)
        breach_id = breach_id or answer["id"]
    shown = leap_api("GET", f"breaches/{breach_id}", DPO)[1]
    assert shown["status"] == "closed" and [s["step"] for s in shown["history"]] == ["opened", "assessed", "closed"]

    affected = leap_api("GET", f"breaches/{breach_id}/affected", DPO)[1]
    documented = json.loads(re.search(r"```json\n(.*?)```", DOC.read_text(), re.S)[1])
    assert set(affected) == set(documented) and set(affected["partners"][0]) == set(documented["partners"][0])
    assert affected["people"] > 0 and affected["uploads"]["accepted"] == 1
    assert "family-support-charity" in {p["partner"] for p in affected["partners"]}
