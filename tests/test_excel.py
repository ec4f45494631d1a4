"""Excel uploads: calamine (Rust) reads workbooks up to `XLSX_IN_MEMORY_BYTES`, openpyxl streams larger ones, and
both give the pipeline the same header and rows, numbered from cell A1 as a spreadsheet numbers them."""

from __future__ import annotations

import io
from datetime import date, datetime, time

import pytest
from openpyxl import Workbook

from shared.ingest import formats
from shared.ingest.formats import read_table
from shared.policy.contracts import FileRejected


def workbook(rows: list[list[object]], start: str = "A1") -> bytes:
    """A workbook whose first sheet holds `rows` from the cell `start` on (openpyxl writes it, as Excel would)."""
    book = Workbook()
    sheet = book.active
    first_row = int(start[1:])
    first_column = ord(start[0]) - ord("A") + 1
    for r, values in enumerate(rows):
        for c, value in enumerate(values):
            if value is not None:
                sheet.cell(row=first_row + r, column=first_column + c, value=value)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def read(content: bytes, monkeypatch: pytest.MonkeyPatch, reader: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and rows as the pipeline sees them, read by the one reader named."""
    with monkeypatch.context() as patch:
        patch.setattr(formats, "XLSX_IN_MEMORY_BYTES", 2**62 if reader == "calamine" else -1)
        if reader == "calamine":  # prove which reader ran: openpyxl would fail the test
            patch.setattr(formats, "_openpyxl_rows", None)
        else:
            patch.setattr(formats, "_calamine_rows", None)
        header, rows, profile = read_table(io.BytesIO(content), 400)
        assert profile is None
        return header, list(rows)


TYPED = [
    ["nhs_number", "name", "date_of_birth", "visit", "sessions", "score", "first_visit", "at", "note"],
    [9434765919, "Zoë Brontë", date(2023, 7, 1), datetime(2026, 4, 17, 9, 30), 5, 2.5, True, time(10, 5), None],
    [None, None, None, None, None, None, None, None, None],  # a blank row keeps its number
    ["943 476 5919", "  Amara  ", datetime(2022, 11, 30), date(2026, 9, 20), 0, 1e-7, False, None, "=1+1"],
    ["9434765919", "O'Neil, \"Mimi\"", "2023-07-01", "17/04/2026", 12345678901, -0.0, "Y", None, "line\nbreak"],
]


@pytest.mark.parametrize("start", ["A1", "C4"], ids=["from A1", "from C4"])
def test_calamine_gives_openpyxls_header_and_rows(start, monkeypatch):
    content = workbook(TYPED, start)
    fast = read(content, monkeypatch, "calamine")
    slow = read(content, monkeypatch, "openpyxl")
    assert fast == slow
    if start == "A1":
        header, rows = fast
        assert header == TYPED[0]
        assert [number for number, _ in rows] == [2, 4, 5]
        assert rows[0][1] == ["9434765919", "Zoë Brontë", "2023-07-01", "2026-04-17T09:30:00", "5", "2.5", "true",
                              "10:05:00", ""]


def test_a_cell_holding_an_error_reads_as_blank_with_calamine(monkeypatch):
    """The one difference between the readers: openpyxl gives an error cell's code (#N/A) as its text, calamine
    gives nothing. Blank is the truer reading (the cell holds no value), and a required column still names the
    row and column on the receipt."""
    content = workbook([["nhs_number", "note"], ["9434765919", "#N/A"]])
    _, [(_, fast)] = read(content, monkeypatch, "calamine")
    _, [(_, slow)] = read(content, monkeypatch, "openpyxl")
    assert (fast, slow) == (["9434765919", ""], ["9434765919", "#N/A"])


@pytest.mark.parametrize("reader", ["calamine", "openpyxl"])
def test_a_damaged_workbook_is_refused_by_either_reader(reader, monkeypatch):
    content = bytearray(workbook(TYPED))
    start = content.index(b"xl/worksheets/sheet1.xml")  # corrupt the worksheet's compressed data
    content[start + 200:start + 400] = bytes(200)
    with pytest.raises(FileRejected) as refused:
        read(bytes(content), monkeypatch, reader)
    assert [p.rule for p in refused.value.problems] == ["xlsx.unreadable"]


def test_large_workbooks_are_streamed_by_openpyxl(monkeypatch):
    content = workbook([["a"], ["1"]])
    used = []
    original = formats._openpyxl_rows
    monkeypatch.setattr(formats, "XLSX_IN_MEMORY_BYTES", 10)
    monkeypatch.setattr(formats, "_openpyxl_rows", lambda fh: used.append(True) or original(fh))
    header, rows, _ = read_table(io.BytesIO(content), 400)
    assert (header, list(rows), used) == (["a"], [(2, ["1"])], [True])
