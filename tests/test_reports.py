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
from shared.platform.storage import EXPORTS, REGISTER, REPORTS
from shared.policy.loader import load_policy
from shared.retention.purge import RetentionService
from tests.conftest import POLICIES
from tests.helpers import curated_rows, deliver_all, http_api, person_index, principal, upload

ANALYST = principal("analyst-object-id", "Analyst")
DPO = principal("dpo-object-id", "DataProtection.Officer")
ADMIN = principal("admin-object-id", "Platform.Admin")


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
    assert "<table>" in page and "data:image/png;base64," in page
    folder = f"sessions-by-service/{metadata['date']}"
    assert {b.name for b in storage.platform_container(REPORTS).list_blobs(name_starts_with=folder)} == {
        f"{folder}/report.csv", f"{folder}/report.html", f"{folder}/metadata.json"}


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


def test_extracts_use_recipient_pseudonyms_and_meet_their_k(families, storage):
    api, path = families
    status, first, _ = api("POST", "extracts/national-evaluation", DPO)
    assert status == 201 and first["k"] == 5
    status, second, _ = api("POST", "extracts/second-study", DPO)
    one = csv_rows(read(first["link"]).decode())
    two = csv_rows(read(second["link"]).decode())
    ours = {row[SUBJECT_ID] for row in curated_rows(storage)}
    ids_one, ids_two = {r[0] for r in one[1:]}, {r[0] for r in two[1:]}
    assert ids_one and ids_two and not ids_one & ids_two and not (ids_one | ids_two) & ours
    assert one[0] == ["research_id", *load_policy(path).extracts["national-evaluation"].columns]
    for rows, spec in ((one, "national-evaluation"), (two, "second-study")):
        extract = load_policy(path).extracts[spec]
        positions = [rows[0].index(q) for q in extract.quasi_identifiers]
        classes = Counter(tuple(row[p] for p in positions) for row in rows[1:])
        assert min(classes.values()) >= extract.k
    assert first["rows"] + first["rows_suppressed"] == 300
    assert api("POST", "extracts/national-evaluation", ANALYST)[0] == 403


def test_an_extract_is_destroyed_by_the_retention_run_after_its_expiry(families, storage):
    api, path = families
    api("POST", "extracts/second-study", DPO)
    assert [b.name for b in storage.platform_container(EXPORTS).list_blobs()]
    day = date(2030, 1, 2)
    record = RetentionService(load_policy(path), storage, person_index(storage),
                              clock=lambda: datetime(2030, 1, 2, tzinfo=UTC)).run(day)
    assert record["summary"]["exports_destroyed"] == 1
    assert list(storage.platform_container(EXPORTS).list_blobs()) == []


def test_k_counts_people_not_rows():
    """One person sent in six monthly files, with a postcode nobody else has, is one person: not published alone."""
    from shared.publishing.extracts import RECIPIENT_ID, k_anonymise

    alone = [{RECIPIENT_ID: "only-one", "postcode_district": "ZZ9", "score": month} for month in range(6)]
    others = [{RECIPIENT_ID: f"p{n}", "postcode_district": "SW9", "score": n} for n in range(5)]
    kept, _, _ = k_anonymise(alone + others, ("postcode_district",), k=5)
    groups: dict = {}
    for row in kept:
        groups.setdefault(row["postcode_district"], set()).add(row[RECIPIENT_ID])
    assert all(len(people) >= 5 for people in groups.values()), "every published combination holds 5 people"
