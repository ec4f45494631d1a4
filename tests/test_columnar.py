"""The columnar path gives exactly the row path's result: the same counts, receipt problems and curated rows in
the same order, for files mixing every kind of column with valid, invalid, padded, blank and non-ASCII cells.

These tests run the pipeline's core (`ingest.transform`) on local files, with no storage: both paths end in the
same local Parquet files, which are compared whole. The row path is chosen by making `columnar.can_read` say
no, which is how a quoted or Excel file reaches it in production.
"""

from __future__ import annotations

import io
import random
from datetime import UTC, date, datetime
from pathlib import Path

import hypothesis.strategies as st
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from stdnum.gb import nhs

from devtools import synthetic
from shared.identity.keys import RootKey
from shared.identity.matchkeys import Identity, MatchKeys, SourceNames
from shared.identity.pseudonymise import Pseudonymiser, source_key
from shared.identity.register import SuppressionSnapshot
from shared.ingest import columnar
from shared.ingest.curated import CuratedWriter
from shared.ingest.events import BlobCreated
from shared.ingest.formats import _READ_CHUNK, scan_text
from shared.ingest.pipeline import Upload, transform
from shared.policy.contracts import FileRejected
from shared.policy.loader import load_policy

POLICY = """
programme:
  name: Columnar test programme
  controller: Test
  data_residency: UK
  region: uksouth
  area: {{postcode_districts: [SW9], la_number: 208, child_ages: [0, 4]}}
  limits: {{max_file_mb: 10, max_line_chars: 3000, max_rows: {max_rows}}}
partners:
  test-partner:
    name: Test partner
    kind: charity
    datasets:
      visits:
        basis: consent
        retention: {{anchor: date_of_birth, column: date_of_birth, years: 25}}
        unexpected_columns: drop
        invalid_rows: {invalid_rows}
        columns:
          nhs_number: {{role: identifier, type: nhs_number, required: false}}
          upn: {{role: identifier, type: upn, required: false}}
          family_ref: {{role: identifier, type: partner_ref, required: false}}
          child_name: {{role: direct, required: false, match: full_name, max_length: 30}}
          name_tokens: {{role: direct, required: false, match: name_tokens}}
          nhs_token: {{role: identifier, type: nhs_number_token, required: false}}
          postcode: {{role: quasi, generalise: postcode_sector, match: postcode}}
          home_postcode: {{role: quasi, generalise: postcode_district, required: false}}
          date_of_birth: {{role: quasi, generalise: age_in_months, at: visit_date, match: date_of_birth}}
          sibling_dob: {{role: quasi, generalise: birth_month, required: false}}
          ethnicity: {{role: attribute, type: string, values: [WBRI, AIND]}}
          note: {{role: attribute, type: string, required: false, max_length: 8}}
          visit_date: {{role: attribute, type: date}}
          sessions: {{role: attribute, type: integer, min: 0, max: 200, step: 5, required: false}}
          score: {{role: attribute, type: number, min: 0, max: 10, required: false}}
          first_visit: {{role: attribute, type: boolean, required: false}}
          consent: {{role: consent}}
"""
HEADER = ["nhs_number", "upn", "family_ref", "child_name", "postcode", "home_postcode", "date_of_birth",
          "sibling_dob", "ethnicity", "note", "visit_date", "sessions", "score", "first_visit", "consent",
          "name_tokens", "nhs_token", "extra"]
KEY = bytes(range(32))
RECEIVED = datetime(2026, 11, 1, tzinfo=UTC)

_rng = random.Random(7)
_NHS = [synthetic.nhs_number(_rng) for _ in range(6)]
_UPN = [synthetic.unique_pupil_number(_rng, 208) for _ in range(3)]
_AT_SOURCE = SourceNames(source_key(KEY))  # the trust's source tool, with the programme's source key
_TOKENS = [_AT_SOURCE.text("bob", "smith-jones", date(2023, 7, 1)), _AT_SOURCE.text("amara", None, None),
           _AT_SOURCE.text("mohammed", "ali", date(2024, 2, 29))]
