"""Anonymised reports and research extracts against Azurite, through the HTTP functions."""

from __future__ import annotations

import csv
import io
import json
import random
import urllib.request
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from devtools import synthetic
from shared.identity.register import RESTRICTED, SuppressionRegister
from shared.ingest.curated import SUBJECT_ID
from shared.platform.audit import AuditLog
from shared.platform.storage import AUDIT, EXPORTS, REGISTER, REPORTS
from shared.policy.loader import load_policy
from shared.retention.purge import RetentionService
from tests.conftest import POLICIES
from tests.helpers import ADMIN, ANALYST, DPO, curated_rows, deliver_all, http_api, person_index, principal, upload


def read(url: str) -> bytes:
    with urllib.request.urlopen(url) as response:  # noqa: S310 - a local Azurite link
        return response.read()


def csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


@pytest.fixture
def leap(app_env, storage, monkeypatch):
    policy = app_env("leap")
    file = synthetic.generate(policy, "family-support-charity", "sessions", rows=400, seed=8)
    upload(storage, "family-support-charity", file.blob_name, file.content)
    deliver_all(storage)
    return http_api(monkeypatch)


def test_a_report_is_published_with_csv_html_chart_and_metadata(leap, storage):
    status, metadata, _ = leap("POST", "reports/sessions-by-service", ANALYST)
    assert status == 201 and metadata["status"] == "published" and metadata["attack"]["passed"]
    assert metadata["rule"]["smallest_published"] == 10 and metadata["data_version"]
    status, latest, _ = leap("GET", "reports/sessions-by-service/latest", ANALYST)
    table = csv_rows(read(latest["links"]["csv"]).decode())
    assert table[0] == ["service", "people"] and table[-1][0] == "Total"
    assert all(cell == "c" or int(cell) >= 10 for _, cell in table[1:])
    page = read(latest["links"]["html"]).decode()
    assert "<table" in page and "data:image/png;base64," in page
    folder = f"sessions-by-service/{metadata['date']}"
    assert {b.name for b in storage.platform_container(REPORTS).list_blobs(name_starts_with=folder)} == {
        f"{folder}/report.csv", f"{folder}/report.html", f"{folder}/metadata.json"}
    status, listed, _ = leap("GET", "reports", ANALYST)
    assert status == 200 and listed == {"items": [{
        "report": "sessions-by-service", "audience": "National Lottery Community Fund", "date": metadata["date"],
        "status": "published"}], "next": None}, "the published report is listed with its date"


def test_restricted_people_are_left_out(leap, storage):
    before = int(csv_rows(read(leap("POST", "reports/sessions-by-service", ANALYST) and
                                leap("GET", "reports/sessions-by-service/latest", ANALYST)[1]["links"]["csv"])
                          .decode())[-1][1])
    person = curated_rows(storage)[0]["nhs_number_pseudonym"]
    SuppressionRegister(storage.table(REGISTER)).add(person, RESTRICTED, "restriction test")
    leap("POST", "reports/sessions-by-service", ANALYST)
    after = int(csv_rows(read(leap("GET", "reports/sessions-by-service/latest", ANALYST)[1]["links"]["csv"])
                         .decode())[-1][1])
    assert after == before - 1


def test_a_report_that_cannot_be_protected_is_blocked(app_env, storage, monkeypatch):
    policy = app_env("leap")
    file = synthetic.generate(policy, "family-support-charity", "sessions", rows=6, seed=1)
    upload(storage, "family-support-charity", file.blob_name, file.content)
    deliver_all(storage)
    api = http_api(monkeypatch)
    status, problem, _ = api("POST", "reports/sessions-by-service", ANALYST)
    assert status == 422 and problem["rule"] == "disclosure.blocked"
    names = [b.name for b in storage.platform_container(REPORTS).list_blobs()]
    assert not [n for n in names if n.endswith((".csv", ".html"))]
    assert json.loads(storage.platform_blob(REPORTS, "sessions-by-service/latest.json").download_blob()
                      .readall())["status"] == "blocked"
    assert [(r["report"], r["status"]) for r in api("GET", "reports", ANALYST)[1]["items"]] == [
        ("sessions-by-service", "blocked")], "a blocked run is listed as blocked, not as published"


