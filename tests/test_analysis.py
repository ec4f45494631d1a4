"""The analyst's read path against Azurite: each dataset as one table with its person key, through DuckDB and pandas.

Curated files are downloaded through the real Storage clients into a cache folder (the local path; DuckDB's azure
extension is the path in Azure and is not exercised here)."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pyarrow as pa
import pytest

from devtools import synthetic
from shared.identity.register import ALL_DATASETS, RESTRICTED, SuppressionRegister
from shared.ingest import curated
from shared.platform.audit import AuditLog
from shared.platform.storage import AUDIT, CURATED, REGISTER
from shared.publishing.dataset_access import DatasetAccess, datasets_of
from tests.helpers import curated_rows, deliver_all, person_index, upload

SESSIONS_HEADER = ("family_ref,nhs_number,child_name,parent_name,address,child_postcode,date_of_birth,ethnicity,"
                   "disability,service,session_date,sessions_attended,asq_communication,consent")
ASSESSMENTS_HEADER = ("child_ref,nhs_number,child_name,child_postcode,date_of_birth,assessment_date,asq_communication,"
                      "asq_gross_motor,asq_fine_motor,asq_problem_solving,asq_personal_social,consent")
CHILDREN = 12


def leap_files(storage) -> list[str]:
    """Twelve children: each went to baby_steps (the charity knows them by family reference and NHS number) and was
    assessed twice by the nursery (its own reference and the NHS number); child n attended n + 1 sessions."""
    nhs = [synthetic.nhs_number(random.Random(n)) for n in range(CHILDREN)]
    sessions, assessments = [SESSIONS_HEADER], [ASSESSMENTS_HEADER]
    for n, number in enumerate(nhs):
        sessions.append(f"FS-{n},{number},A B,C D,1 Road,SW9 8AB,2023-01-15,WBRI,N,baby_steps,2024-03-01,{n + 1},,Y")
        assessments.append(f"N-{n},{number},A B,SW9 8AB,2023-01-15,2024-01-10,20,30,30,30,30,Y")
        assessments.append(f"N-{n},{number},A B,SW9 8AB,2023-01-15,2024-09-10,{25 + 5 * (n % 3)},30,30,30,30,Y")
    upload(storage, "family-support-charity", "sessions/s.csv", "\r\n".join(sessions).encode())
    upload(storage, "early-years-setting", "asq-assessments/a.csv", "\r\n".join(assessments).encode())
    deliver_all(storage)
    return nhs


@pytest.fixture
def leap(app_env, storage, tmp_path: Path):
    policy = app_env("leap")
    leap_files(storage)

    def access(actor: str = "analyst-object-id") -> DatasetAccess:
        return DatasetAccess(policy, storage, person_index(storage), actor, cache_dir=tmp_path / "cache")
    return policy, access


def test_each_dataset_reads_as_one_table_with_its_person_key_through_duckdb_and_pandas(leap):
    policy, access = leap
    reader = access()
    for dataset in datasets_of(policy):
        relation = reader.open_dataset(dataset)
        frame = reader.dataframe(dataset)
        assert relation.columns[:2] == ["person_key", "partner"] and list(frame.columns) == relation.columns
        assert not [c for c in relation.columns if c.endswith("_pseudonym") or c.startswith("_") or c == "subject_id"]
        assert len(frame) == relation.aggregate("count(*)").fetchall()[0][0]
    assert len(reader.dataframe("sessions")) == CHILDREN and len(reader.dataframe("asq-assessments")) == 2 * CHILDREN
    assert len(reader.dataframe("health-visits")) == 0  # nothing uploaded: an empty table of the right shape
    assert "asq_communication" in reader.open_dataset("health-visits").columns
    sessions = reader.dataframe("sessions")
    assert sessions["person_key"].nunique() == CHILDREN and set(sessions["partner"]) == {"family-support-charity"}


def test_two_datasets_join_on_the_person_key(leap):
    """The charity and the nursery know each child by their own references: the person key joins them."""
    _, access = leap
    reader = access()
    joined = reader.sql("""
        SELECT s.person_key, s.sessions_attended, count(*) AS assessments,
               max(a.asq_communication) - min(a.asq_communication) AS change
        FROM sessions s JOIN asq_assessments a USING (person_key)
        GROUP BY ALL ORDER BY s.sessions_attended""").df()
    assert len(joined) == CHILDREN and list(joined["assessments"]) == [2] * CHILDREN
    assert list(joined["sessions_attended"]) == list(range(1, CHILDREN + 1))
    assert list(joined["change"]) == [5 + 5 * (n % 3) for n in range(CHILDREN)]
    merged = reader.dataframe("sessions").merge(reader.dataframe("asq-assessments"), on="person_key")
    assert merged["person_key"].nunique() == CHILDREN and len(merged) == 2 * CHILDREN


def test_restricted_and_erased_people_are_not_in_what_analysts_read(leap, storage):
    _, access = leap
    rows = [row for row in curated_rows(storage) if row.get("service") == "baby_steps"]
    register = SuppressionRegister(storage.table(REGISTER))
    register.add(rows[0]["nhs_number_pseudonym"], RESTRICTED, "restriction test")
    register.add(rows[1]["nhs_number_pseudonym"], ALL_DATASETS, "erasure test")
    reader = access()
    assert len(reader.dataframe("sessions")) == CHILDREN - 2
    assert len(reader.dataframe("asq-assessments")) == 2 * (CHILDREN - 2)  # gone from the nursery's data too
    assert reader.sql("SELECT count(DISTINCT person_key) FROM sessions JOIN asq_assessments USING (person_key)"
                      ).fetchall() == [(CHILDREN - 2,)]


def test_every_read_is_audited_with_who_read_what_and_no_row_data(leap, storage):
    _, access = leap
    reader = access("evaluator-7")
    reader.dataframe("sessions")
    reader.sql("SELECT count(*) FROM asq_assessments")
    reads = [entry for entry in AuditLog(storage.table(AUDIT)).entries() if entry.action == "analysis.read"]
    assert [(e.actor, e.details["dataset"], e.details["rows"]) for e in reads] == [
        ("evaluator-7", "sessions", CHILDREN), ("evaluator-7", "asq-assessments", 2 * CHILDREN)]
    assert all(e.details["data_version"] for e in reads)
    assert "person_key" not in json.dumps([e.details for e in reads])


def test_a_rewritten_file_replaces_its_cached_copy(leap, storage, tmp_path):
    """Retention and erasure rewrite curated files: the next read fetches the new version and deletes the old."""
    _, access = leap
    assert len(access().dataframe("sessions")) == CHILDREN
    old = {p.name for p in (tmp_path / "cache").rglob("*.parquet") if "sessions" in p.parts}
    name = next(b.name for b in storage.platform_container(CURATED).list_blobs(name_starts_with="sessions/"))
    table, _ = curated.download(storage, name)
    storage.platform_blob(CURATED, name).upload_blob(curated.to_bytes(table.slice(1)), overwrite=True)
    assert len(access().dataframe("sessions")) == CHILDREN - 1
    now = {p.name for p in (tmp_path / "cache").rglob("*.parquet") if "sessions" in p.parts}
    assert len(now) == len(old) == 1 and now != old


def test_uploads_made_under_another_agreement_line_up_by_column_name(leap, storage):
    """One upload made before `disability` was agreed, and holding a column the agreement no longer lists: its rows
    read with an empty disability, the dropped column is not shown, and a later upload's rows keep theirs."""
    policy, access = leap
    [older] = [b.name for b in storage.platform_container(CURATED).list_blobs(name_starts_with="sessions/")]
    later = synthetic.generate(policy, "family-support-charity", "sessions", rows=20, seed=3)
    upload(storage, "family-support-charity", later.blob_name, later.content)
    deliver_all(storage)
    table, _ = curated.download(storage, older)  # type: ignore[misc]
    table = table.drop_columns(["disability"]).append_column("withdrawn_column", pa.array(["x"] * CHILDREN))
    storage.platform_blob(CURATED, older).upload_blob(curated.to_bytes(table), overwrite=True)
    frame = access().dataframe("sessions")
    assert "withdrawn_column" not in frame.columns and "disability" in frame.columns
    assert frame["disability"].isna().sum() >= CHILDREN and frame["disability"].notna().any()
    assert len(frame) > CHILDREN