GOOD = {  # plain valid cells
    "nhs_number": [*_NHS, ""],
    "upn": [*_UPN, ""],
    "family_ref": ["FA-1", "FA-2", "FA-3", ""],
    "child_name": ["Amara Okafor", "", "Bob Smith-Jones", "mohammed  ALI", "Kate"],
    "postcode": ["SW9 8AB", "SE27 5TD", "SW2 4ZL"],
    "home_postcode": ["SW9 8AB", ""],
    "date_of_birth": ["2023-07-01", "2024-02-29", "2022-11-30"],
    "sibling_dob": ["2021-05-20", ""],
    "ethnicity": ["WBRI", "AIND"],
    "note": ["ok", ""],
    "visit_date": ["2026-04-17", "2026-09-20"],
    "sessions": ["5", "10", ""],
    "score": ["1.5", "10", ""],
    "first_visit": ["Y", "n", ""],
    "consent": ["Y", "Y", "N"],
    "name_tokens": [*_TOKENS, ""],
    "nhs_token": ["0123456789abcdef0123456789abcdef", "", "fedcba9876543210fedcba9876543210"],
    "extra": ["", "anything"],
}
ODD = {  # cells the row path accepts in some other form, or refuses
    "nhs_number": [f"{_NHS[1][:3]} {_NHS[1][3:6]} {_NHS[1][6:]}", f"{_NHS[2][:3]}-{_NHS[2][3:]}",
                   f"{_NHS[3][:3]}\t{_NHS[3][3:]}", synthetic.wrong_check_digit(_NHS[4]), "12345",
                   "１２３４５６７８９０", "\u00a0" + _NHS[5], " " + _NHS[0] + "\t"],
    "upn": [_UPN[0].lower(), synthetic.wrong_check_letter(_UPN[1]), "A1234"],
    "family_ref": [" FA-3 ", "FA\t4", "x" * 65, "Ré-5", "\u2003FA-6", "FA-7\u00a0"],
    "child_name": ["Zoë", "   ", "\u00a0", "Ann " + "x" * 30, "O'Neil, Siobhan", "5"],
    "postcode": ["sw2 4zl", "SE27  5TD", "SW98AB", "SW9 8CB", "W1A 1AA", "", "SW9\t8AB", "ＳＷ9 8AB",
                 "SW9 8AB\u00a0", "ß1 1AA"],
    "home_postcode": ["BAD", " sw9 8ab"],
    "date_of_birth": ["01/03/2023", "1/3/2023", "2023-13-01", "2030-01-01", "1850-01-01", "2023-07-01T00:00",
                      "20230701", "2026-10-31", "", "2023-07-01\u2003"],
    "sibling_dob": ["31/12/2020", "nope"],
    "ethnicity": ["wbri", "XXXX", "", " WBRI", "WBRI\u00a0"],
    "note": ["toolongnote", "naïve", "\u2003ok"],
    "visit_date": ["17/04/2026", "2026-02-30", "", "2022-01-01"],
    "sessions": ["0", "7", "-5", "205", "+5", "1_0", "x", "٥", " 15 "],
    "score": ["0", "10.5", "-0", "1e1", "nan", "inf", "٣"],
    "first_visit": ["TRUE", "0", "maybe", "Ｙ"],
    "consent": ["yes", "1", "", "?", "Y\u00a0", "ｙ"],
    "name_tokens": ["Amara Okafor", _TOKENS[0] + ";" + _TOKENS[1], "nickname=" + "a" * 32, _TOKENS[2].upper(),
                    _TOKENS[0] + ";", " " + _TOKENS[1]],
    "nhs_token": ["0123456789ABCDEF0123456789ABCDEF", "0123456789abcdef0123456789abcde", "g" * 32,
                  "01234567 89abcdef0123456789abcdef", "０123456789abcdef0123456789abcdef"],
    "extra": ["\u00a0", 'said "hello", twice'],  # quoted in some files; in an unquoted one a row of another width
}


def policy_file(tmp_path: Path, max_rows: int = 1000, invalid_rows: str = "drop_row") -> Path:
    path = tmp_path / f"policy-{max_rows}-{invalid_rows}.yaml"
    path.write_text(POLICY.format(max_rows=max_rows, invalid_rows=invalid_rows))
    return path