def test_reports_need_the_analyst_role(leap):
    assert leap("POST", "reports/sessions-by-service", ADMIN)[0] == 403
    assert leap("POST", "reports/no-such-report", ANALYST)[0] == 404


def test_leap_impact_report_links_services_and_assessments_across_partners(app_env, storage, monkeypatch):
    """Twelve children had baby_steps only and ten also family_nurse; each was assessed twice by the nursery,
    which knows them by its own reference and, where it holds it, their NHS number."""
    policy = app_env("leap")
    nhs = [synthetic.nhs_number(random.Random(n)) for n in range(22)]
    sessions = ["family_ref,nhs_number,child_name,parent_name,address,child_postcode,date_of_birth,ethnicity,"
                "disability,service,session_date,sessions_attended,asq_communication,consent"]
    assessments = ["child_ref,nhs_number,child_name,child_postcode,date_of_birth,assessment_date,asq_communication,"
                   "asq_gross_motor,asq_fine_motor,asq_problem_solving,asq_personal_social,consent"]
    for n, number in enumerate(nhs):
        services = ["baby_steps"] + (["family_nurse"] if n >= 12 else [])
        for service in services:
            sessions.append(f"FS-{n},{number},A B,C D,1 Road,SW9 8AB,2023-01-15,WBRI,N,{service},2024-03-01,4,,Y")
        gain = 20 if n >= 12 else 10
        assessments.append(f"N-{n},{number},A B,SW9 8AB,2023-01-15,2024-01-10,20,30,30,30,30,Y")
        assessments.append(f"N-{n},{number},A B,SW9 8AB,2023-01-15,2024-09-10,{20 + gain},30,30,30,30,Y")
    for n in range(22, 30):  # children assessed only once: no change to measure
        assessments.append(f"N-{n},,A B,SW9 8AB,2023-01-15,2024-01-10,20,30,30,30,30,Y")
    upload(storage, "family-support-charity", "sessions/s.csv", "\r\n".join(sessions).encode())
    upload(storage, "early-years-setting", "asq-assessments/a.csv", "\r\n".join(assessments).encode())
    deliver_all(storage)
    api = http_api(monkeypatch)
    status, metadata, _ = api("POST", "reports/service-impact", ANALYST)
    assert status == 201, metadata
    table = csv_rows(read(api("GET", "reports/service-impact/latest", ANALYST)[1]["links"]["csv"]).decode())
    assert table[0][:2] == ["services", "people"]
    by_combination = {row[0]: row[1:] for row in table[1:]}
    assert by_combination["baby_steps"] == ["12", "10.0"]
    assert by_combination["baby_steps+family_nurse"] == ["10", "20.0"]
    assert by_combination["Total"][0] == "22"
    assert policy.reports["service-impact"].kind == "impact"


@pytest.fixture
def families(app_env, storage, tmp_path: Path, monkeypatch):
    """Thriving Families with a second research recipient, and 300 people's records."""
    text = POLICIES["thriving-families"].read_text().replace("extracts:\n", """extracts:
  - name: second-study
    recipient: another-university
    datasets: [family-support]
    columns: [postcode_district, gender]
    quasi_identifiers: [postcode_district, gender]
    k: 10
    expires: 2030-01-01
""", 1)
    path = tmp_path / "thriving-families.yaml"
    path.write_text(text)
    policy = app_env(path)
    file = synthetic.generate(policy, "thriving-families-team", "family-support", rows=300, seed=4)
    upload(storage, "thriving-families-team", file.blob_name, file.content)
    deliver_all(storage)
    return http_api(monkeypatch), path


IFF = principal("iff-analyst-object-id", "Research.Recipient")
AGREEMENT = {"recipient_principal": "iff-analyst-object-id", "agreed_at": "2026-11-02"}


def fetch(api, extract_id: str, caller: dict) -> str:
    """Download an extract's CSV as its recipient."""
    status, problem, response = api("GET", f"extracts/{extract_id}/download", caller)
    assert status == 200 and response.mimetype == "text/csv", problem
    return response.get_body().decode()


