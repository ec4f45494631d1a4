"""Reading an upload: spooled to a temporary file, recognised by content (never by name), read as rows.

CSV in UTF-8, UTF-8 with BOM or Windows-1252; XLSX (first worksheet). Anything else, and anything that looks
like binary data, a ZIP archive or a decompression bomb, is refused with a rule a partner can act on. Rows are
yielded one at a time, so memory does not grow with the file.
"""

from __future__ import annotations

import codecs
import csv
import tempfile
import zipfile
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import IO

import numpy as np

from shared.policy.contracts import FileRejected, Problem

_READ_CHUNK = 1024 * 1024
_CONTROL = frozenset([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_NOT_CONTROL = bytes(b for b in range(256) if b not in _CONTROL)
"""Deleting every other byte leaves only control bytes: a fast test for binary data."""
_NOT_CP1252_UNDEFINED = bytes(b for b in range(256) if b not in (0x81, 0x8D, 0x8F, 0x90, 0x9D))
_BOM = codecs.BOM_UTF8
XLSX_MAX_EXPANSION = 100
"""A worksheet part may expand at most this many times on decompression (real sheets manage 10 to 30)."""
XLSX_MAX_ENTRIES = 10_000
XLSX_IN_MEMORY_BYTES = 96 * 1024 * 1024
"""Workbooks whose cells take up to this much (uncompressed XML: 100,000 rows of 12 columns take about 70 MB) are
read by calamine (Rust), some ten times faster than openpyxl but holding the whole sheet (about one and a half
times this); larger ones are streamed by openpyxl, so memory stays bounded whatever the upload."""
csv.field_size_limit(1_000_000)


def spool(chunks: Iterable[bytes], max_bytes: int) -> IO[bytes]:
    """Copy a download to a temporary file, refusing it as soon as it passes the size limit."""
    spooled = tempfile.TemporaryFile()  # noqa: SIM115 - returned open; the caller closes it
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            spooled.close()
            raise FileRejected(too_large(max_bytes))
        spooled.write(chunk)
    spooled.seek(0)
    return spooled


def too_large(max_bytes: int) -> Problem:
    return Problem("file.too_large", f"the file is larger than the agreed limit of {max_bytes // (1024 * 1024)} MB")


def read_table(fh: IO[bytes], max_line_chars: int) -> tuple[list[str], Generator[tuple[int, list[str]], None, None],
                                                              TextProfile | None]:
    """The header, an iterator of (row number, cells), and for CSV what the scan learned.

    Row 1 is the header, as in a spreadsheet; blank rows are skipped but keep their numbers."""
    profile = None
    head = fh.read(8)
    fh.seek(0)
    if not head.strip():
        raise FileRejected(Problem("file.empty", "the file is empty"))
    if head.startswith(b"PK\x03\x04"):
        rows = _xlsx_rows(fh, max_line_chars)
    elif head.startswith(b"\xd0\xcf\x11\xe0"):
        raise FileRejected(Problem("file.format", "old Excel (.xls) files are not accepted: save as .xlsx or CSV"))
    else:
        profile = scan_text(fh)
        rows = _csv_rows(fh, profile.encoding, max_line_chars)
    first = next(rows, None)
    if first is None:
        raise FileRejected(Problem("file.empty", "the file is empty"))
    _, header = first
    return header, (row for row in rows if "".join(row[1]).strip()), profile  # some cell has text


@dataclass(frozen=True)
class TextProfile:
    """What one pass over a CSV upload learned: its encoding, and whether the columnar reader can take it."""

    encoding: str
    ascii: bool
    quoted: bool
    """The file holds a quote character somewhere."""
    lone_carriage_return: bool
    """Some line ends in a carriage return alone (or may: one at a chunk's end counts)."""
    longest_line: int
    """In bytes between line feeds, which is never fewer than characters."""


def scan_text(fh: IO[bytes]) -> TextProfile:
    """UTF-8 (with or without BOM) when the whole file decodes as UTF-8, otherwise Windows-1252.

    Binary data is refused. The same pass measures what the columnar reader needs to know; each test is a
    C-level scan of a chunk (translate, isascii, count, a NumPy search for line ends).
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8, cp1252, ascii_only, quoted, lone_cr, pending_cr = True, True, True, False, False, False
    longest = carried = 0
    while chunk := fh.read(_READ_CHUNK):
        if chunk.translate(None, _NOT_CONTROL):
            raise FileRejected(Problem("file.binary", "the file holds binary data: upload a CSV or an Excel file"))
        quoted = quoted or b'"' in chunk
        lone_cr, pending_cr = _lone_carriage_return(chunk, lone_cr, pending_cr)
        ascii_only = ascii_only and chunk.isascii()
        if not ascii_only:  # from the first non-ASCII chunk on, so a character split across chunks is seen whole
            cp1252 = cp1252 and not chunk.translate(None, _NOT_CP1252_UNDEFINED)
            if utf8:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    utf8 = False
        longest, carried = _longest_line(chunk, longest, carried)
    if utf8 and not ascii_only:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8 = False
    fh.seek(0)
    if not (utf8 or cp1252):
        raise FileRejected(Problem("file.encoding", "the file is not text in UTF-8 or Windows-1252"))
    return TextProfile("utf-8-sig" if utf8 else "cp1252", ascii_only, quoted, lone_cr or pending_cr, longest)


def _lone_carriage_return(chunk: bytes, seen: bool, pending: bool) -> tuple[bool, bool]:
    """Whether a carriage return without its line feed has been seen, and whether the chunk ends in one whose
    line feed may open the next chunk."""
    unmatched = chunk.count(b"\r") - chunk.count(b"\r\n") - chunk.endswith(b"\r")
    unmatched += pending and not chunk.startswith(b"\n")
    return seen or unmatched > 0, chunk.endswith(b"\r")


def _longest_line(chunk: bytes, longest: int, carried: int) -> tuple[int, int]:
    """The longest line so far, and the length of the unfinished line at the chunk's end."""
    ends = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == ord("\n"))
    if not len(ends):
        return max(longest, carried + len(chunk)), carried + len(chunk)
    longest = max(longest, carried + int(ends[0]))
    if len(ends) > 1:
        longest = max(longest, int(np.diff(ends).max()) - 1)
    tail = len(chunk) - int(ends[-1]) - 1
    return max(longest, tail), tail


def _csv_rows(fh: IO[bytes], encoding: str, max_line_chars: int) -> Iterator[tuple[int, list[str]]]:
    import io

    text = io.TextIOWrapper(fh, encoding=encoding, newline="")
    reader = csv.reader(_bounded_lines(text, max_line_chars), strict=True)
    number = 0
    try:
        for number, cells in enumerate(reader, start=1):
            yield number, cells
    except csv.Error:
        raise FileRejected(Problem("csv.malformed", "a quoted value is not closed, or a quote is misplaced",
                                   row=number + 1)) from None
    finally:
        if not fh.closed:  # a rejected file may be closed before this generator is collected
            text.detach()


def _bounded_lines(text: IO[str], max_chars: int) -> Iterator[str]:
    """Lines of the text, refusing any over the limit without ever reading one whole into memory."""
    number = 0
    while line := text.readline(max_chars + 3):
        number += 1
        if len(line.rstrip("\r\n")) > max_chars:
            raise FileRejected(Problem("file.line_too_long", f"a line is longer than {max_chars} characters",
                                       row=number))
        yield line


def _xlsx_rows(fh: IO[bytes], max_cell_chars: int) -> Iterator[tuple[int, list[str]]]:
    sheet_bytes = _check_workbook_archive(fh)
    width = 0
    try:
        rows = _calamine_rows(fh) if sheet_bytes <= XLSX_IN_MEMORY_BYTES else _openpyxl_rows(fh)
        for number, values in enumerate(rows, start=1):
            cells = [value if type(value) is str else _cell_text(value) for value in values]
            if number == 1:
                width = _used_width(cells)
            cells = _fit(cells, width)
            if max(map(len, cells), default=0) > max_cell_chars:
                raise FileRejected(Problem("file.line_too_long", f"a cell is longer than {max_cell_chars} characters",
                                           row=number))
            yield number, cells
    except FileRejected:
        raise
    except Exception:  # both readers raise many types for a damaged workbook; all mean the same to the partner
        raise FileRejected(Problem("xlsx.unreadable", "the Excel file is damaged or not a workbook")) from None


def _calamine_rows(fh: IO[bytes]) -> Iterator[Sequence[object]]:
    """The first worksheet's rows by calamine (Rust), from cell A1 as openpyxl gives them: calamine's rows start at
    row 1 but at the first used column, so the columns before it are put back (tests/test_excel.py holds the two
    readers equal). A cell holding an error (#N/A) reads as blank."""
    from python_calamine import CalamineWorkbook

    sheet = CalamineWorkbook.from_filelike(fh).get_sheet_by_index(0)
    if sheet.start is None:
        return
    lead: list[object] = [""] * sheet.start[1]
    for values in sheet.iter_rows():
        yield lead + values if lead else values


def _openpyxl_rows(fh: IO[bytes]) -> Iterator[Sequence[object]]:
    """The first worksheet's rows by openpyxl, streamed: slower, but its memory does not grow with the sheet."""
    import openpyxl

    workbook = openpyxl.load_workbook(fh, read_only=True, data_only=True)
    yield from workbook.worksheets[0].iter_rows(values_only=True)


def _check_workbook_archive(fh: IO[bytes]) -> int:
    """Refuse what is not a workbook, or expands like a decompression bomb; the cells' size in bytes (worksheets
    and shared strings, uncompressed)."""
    try:
        with zipfile.ZipFile(fh) as archive:
            entries = archive.infolist()
    except zipfile.BadZipFile:
        raise FileRejected(Problem("xlsx.unreadable", "the Excel file is damaged or not a workbook")) from None
    finally:
        fh.seek(0)
    names = {entry.filename for entry in entries}
    if "xl/workbook.xml" not in names or "[Content_Types].xml" not in names:
        raise FileRejected(Problem("file.archive", "ZIP archives are not accepted: upload a CSV or an Excel file"))
    too_many = len(entries) > XLSX_MAX_ENTRIES
    expands = any(entry.file_size > XLSX_MAX_EXPANSION * max(entry.compress_size, 1024) for entry in entries)
    if too_many or expands:
        raise FileRejected(Problem("xlsx.bomb", "the workbook expands far beyond its size (a decompression bomb)"))
    return sum(e.file_size for e in entries
               if e.filename.startswith("xl/worksheets/") or e.filename == "xl/sharedStrings.xml")


def _used_width(cells: list[str]) -> int:
    """Worksheets often report more columns than are used: the header ends at its last named cell."""
    return max((i + 1 for i, cell in enumerate(cells) if cell.strip()), default=0)


def _fit(cells: list[str], width: int) -> list[str]:
    """Pad short rows; drop empty cells past the header (cells with data there are left to fail the row)."""
    if len(cells) < width:
        return cells + [""] * (width - len(cells))
    if len(cells) > width and not any(cell.strip() for cell in cells[width:]):
        return cells[:width]
    return cells


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