def run(policy_path: Path, content: bytes, *, rows_only: bool, monkeypatch: pytest.MonkeyPatch,
        suppressed: dict[str, set[str]] | None = None) -> tuple[str | None, object]:
    """The outcome of one upload on one path: (which path ran, everything a partner or a reader could see)."""
    policy = load_policy(policy_path)
    dataset = policy.partners["test-partner"].datasets["visits"]
    upload = Upload(BlobCreated("drop-test-partner", "visits/file.csv"), "test-partner", "etag", RECEIVED,
                    dataset=dataset)
    writer = CuratedWriter(dataset.contract, {"fdp.ingest_id": "ingest-1"})
    with monkeypatch.context() as patch:
        if rows_only:
            patch.setattr(columnar, "can_read", lambda *args: False)
        try:
            files = transform(io.BytesIO(content), policy, upload, "ingest-1", RootKey(KEY, "v1"),
                              SuppressionSnapshot(suppressed or {}), writer)
            stored = {month: pq.read_table(path) for month, path in files.items()}
            linkage = {month: pq.read_table(path).to_pylist() for month, path in writer.linkage_files().items()}
            outcome: object = (upload.counts.as_dict(), [p.as_dict() for p in upload.problems.listed],
                               upload.problems.summary(), {m: (t.schema, t.to_pylist()) for m, t in stored.items()},
                               linkage)
        except FileRejected as rejected:
            outcome = ("rejected", [p.as_dict() for p in rejected.problems])
        finally:
            writer.discard()
    return upload.reader, outcome


def both_paths(policy_path: Path, content: bytes, monkeypatch: pytest.MonkeyPatch, **options) -> tuple[str, object]:
    reader, fast = run(policy_path, content, rows_only=False, monkeypatch=monkeypatch, **options)
    _, slow = run(policy_path, content, rows_only=True, monkeypatch=monkeypatch, **options)
    assert fast == slow
    return reader or "", fast


def csv_file(rows: list[list[str]], newline: str = "\r\n", header: list[str] = HEADER) -> bytes:
    return newline.join([",".join(header), *(",".join(map(as_written, header, row)) for row in rows), ""]).encode()


def as_written(name: str, cell: str) -> str:
    """Name tokens hold commas: the source tool's CSV writer quotes them."""
    return quoted(cell) if name == "name_tokens" and "," in cell and not cell.startswith('"') else cell


cell_choices = st.lists(st.integers(0, 99), min_size=len(HEADER), max_size=len(HEADER))
odd_cells = st.lists(st.tuples(st.sampled_from(HEADER), st.integers(0, 99)), max_size=2)
rows_strategy = st.lists(st.tuples(cell_choices, odd_cells), min_size=1, max_size=40)


def pick(choices: list[int], odd: list[tuple[str, int]] = ()) -> list[str]:
    """A row of plain valid cells, with up to two odd ones in it."""
    row = {name: GOOD[name][choice % len(GOOD[name])] for name, choice in zip(HEADER, choices, strict=True)}
    for name, choice in odd:
        row[name] = ODD[name][choice % len(ODD[name])]
    return [row[name] for name in HEADER]


def shaped(lines: list[list[str]], newline: str, quote_every: int, encoding: str) -> tuple[bytes, bool]:
    """A file as partners' tools write them: quoted cells (every n-th, or none), the line end, the encoding
    (Windows-1252 turns what it cannot hold into question marks, as Excel does). And whether every row keeps the
    header's width (a comma in a cell left unquoted splits it: the row path names that row)."""
    def quote(i: int, j: int) -> bool:
        return bool(quote_every) and (i + j) % quote_every == 0
    widths_hold = not any("," in cell and not quote(i, j) and HEADER[j] != "name_tokens"
                          for i, row in enumerate(lines) for j, cell in enumerate(row))
    lines = [[quoted(cell) if quote(i, j) else cell for j, cell in enumerate(row)] for i, row in enumerate(lines)]
    text = csv_file(lines, newline).decode()
    return (text.encode(encoding, errors="replace") if encoding == "cp1252" else text.encode(encoding)), widths_hold


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows_strategy, blank_every=st.integers(0, 7), newline=st.sampled_from(["\r\n", "\n"]),
       quote_every=st.integers(0, 3), encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp1252"]))