def groups(rows: list[list[str]], quasi: tuple[str, ...], column: str) -> dict[tuple, set[str]]:
    """Published combination of quasi-identifiers -> the values of `column` among its rows."""
    positions = [rows[0].index(q) for q in quasi]
    found: dict[tuple, set[str]] = {}
    for row in rows[1:]:
        found.setdefault(tuple(row[p] for p in positions), set()).add(row[rows[0].index(column)])
    return found


def test_extracts_use_recipient_pseudonyms_and_meet_k_and_l_over_people(families, storage):
    api, path = families
    status, first, _ = api("POST", "extracts/national-evaluation", DPO, AGREEMENT)
    assert status == 201 and first["k"]["required"] == 5 and first["l"]["required"] == 2
    status, second, _ = api("POST", "extracts/second-study", DPO, {**AGREEMENT, "recipient_principal": "uni-oid"})
    one = csv_rows(fetch(api, first["extract_id"], IFF))
    two = csv_rows(fetch(api, second["extract_id"], principal("uni-oid", "Research.Recipient")))
    ours = {row[SUBJECT_ID] for row in curated_rows(storage)}
    ids_one, ids_two = {r[0] for r in one[1:]}, {r[0] for r in two[1:]}
    assert ids_one and ids_two and not ids_one & ids_two and not (ids_one | ids_two) & ours
    assert one[0] == ["research_id", *load_policy(path).extracts["national-evaluation"].columns]
    for rows, name in ((one, "national-evaluation"), (two, "second-study")):
        spec = load_policy(path).extracts[name]
        people = groups(rows, spec.quasi_identifiers, "research_id")
        assert min(len(p) for p in people.values()) >= spec.k, "every combination holds k distinct people"
        for column in spec.sensitive:
            assert min(len(s) for s in groups(rows, spec.quasi_identifiers, column).values()) >= spec.l
    assert first["rows"] + first["suppressed"]["rows"] == 300 and first["rows"] == len(one) - 1
    assert first["suppressed"]["people"] <= 300 * 0.02, "within the policy's 2% budget"
    assert api("POST", "extracts/national-evaluation", ANALYST, AGREEMENT)[0] == 403
    status, produced, _ = api("GET", "extracts?limit=1", DPO)
    assert status == 200 and len(produced["items"]) == 1 and produced["next"]
    rest = api("GET", f"extracts?limit=1&page={produced['next']}", DPO)[1]
    listed = {item["extract"]: item for item in produced["items"] + rest["items"]}
    assert set(listed) == {"national-evaluation", "second-study"} and rest["next"] is None
    assert listed["national-evaluation"]["id"] == first["extract_id"]
    assert listed["second-study"]["recipient"] == load_policy(path).extracts["second-study"].recipient
    assert api("GET", "extracts", ANALYST)[0] == 403


def test_the_manifest_reports_levels_loss_and_risk_and_says_why_nothing_finer(families, storage):
    """Thriving Families' extract keeps postcode districts and birth months, or its manifest says, with figures,
    why not: what one level finer would have cost in people suppressed, against the budget."""
    api, _ = families
    status, made, _ = api("POST", "extracts/national-evaluation", DPO, AGREEMENT)
    assert status == 201
    stored = json.loads(storage.platform_blob(EXPORTS, f"extracts/{made['extract_id']}/manifest.json")
                        .download_blob().readall())
    assert stored["sha256"] == made["sha256"] and stored["generalisation"] == made["generalisation"]
    levels = made["generalisation"]
    assert set(levels) == {"postcode_district", "date_of_birth_month", "gender", "ethnicity"}
    reasons = {reason["column"]: reason for reason in made["why_not_finer"]}
    for column in ("postcode_district", "date_of_birth_month"):
        if levels[column] not in ("district", "month"):
            reason = reasons[column]
            assert not reason["within_budget"] or reason["information_loss"] >= made["information_loss"]["overall"]
            assert reason["people_suppressed"] > reason["budget_people"] or reason["within_budget"]
    assert 0 < made["information_loss"]["overall"] <= 1
    assert set(made["information_loss"]["by_column"]) == set(levels)
    assert made["risk"]["max"] <= 1 / 5 and 0 < made["risk"]["mean"] <= made["risk"]["max"]
    assert made["search"]["checked"] + made["search"]["skipped_by_loss_bound"] <= made["search"]["nodes"]