def test_an_unknown_dataset_is_a_404_naming_the_datasets(leap):
    from shared.platform.auth import Problem

    _, access = leap
    with pytest.raises(Problem) as raised:
        access().open_dataset("pupils")
    assert raised.value.status == 404 and "sessions" in json.dumps(raised.value.document())


def test_the_committed_data_dictionaries_are_generated_from_the_current_policies(capsys):
    from shared.cli import main

    assert main(["dictionary", "--write", "docs/data-dictionary", "--check"]) == 0, capsys.readouterr().out
    assert sorted(p.stem for p in Path("docs/data-dictionary").glob("*.md")) == sorted(
        p.stem for p in Path("policies").glob("*.yaml"))


def test_the_dictionary_describes_every_column_with_its_meaning_basis_and_retention(leap):
    from shared.publishing.dictionary import dataset_dictionary

    policy, _ = leap
    entry = dataset_dictionary(policy, "sessions")
    contract = policy.partners["family-support-charity"].datasets["sessions"].contract
    assert [c["name"] for c in entry["columns"]] == ["person_key", "partner", *(c.name for c in contract.columns)]
    by_name = {c["name"]: c for c in entry["columns"]}
    assert by_name["service"]["values"]["family_nurse"] == "Family Nurse Partnership"
    assert by_name["child_postcode"]["generalisation"] == "postcode cut to its sector (SW9 8)"
    assert by_name["child_name"]["stored_as"] is None and by_name["child_name"]["kept"] == "not stored"
    assert by_name["nhs_number"]["in_analysis_table"] is False  # the person key stands in for it
    assert by_name["sessions_attended"]["legal_basis"] == ["Consent (UK GDPR Art 6(1)(a))"]
    assert entry["retention"] == ["25 years 0 months after the programme's end, to the month end"]
    shown = [c["stored_as"] for c in entry["columns"] if c["in_analysis_table"]]
    assert shown == leap[1]().open_dataset("sessions").columns
    assert all(c["meaning"] for c in entry["columns"])