def test_random_files_give_the_row_paths_result(rows, blank_every, newline, quote_every, encoding, tmp_path,
                                                monkeypatch):
    lines = [pick(choices, odd) for choices, odd in rows]
    if blank_every:  # blank rows keep their numbers: an empty line, or one of empty cells
        for index in range(blank_every, len(lines), blank_every + 1):
            lines.insert(index, [""] * len(HEADER) if index % 2 else [])
    content, widths_hold = shaped(lines, newline, quote_every, encoding)
    reader, _ = both_paths(policy_file(tmp_path), content, monkeypatch)
    assert reader == ("columnar" if widths_hold else "rows")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows_strategy, max_rows=st.integers(1, 12), invalid_rows=st.sampled_from(["drop_row", "reject_file"]))
def test_row_limits_and_whole_file_rejections_match(rows, max_rows, invalid_rows, tmp_path, monkeypatch):
    lines = [pick(choices, odd) for choices, odd in rows]
    both_paths(policy_file(tmp_path, max_rows, invalid_rows), csv_file(lines), monkeypatch)


def test_a_plain_file_is_read_by_the_columnar_path_and_its_rows_keep_their_order(tmp_path, monkeypatch):
    lines = [pick([i % 3, i % 3, i % 3, 0, 0, 0, 0, 0, 0, 0, i % 2, 0, 0, 0, 0, 0, 0, 0]) for i in range(30)]
    lines[7][4] = "not a postcode"  # goes to the row path, and its neighbours stay in order around it
    reader, (counts, listed, _, stored, _) = both_paths(policy_file(tmp_path), csv_file(lines), monkeypatch)
    assert reader == "columnar"
    assert counts == {"read": 30, "stored": 29, "invalid": 1, "no_consent": 0, "suppressed": 0, "replaced": 0,
                      "superseded": 0}
    assert listed == [{"row": 9, "column": "postcode", "rule": "postcode.format",
                       "message": "not a full UK postcode (for example SW9 8AB)"}]
    [(_, records)] = stored.values()
    assert [r["visit_date"] for r in records] == [date(2026, 4, 17) if i % 2 == 0 else date(2026, 9, 20)
                                                  for i in range(30) if i != 7]


def test_suppressed_people_are_counted_and_dropped_on_both_paths(tmp_path, monkeypatch):
    lines = [pick([i, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]) for i in range(6)]
    suppressed = Pseudonymiser(KEY).pseudonym("nhs_number", _NHS[1])
    reader, (counts, *_) = both_paths(policy_file(tmp_path), csv_file(lines), monkeypatch,
                                      suppressed={suppressed: {"consent"}, "someone-else": {"all"}})
    assert reader == "columnar"
    assert counts["suppressed"] == 1 and counts["stored"] == 5


def test_a_lone_carriage_return_goes_to_the_row_path(tmp_path, monkeypatch):
    lines = [pick([0] * len(HEADER)), pick([1] * len(HEADER))]
    lines[1][3] = "a\rb"  # a carriage return alone ends a line, for Python's csv module as for a spreadsheet
    reader, (counts, *_) = both_paths(policy_file(tmp_path), csv_file(lines), monkeypatch)
    assert reader == "rows"
    assert counts["read"] == 3


def quoted(cell: str) -> str:
    return '"' + cell.replace('"', '""') + '"'