def test_only_the_agreed_recipient_downloads_and_every_download_is_audited(families, storage, all_logs):
    api, _ = families
    status, problem, _ = api("POST", "extracts/national-evaluation", DPO, {"agreed_at": "2026-11-02"})
    assert status == 400 and problem["rule"] == "agreement.recipient_principal"
    status, problem, _ = api("POST", "extracts/national-evaluation", DPO, {**AGREEMENT, "agreed_at": "2999-01-01"})
    assert status == 400 and problem["rule"] == "agreement.agreed_at" and "2999" not in problem["detail"]
    _, made, _ = api("POST", "extracts/national-evaluation", DPO, AGREEMENT)
    agreement = made["agreement"]
    assert (agreement["recipient"], agreement["recipient_principal"], agreement["agreed_at"]) == (
        "iff-research", "iff-analyst-object-id", "2026-11-02")
    assert agreement["columns"][0] == "research_id" and agreement["expires"] == "2027-03-31" and agreement["purpose"]
    someone_else = principal("another-researcher", "Research.Recipient")
    assert api("GET", f"extracts/{made['extract_id']}/download", someone_else)[0] == 403
    assert api("GET", f"extracts/{made['extract_id']}/download", DPO)[0] == 403
    assert api("GET", "extracts/no-such-extract/download", IFF)[0] == 404
    fetch(api, made["extract_id"], IFF)
    published = csv_rows(fetch(api, made["extract_id"], IFF))
    logged = "\n".join(record.getMessage() for record in all_logs.records)
    entries = AuditLog(storage.table(AUDIT)).entries()
    audited = json.dumps([e.details for e in entries])
    research_ids = {row[0] for row in published[1:]}
    assert research_ids and not [i for i in research_ids if i in logged or i in audited], "no pseudonym logged"
    assert not [i for i in research_ids if i in json.dumps(made)], "nor in the manifest"
    downloads = [e for e in entries if e.action == "extract.downloaded"]
    expected = ("iff-analyst-object-id", made["extract_id"])
    assert [(e.actor, e.details["extract_id"]) for e in downloads] == [expected, expected]
    assert all(e.details["sha256"] == made["sha256"] for e in downloads)
    refused = [e for e in entries if e.action == "admin.extract.download" and e.details["status"] == 403]
    assert {e.actor for e in refused} == {"another-researcher", "dpo-object-id"}
    recorded = [e for e in entries if e.action == "extract.agreement"]
    assert recorded[-1].details["recipient_principal"] == "iff-analyst-object-id"
    assert api("GET", f"extracts/{made['extract_id']}", DPO)[1]["agreement"] == agreement


def test_an_extract_is_destroyed_after_its_expiry_and_the_destruction_certified(families, storage):
    api, path = families
    _, made, _ = api("POST", "extracts/second-study", DPO, {**AGREEMENT, "recipient_principal": "uni-oid"})
    assert [b.name for b in storage.platform_container(EXPORTS).list_blobs()]
    record = RetentionService(load_policy(path), storage, person_index(storage),
                              clock=lambda: datetime(2030, 1, 2, tzinfo=UTC)).run(date(2030, 1, 2))
    assert record["summary"]["exports_destroyed"] == 2  # extract.csv and manifest.json
    assert list(storage.platform_container(EXPORTS).list_blobs()) == []
    status, kept, _ = api("GET", f"extracts/{made['extract_id']}", DPO)
    certificate = kept["destruction"]
    assert status == 200 and certificate["destroyed_by"] == "retention run retention-2030-01-02"
    files = {f["file"]: f for f in certificate["files"]}
    assert files[f"exports/extracts/{made['extract_id']}/extract.csv"]["sha256"] == made["sha256"]
    assert certificate["expires"] == "2030-01-01" and kept["manifest"]["sha256"] == made["sha256"]
    uni = principal("uni-oid", "Research.Recipient")
    assert api("GET", f"extracts/{made['extract_id']}/download", uni)[0] == 410
    assert [e.details["extract_id"] for e in AuditLog(storage.table(AUDIT)).entries()
            if e.action == "extract.destroyed"] == [made["extract_id"]]


