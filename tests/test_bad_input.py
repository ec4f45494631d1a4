"""Bad input: each gets a clear rejection or row-level errors naming file, row, column and rule (never the
value); nothing from a rejected file is stored, and the raw file is deleted."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from devtools import synthetic
from shared.ingest.names import shown_name
from shared.runtime import platform
from tests.conftest import POLICIES
from tests.helpers import curated_rows, deliver_all, index_records, ledger_rows, raw_blobs, receipts, upload


def leap_sessions(policy, rows: int = 20, **options) -> synthetic.SyntheticFile:
    return synthetic.generate(policy, "family-support-charity", "sessions", rows=rows, seed=3, **options)


def ingest_one(storage, partner: str, blob: str, content: bytes) -> dict:
    upload(storage, partner, blob, content)
    deliver_all(storage)
    assert raw_blobs(storage) == [], "the raw file is deleted, accepted or not"
    [receipt] = receipts(storage)
    [ledger] = ledger_rows(storage)
    assert ledger["status"] == ("rejected" if receipt["status"] == "rejected" else "accepted")
    known = platform().policy.partners.get(partner)
    assert receipt["file"] == shown_name(blob, sorted(known.datasets) if known else []), "never the name as given"
    return receipt


def assert_rejected_and_nothing_stored(storage, receipt: dict, rule: str) -> dict:
    assert receipt["status"] == "rejected"
    assert rule in [problem["rule"] for problem in receipt["rejection"]], receipt["rejection"]
    assert curated_rows(storage) == []
    assert index_records(storage) == []
    return next(problem for problem in receipt["rejection"] if problem["rule"] == rule)


def csv_bytes(lines: list[str]) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


def test_empty_file(app_env, storage):
    app_env()
    receipt = ingest_one(storage, "family-support-charity", "sessions/empty.csv", b"")
    assert_rejected_and_nothing_stored(storage, receipt, "file.empty")


def test_header_without_rows(app_env, storage):
    policy = app_env()
    header = ",".join(leap_sessions(policy).header)
    receipt = ingest_one(storage, "family-support-charity", "sessions/header.csv", csv_bytes([header]))
    assert_rejected_and_nothing_stored(storage, receipt, "file.no_rows")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_bytes(app_env, storage, seed):
    app_env()
    content = os.urandom(4096) if seed != 3 else b"\x89PNG\r\n\x1a\n" + os.urandom(2048)
    receipt = ingest_one(storage, "family-support-charity", "sessions/noise.csv", content)
    assert receipt["status"] == "rejected"
    assert receipt["rejection"][0]["rule"] in ("file.binary", "file.encoding")
    assert curated_rows(storage) == []


def test_zip_bomb(app_env, storage):
    app_env()
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bomb:
        bomb.writestr("data.csv", b"0" * 50_000_000)
    receipt = ingest_one(storage, "family-support-charity", "sessions/bomb.csv", archive.getvalue())
    assert_rejected_and_nothing_stored(storage, receipt, "file.archive")


def test_xlsx_bomb(app_env, storage):
    policy = app_env()
    genuine = zipfile.ZipFile(io.BytesIO(leap_sessions(policy, fmt="xlsx").content))
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bomb:
        for entry in genuine.infolist():
            data = genuine.read(entry.filename)
            if entry.filename.startswith("xl/worksheets/"):
                data = data.replace(b"<sheetData>", b"<sheetData>" + b" " * 60_000_000, 1)
            bomb.writestr(entry.filename, data)
    assert len(archive.getvalue()) < 1_000_000
    receipt = ingest_one(storage, "family-support-charity", "sessions/bomb.xlsx", archive.getvalue())
    assert_rejected_and_nothing_stored(storage, receipt, "xlsx.bomb")


def test_file_over_the_size_limit(app_env, storage, tmp_path: Path):
    small = tmp_path / "leap-small.yaml"
    small.write_text(POLICIES["leap"].read_text().replace("max_file_mb: 200", "max_file_mb: 1"))
    policy = app_env(small)
    content = leap_sessions(policy, rows=12_000).content
    assert len(content) > 1024 * 1024
    receipt = ingest_one(storage, "family-support-charity", "sessions/big.csv", content)
    assert_rejected_and_nothing_stored(storage, receipt, "file.too_large")


def test_line_over_the_length_limit(app_env, storage):
    policy = app_env()
    file = leap_sessions(policy)
    lines = file.content.decode().splitlines()
    lines[5] = lines[5].replace(",Y\r", ",Y") + "," + "x" * 20_000
    receipt = ingest_one(storage, "family-support-charity", "sessions/long.csv", csv_bytes(lines))
    problem = assert_rejected_and_nothing_stored(storage, receipt, "file.line_too_long")
    assert problem["row"] == 6
    assert "xxxxxxxx" not in str(receipt)


def test_column_outside_the_agreement(app_env, storage, all_logs):
    """A Thrive at Five school must send no names: a child_name column rejects the whole file."""
    policy = app_env("thrive-at-five")
    file = synthetic.generate(policy, "school-north", "early-years", rows=10, extra_columns=("child_name",))
    receipt = ingest_one(storage, "school-north", file.blob_name, file.content)
    problem = assert_rejected_and_nothing_stored(storage, receipt, "header.not_in_contract")
    assert problem["column"] == "child_name" and problem["row"] == 1
    names = [row["child_name"] for row in file.rows]
    shown = str(receipt) + "\n".join(r.getMessage() for r in all_logs.records)
    assert not [name for name in names if name in shown]


def test_missing_required_column(app_env, storage):
    policy = app_env()
    file = leap_sessions(policy)
    lines = [",".join(cells.split(",")[:-1]) for cells in file.content.decode().splitlines()]  # drop consent
    receipt = ingest_one(storage, "family-support-charity", "sessions/missing.csv", csv_bytes(lines))
    problem = assert_rejected_and_nothing_stored(storage, receipt, "header.missing")
    assert problem["column"] == "consent"


def test_duplicated_column(app_env, storage):
    policy = app_env()
    file = leap_sessions(policy)
    lines = [line + "," + line.split(",")[-1] for line in file.content.decode().splitlines()]  # consent twice
    receipt = ingest_one(storage, "family-support-charity", "sessions/twice.csv", csv_bytes(lines))
    problem = assert_rejected_and_nothing_stored(storage, receipt, "header.duplicate")
    assert problem["column"] == "consent"


@pytest.mark.parametrize(("policy_name", "partner", "dataset", "rules"), [
    ("leap", "family-support-charity", "sessions", {"nhs_number.check_digit", "postcode.format", "date.format"}),
    ("achieving-for-children", "afc-early-help", "early-help", {"upn.check_letter", "nhs_number.check_digit"}),
])
def test_invalid_identifiers_postcodes_and_dates_are_row_errors(app_env, storage, all_logs, policy_name, partner,
                                                                dataset, rules):
    policy = app_env(policy_name)
    file = synthetic.generate(policy, partner, dataset, rows=300, seed=11, invalid_rate=0.3)
    receipt = ingest_one(storage, partner, file.blob_name, file.content)

    assert receipt["status"] == "accepted_with_errors"
    assert {problem["row"] for problem in receipt["errors"]} == file.invalid_rows
    assert rules <= {problem["rule"] for problem in receipt["errors"]}
    assert all(problem["column"] and problem["message"] for problem in receipt["errors"])
    assert receipt["rows"]["invalid"] == len(file.invalid_rows)
    assert len(curated_rows(storage)) == receipt["rows"]["stored"]
    spoiled = {value for number in file.invalid_rows for value in file.rows[number - 2].values() if len(value) > 4}
    shown = str(receipt) + "\n".join(r.getMessage() for r in all_logs.records)
    assert not [value for value in spoiled if value in shown], "an error echoed a value"


def test_unknown_partner_container(app_env, storage):
    policy = app_env()
    receipt = ingest_one(storage, "stranger", "sessions/x.csv", leap_sessions(policy).content)
    assert_rejected_and_nothing_stored(storage, receipt, "upload.unknown_partner")


@pytest.mark.parametrize("blob", ["unknown-dataset/file.csv", "file-at-the-top.csv"])
def test_unknown_dataset_path(app_env, storage, blob):
    policy = app_env()
    receipt = ingest_one(storage, "family-support-charity", blob, leap_sessions(policy).content)
    problem = assert_rejected_and_nothing_stored(storage, receipt, "upload.unknown_dataset")
    assert "sessions" in problem["message"]


def test_excel_upload_is_read_like_csv(app_env, storage):
    policy = app_env()
    file = leap_sessions(policy, rows=30, fmt="xlsx")
    receipt = ingest_one(storage, "family-support-charity", file.blob_name, file.content)
    assert receipt["status"] == "accepted"
    assert receipt["rows"]["read"] == 30


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp1252"])
def test_csv_encodings(app_env, storage, encoding):
    policy = app_env("thriving-families")
    file = synthetic.generate(policy, "thriving-families-team", "family-support", rows=10, seed=5)
    text = file.content.decode().replace("Okafor", "Ó'Dónaill")  # a name outside ASCII, dropped anyway
    receipt = ingest_one(storage, "thriving-families-team", file.blob_name, text.encode(encoding))
    assert receipt["status"] == "accepted"
    assert receipt["rows"]["stored"] == 10


def test_malformed_csv_quoting(app_env, storage):
    policy = app_env()
    lines = leap_sessions(policy).content.decode().splitlines()
    lines[3] = '"unclosed' + lines[3]
    receipt = ingest_one(storage, "family-support-charity", "sessions/quote.csv", csv_bytes(lines))
    assert_rejected_and_nothing_stored(storage, receipt, "csv.malformed")


def test_ragged_row_is_a_row_error(app_env, storage):
    policy = app_env()
    lines = leap_sessions(policy).content.decode().splitlines()
    lines[2] += ",extra"
    receipt = ingest_one(storage, "family-support-charity", "sessions/ragged.csv", csv_bytes(lines))
    assert [(p["row"], p["rule"]) for p in receipt["errors"]] == [(3, "row.field_count")]


def test_a_header_that_looks_like_data_is_not_echoed(app_env, storage):
    """A partner who pastes a row where the header should be gets told about `column N`, not the value."""
    policy = app_env()
    lines = leap_sessions(policy).content.decode().splitlines()
    lines[0] = lines[0] + ",jo.bloggs@example.org"
    lines[1:] = [line + "," for line in lines[1:]]
    receipt = ingest_one(storage, "family-support-charity", "sessions/pasted.csv", csv_bytes(lines))
    problem = assert_rejected_and_nothing_stored(storage, receipt, "header.not_in_contract")
    assert problem["column"] == "column 15"
    assert "bloggs" not in str(receipt)