SHAPES = {
    "quoted address, as Excel writes it": lambda rows: csv_file(
        [[quoted(c) if name == "child_name" else c for name, c in zip(HEADER, row, strict=True)] for row in rows]),
    "every cell quoted": lambda rows: csv_file([[quoted(c) for c in row] for row in rows],
                                               header=[quoted(h) for h in HEADER]),
    "CRLF": lambda rows: csv_file(rows, "\r\n"),
    "LF": lambda rows: csv_file(rows, "\n"),
    "byte-order mark": lambda rows: b"\xef\xbb\xbf" + csv_file(rows),
    "Windows-1252": lambda rows: csv_file(rows).decode().encode("cp1252"),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_each_common_file_shape_takes_the_columnar_path_with_the_row_paths_result(shape, tmp_path, monkeypatch):
    lines = [pick([i % 7] * len(HEADER)) for i in range(12)]
    lines[2][3] = 'Okafor, Amara "Mimi"' if shape.startswith(("quoted", "every")) else "Zoë Brontë"
    lines[5][4] = "not a postcode"
    lines[8][9] = "café"  # non-ASCII in a checked column: too long for the note, in every encoding
    reader, (counts, listed, _, stored, _) = both_paths(policy_file(tmp_path), SHAPES[shape](lines), monkeypatch)
    assert reader == "columnar"
    assert counts["read"] == 12 and counts["invalid"] == 1
    assert {(p["row"], p["column"]) for p in listed} == {(7, "postcode")}
    assert sum(len(rows) for _, rows in stored.values()) == counts["stored"]


@pytest.mark.parametrize("line, rule, row", [
    ('"Okafor"Amara', "csv.malformed", 3),  # text after a closing quote: Arrow would glue it on, Python stops
    ('"Okafor" ', "csv.malformed", 3),
    ('"Okafor', "csv.malformed", 3),  # a quote left open to the end of the file
    ('"Okafor\nAmara"', None, None),  # a quoted line break: one record over two lines
], ids=["text after the closing quote", "space after the closing quote", "quote left open", "quoted line break"])
def test_misplaced_quotes_are_read_by_the_row_path_and_both_paths_say_the_same(line, rule, row, tmp_path,
                                                                               monkeypatch):
    """Where Arrow and Python's csv module disagree, Python (strict) is right: a value with text after its closing
    quote, or a quote never closed, is a broken file the partner should fix, not two cells to glue together."""
    lines = [pick([i] * len(HEADER)) for i in range(3)]
    lines[1][3] = line
    reader, outcome = both_paths(policy_file(tmp_path), csv_file(lines), monkeypatch)
    assert reader == "rows"
    if rule:
        assert outcome == ("rejected", [{"row": row, "column": None, "rule": rule,
                                         "message": "a quoted value is not closed, or a quote is misplaced"}])
    else:
        counts, *_ = outcome
        assert counts["read"] == 3


@pytest.mark.parametrize("odd_row", [["too", "few"], ["   "]], ids=["short row", "whitespace line"])
def test_a_row_arrow_cannot_split_sends_the_whole_file_back_to_the_row_path(odd_row, tmp_path, monkeypatch):
    lines = [pick([i % 5] * len(HEADER)) for i in range(10)]
    lines.insert(5, odd_row)
    reader, _ = both_paths(policy_file(tmp_path), csv_file(lines), monkeypatch)
    assert reader == "rows"


def test_the_vectorised_nhs_check_agrees_with_python_stdnum():
    rng = random.Random(11)
    numbers = [f"{rng.randrange(10**10):010d}" for _ in range(20_000)] + _NHS
    passes, digits = columnar._nhs_numbers(pa.array(numbers))
    assert passes.to_pylist() == [nhs.is_valid(number) for number in numbers]
    assert sum(passes.to_pylist()) > 1000, "about one in eleven random numbers is valid"
    assert digits.to_pylist() == numbers


def test_the_scan_sees_line_ends_split_across_its_chunks():
    line = b"a" * (_READ_CHUNK - 1)
    split_crlf = scan_text(io.BytesIO(line + b"\r\nnext\r\n"))
    assert not split_crlf.lone_carriage_return
    assert split_crlf.longest_line == len(line) + 1  # the carriage return counts: the measure errs long
    assert scan_text(io.BytesIO(line + b"\rnext\n")).lone_carriage_return
    assert scan_text(io.BytesIO(b"a,b\r\nc,d\r")).lone_carriage_return
    long_tail = scan_text(io.BytesIO(b"x\n" + b"b" * (2 * _READ_CHUNK)))
    assert long_tail.longest_line == 2 * _READ_CHUNK


def test_a_file_with_names_to_match_on_takes_the_columnar_path_and_keeps_its_match_keys(tmp_path, monkeypatch):
    lines = [pick([i % 3] * len(HEADER)) for i in range(9)]
    for line in lines[::3]:
        line[HEADER.index("name_tokens")] = ""  # Amara's name as her charity sends it, not tokens from a trust
    reader, (counts, _, _, _, linkage) = both_paths(policy_file(tmp_path), csv_file(lines), monkeypatch)
    assert reader == "columnar" and counts["stored"] == 6  # a third have no consent
    amara = MatchKeys(KEY).keys(Identity(first="amara", surname="okafor", born=date(2023, 7, 1)))["name_dob"][0]
    rows = sorted((row for month in linkage.values() for row in month), key=lambda row: row["row"])
    assert [amara in row["strong_keys"] for row in rows] == [True, False] * 3
    assert all(row["first_name"] and row["date_of_birth"] and row["postcode"] for row in rows[::2])


def test_someone_suppressed_by_name_and_birth_date_is_dropped_on_both_paths(tmp_path, monkeypatch):
    lines = [pick([i % 3] * len(HEADER)) for i in range(6)]
    for line in lines[::3]:
        line[HEADER.index("name_tokens")] = ""
    amara = MatchKeys(KEY).keys(Identity(first="amara", surname="okafor", born=date(2023, 7, 1)))["name_dob"][0]
    reader, (counts, *_) = both_paths(policy_file(tmp_path), csv_file(lines), monkeypatch,
                                      suppressed={amara: {"all"}})
    assert reader == "columnar"
    assert counts["suppressed"] == 2 and counts["stored"] == 2


names = st.text(st.sampled_from("aAbBoO éÉ-',."), max_size=14)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(
    st.one_of(st.none(), names), st.one_of(st.none(), names), st.one_of(st.none(), names),
    st.one_of(st.none(), st.dates(date(1990, 1, 1), date(2026, 12, 31))),
    st.one_of(st.none(), st.sampled_from(["SW9 8AB", "SE27 5TD", "W1A 1AA", "SW9", "SW9 ", "A B C"])),
    st.one_of(st.none(), st.sampled_from([*_TOKENS, _TOKENS[0] + ";" + _TOKENS[1]]))), min_size=1, max_size=12))