def test_a_person_sent_in_six_files_with_a_combination_nobody_else_has_is_never_published_alone(
        app_env, storage, monkeypatch):
    """Six monthly files from the council each carry the same child, the only one in Oldham (OL1) and born in a
    month no one else was: six rows, one person. The extract generalises or suppresses them; six rows never pass
    for five people."""
    policy = app_env("thriving-families")
    crowd = synthetic.generate(policy, "thriving-families-team", "family-support", rows=300, seed=4)
    upload(storage, "thriving-families-team", crowd.blob_name, crowd.content)
    one = synthetic.generate(policy, "thriving-families-team", "family-support", rows=6, seed=99)
    child = {"nhs_number": synthetic.nhs_number(random.Random(99)), "postcode": "OL1 1AA", "full_name": "Alex Example",
             "date_of_birth": "2012-02-15", "gender": "female", "ethnicity": "WBRI"}
    for month, record in enumerate(one.rows):
        out = io.StringIO()
        writer = csv.DictWriter(out, one.header, lineterminator="\r\n")
        writer.writeheader()
        writer.writerow({**record, **child})
        upload(storage, "thriving-families-team", f"family-support/month-{month}.csv", out.getvalue().encode())
    deliver_all(storage)
    api = http_api(monkeypatch)
    status, made, _ = api("POST", "extracts/national-evaluation", DPO, AGREEMENT)
    assert status == 201, made
    rows = csv_rows(fetch(api, made["extract_id"], IFF))
    by_person = Counter(row[0] for row in rows[1:])
    quasi = policy.extracts["national-evaluation"].quasi_identifiers
    people = groups(rows, quasi, "research_id")
    sixes = [person for person, count in by_person.items() if count == 6]
    for person in sixes:  # published: then in a group of at least five people
        assert min(len(group) for group in people.values() if person in group) >= 5
    assert "OL1" not in {row[rows[0].index("postcode_district")] for row in rows[1:]}
    assert sixes or made["suppressed"]["rows"] >= 6


def test_a_sum_one_child_dominates_is_hidden_while_its_count_is_shown(app_env, storage, tmp_path, monkeypatch):
    """ACRO's (n,k) rule on a report's sums: one child's 200 sessions of baby_steps' 211 would tell anyone who
    knows the other children's sessions how many that child had."""
    text = POLICIES["leap"].read_text().replace("reports:\n", """reports:
  - name: sessions-attended
    audience: LEAP evaluation team
    datasets: [sessions]
    dimensions: [service]
    measure: sum:sessions_attended
""", 1)
    path = tmp_path / "leap.yaml"
    path.write_text(text)
    app_env(path)
    rows = ["family_ref,nhs_number,child_name,parent_name,address,child_postcode,date_of_birth,ethnicity,"
            "disability,service,session_date,sessions_attended,asq_communication,consent"]
    for n in range(24):
        service, sessions = ("baby_steps", 200 if n == 0 else 1) if n < 12 else ("family_nurse", 10)
        number = synthetic.nhs_number(random.Random(n))
        rows.append(f"FS-{n},{number},A B,C D,1 Road,SW9 8AB,2023-01-15,WBRI,N,{service},2024-03-01,{sessions},,Y")
    upload(storage, "family-support-charity", "sessions/s.csv", "\r\n".join(rows).encode())
    deliver_all(storage)
    api = http_api(monkeypatch)
    status, metadata, _ = api("POST", "reports/sessions-attended", ANALYST)
    assert status == 201 and metadata["cells_hidden"]["dominance"] == 1
    table = csv_rows(read(api("GET", "reports/sessions-attended/latest", ANALYST)[1]["links"]["csv"]).decode())
    by_service = {row[0]: row[1:] for row in table[1:]}
    assert by_service["baby_steps"] == ["12", "c"]
    assert by_service["family_nurse"] == ["12", "120.0"]