def test_analysts_list_datasets_and_read_a_dictionary_over_http_and_beside_the_data(leap, storage, monkeypatch):
    from shared.cli import main
    from tests.helpers import http_api, principal

    api = http_api(monkeypatch)
    analyst = principal("analyst-object-id", "Analyst")
    status, body, _ = api("GET", "datasets", analyst)
    assert status == 200 and [d["dataset"] for d in body["items"]] == ["asq-assessments", "health-visits",
                                                                         "sessions"]
    status, first, _ = api("GET", "datasets?limit=2", analyst)
    status, rest, _ = api("GET", f"datasets?limit=2&page={first['next']}", analyst)
    assert [d["dataset"] for d in first["items"] + rest["items"]] == ["asq-assessments", "health-visits", "sessions"]
    assert rest["next"] is None, "paged like every list"
    status, body, _ = api("GET", "datasets/sessions/dictionary", analyst)
    assert status == 200 and body["table"] == "sessions" and body["columns"][0]["name"] == "person_key"
    status, body, response = api("GET", "datasets/pupils/dictionary", analyst)
    assert status == 404 and response.mimetype == "application/problem+json"
    status, _, _ = api("GET", "datasets", principal("admin-object-id", "Platform.Admin"))
    assert status == 403
    assert main(["dictionary", "--publish"]) == 0
    published = json.loads(storage.platform_blob(CURATED, "sessions/_dictionary.json").download_blob().readall())
    assert published["columns"] == api("GET", "datasets/sessions/dictionary", analyst)[1]["columns"]
    _, access = leap
    assert len(access().dataframe("sessions")) == CHILDREN  # the dictionary beside the files is not read as data


def code_blocks(path: Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", path.read_text(), flags=re.S)


def test_the_worked_examples_in_docs_analysis_run_and_give_what_they_say(leap, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FDP_ANALYSIS_CACHE", str(tmp_path / "doc-cache"))
    blocks = code_blocks(Path("docs/analysis.md"), "python")
    assert len(blocks) == 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/analysis.md", "exec"), namespace)  # noqa: S102 - the project's own doc
    progress, children = namespace["progress"], namespace["children"]
    assert list(progress["service"]) == ["baby_steps"] and list(progress["children"]) == [CHILDREN]
    assert list(progress["days_between_first_and_last"]) == [244]
    assert len(children) == CHILDREN
    assert list(children.sort_values("sessions_attended")["change"]) == [5 + 5 * (n % 3) for n in range(CHILDREN)]
    assert "sessions_attended" in capsys.readouterr().out


def test_the_shell_example_prints_csv_and_is_audited(leap, storage, tmp_path, monkeypatch, capsys):
    from shared.cli import main

    monkeypatch.setenv("FDP_ANALYSIS_CACHE", str(tmp_path / "cli-cache"))
    [command] = code_blocks(Path("docs/analysis.md"), "sh")
    sql = re.search(r'"(SELECT .*)"', command, flags=re.S).group(1)  # type: ignore[union-attr]
    assert main(["query", "--as", "evaluator-object-id", sql]) == 0
    assert capsys.readouterr().out.splitlines() == ["service,children", f"baby_steps,{CHILDREN}"]
    [read] = [e for e in AuditLog(storage.table(AUDIT)).entries() if e.action == "analysis.read"]
    assert read.actor == "evaluator-object-id" and read.details["dataset"] == "sessions"