def test_match_keys_a_column_at_a_time_are_the_row_recipes(rows):
    """`matchcolumns` makes, for a batch, exactly what `MatchKeys` makes row by row, whatever the names hold."""
    from shared.identity.matchcolumns import match_columns
    from shared.identity.matchkeys import identity_from
    from shared.identity.records import RowRecord

    keys = MatchKeys(KEY)
    fields = ("first_name", "surname", "full_name", "date_of_birth", "postcode", "name_tokens")
    inputs = {field: pa.array([row[i] for row in rows], pa.date32() if field == "date_of_birth" else pa.string())
              for i, field in enumerate(fields)}
    columns = {name: values.to_pylist() for name, values in match_columns(keys, inputs, len(rows)).items()}
    for index, row in enumerate(rows):
        identity = identity_from({field: value for field, value in zip(fields, row, strict=True) if value})
        expected = RowRecord()
        if not identity.empty:
            expected.tokens = keys.tokens(identity)
            made = keys.keys(identity)
            expected.strong_keys = [key for name in ("name_dob", "forms_dob", "name_swapped_dob")
                                    for key in made.get(name, [])]
        wanted = expected.columns("")
        assert {name: columns[name][index] for name in columns} == {name: wanted[name] for name in columns}


def workbook(lines: list[list[object]], header: list[str] = HEADER) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    for row in [header, *lines]:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


sheet_cells = st.lists(st.tuples(cell_choices, odd_cells, st.sampled_from(["", "\n", "\r\n", " \t", "\u2003"])),
                       min_size=1, max_size=30)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=sheet_cells, blank_every=st.integers(0, 5))
def test_excel_sheets_take_the_columnar_path_with_the_row_paths_result(rows, blank_every, tmp_path, monkeypatch):
    """An Excel cell may hold what no plain CSV line does (a line break, a carriage return, Unicode spaces at its
    edges): such a row goes to the row path whole, the rest are read a column at a time."""
    lines: list[list[object]] = []
    for choices, odd, edge in rows:
        line = pick(choices, odd)
        line[choices[0] % len(line)] = edge + line[choices[0] % len(line)] + edge
        lines.append(line)
    if blank_every:
        for index in range(blank_every, len(lines), blank_every + 1):
            lines.insert(index, [None] * len(HEADER) if index % 2 else ["\u00a0"])
    lines.append([1, 2.5, None, date(2024, 1, 5)])  # numbers and dates as Excel holds them: a row of errors
    reader, _ = both_paths(policy_file(tmp_path), workbook(lines), monkeypatch)
    assert reader == "columnar"


def test_an_excel_row_wider_than_the_header_sends_the_sheet_to_the_row_path(tmp_path, monkeypatch):
    lines: list[list[object]] = [pick([i % 5] * len(HEADER)) for i in range(6)]
    lines[3] = [*lines[3], "a cell past the header"]
    reader, (counts, listed, *_) = both_paths(policy_file(tmp_path), workbook(lines), monkeypatch)
    assert reader == "rows"
    assert [p["rule"] for p in listed] == ["row.field_count"] and counts["read"] == 6