def test_special_category_data_is_published_under_the_stricter_threshold(families):
    """Thriving Families' family-support data is special category: its report hides counts below 20."""
    api, _ = families
    status, metadata, _ = api("POST", "reports/families-supported", ANALYST)
    assert status == 201 and metadata["rule"]["smallest_published"] == 20
    table = csv_rows(read(api("GET", "reports/families-supported/latest", ANALYST)[1]["links"]["csv"]).decode())
    assert all(cell == "c" or int(cell) >= 20 for _, cell in table[1:])


def afc_pupils(storage, counts: dict[str, int], absent: dict[str, int]) -> None:
    """Pupils by SEN provision, each with 300 possible sessions and the absences given for their provision."""
    rows = ["upn,pupil_name,postcode,date_of_birth,ethnicity,first_language,free_school_meals,sen_provision,"
            "sessions_possible,sessions_absent,suspensions,phonics_mark"]
    n = 0
    for provision, count in counts.items():
        for _ in range(count):
            upn = synthetic.unique_pupil_number(random.Random(n), 318)
            rows.append(f"{upn},A B,TW9 1AA,2016-05-04,WBRI,ENG,N,{provision},300,{absent[provision]},0,")
            n += 1
    upload(storage, "richmond-schools", "pupils/census.csv", "\r\n".join(rows).encode())
    deliver_all(storage)


def test_attendance_by_sen_shows_attendance_labelled_from_the_policy(app_env, storage, monkeypatch):
    """30 pupils without SEN miss 15 of 300 sessions each (95% attendance), 40 on SEN support miss 30 (90%)."""
    app_env("achieving-for-children")
    afc_pupils(storage, {"N": 30, "K": 40}, {"N": 15, "K": 30})
    api = http_api(monkeypatch)
    status, metadata, _ = api("POST", "reports/attendance-by-sen", ANALYST)
    assert status == 201, metadata
    latest = api("GET", "reports/attendance-by-sen/latest", ANALYST)[1]
    table = csv_rows(read(latest["links"]["csv"]).decode())
    assert table[0] == ["sen_provision", "people", "Attendance (% of possible sessions)"]
    rows = {row[0]: row[1:] for row in table[1:]}
    assert rows == {"K": ["40", "90.0"], "N": ["30", "95.0"], "Total": ["70", ""]}
    page = read(latest["links"]["html"]).decode()
    for text in ("Attendance by special educational needs provision", "<th>SEN provision</th>",
                 "<th>Attendance (% of possible sessions)</th>", "<td>No SEN</td>", "<td>SEN support</td>",
                 "c: suppressed to protect confidentiality"):
        assert text in page, text


def test_a_report_chart_reads_without_its_table(app_env):
    """Title, axis labels with units, the policy's labels for codes, each value, c for what is suppressed and the
    disclosure note: all on the chart itself."""
    from shared.publishing.disclosure import Table, protect
    from shared.publishing.reports import Labels, chart_figure, disclosure_note

    policy = app_env("achieving-for-children")
    spec = policy.reports["attendance-by-sen"]
    table = Table(spec.name, [[4, 40, 30]], row_labels=[""], col_labels=["E", "K", "N"])
    result = protect([table], spec.rule)
    figure = chart_figure(spec, table, result, {(0, 0): 80.0, (1, 0): 90.0, (2, 0): 95.0},
                          Labels.of(policy, spec), disclosure_note(spec))
    axes = figure.axes[0]
    assert axes.get_title() == "Attendance by special educational needs provision"
    assert axes.get_xlabel() == "SEN provision" and axes.get_ylabel() == "Attendance (% of possible sessions)"
    assert [tick.get_text() for tick in axes.get_xticklabels()] == [
        "EHC plan\n(c people)", "SEN support\n(40 people)", "No SEN\n(c people)"]
    annotations = [child.get_text() for child in axes.texts]
    assert annotations == ["c", "90%", "c"]  # 4 pupils are too few; the 30 are hidden so the 4 cannot be worked out
    assert "80" not in " ".join(annotations)
    assert any("suppressed to protect confidentiality" in text.get_text() for text in figure.texts)
