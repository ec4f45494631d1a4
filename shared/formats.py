"""Reading an upload: spooled to a temporary file, recognised by content (never by name), read as rows.

CSV in UTF-8, UTF-8 with BOM or Windows-1252; XLSX (first worksheet). Anything else, and anything that looks
like binary data, a ZIP archive or a decompression bomb, is refused with a rule a partner can act on. Rows are
yielded one at a time, so memory does not grow with the file.
"""

from __future__ import annotations

import codecs
import csv
import re
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time
from typing import IO

from shared.contracts import FileRejected, Problem

_READ_CHUNK = 1024 * 1024
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CP1252_UNDEFINED = re.compile(rb"[\x81\x8d\x8f\x90\x9d]")
_BOM = codecs.BOM_UTF8
XLSX_MAX_EXPANSION = 100
"""A worksheet part may expand at most this many times on decompression (real sheets manage 10 to 30)."""
XLSX_MAX_ENTRIES = 10_000
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


def read_table(fh: IO[bytes], max_line_chars: int) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The header and an iterator of (row number, cells); row 1 is the header, as in a spreadsheet."""
    head = fh.read(8)
    fh.seek(0)
    if not head.strip():
        raise FileRejected(Problem("file.empty", "the file is empty"))
    if head.startswith(b"PK\x03\x04"):
        rows = _xlsx_rows(fh, max_line_chars)
    elif head.startswith(b"\xd0\xcf\x11\xe0"):
        raise FileRejected(Problem("file.format", "old Excel (.xls) files are not accepted: save as .xlsx or CSV"))
    else:
        rows = _csv_rows(fh, _csv_encoding(fh), max_line_chars)
    first = next(rows, None)
    if first is None:
        raise FileRejected(Problem("file.empty", "the file is empty"))
    _, header = first
    return header, (row for row in rows if any(cell.strip() for cell in row[1]))


def _csv_encoding(fh: IO[bytes]) -> str:
    """UTF-8 (with or without BOM) when the whole file decodes as UTF-8, otherwise Windows-1252."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8, cp1252 = True, True
    while chunk := fh.read(_READ_CHUNK):
        if _CONTROL_BYTES.search(chunk):
            raise FileRejected(Problem("file.binary", "the file holds binary data: upload a CSV or an Excel file"))
        cp1252 = cp1252 and not _CP1252_UNDEFINED.search(chunk)
        if utf8:
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError:
                utf8 = False
    if utf8:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8 = False
    fh.seek(0)
    if utf8:
        return "utf-8-sig"
    if cp1252:
        return "cp1252"
    raise FileRejected(Problem("file.encoding", "the file is not text in UTF-8 or Windows-1252"))


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
    _check_workbook_archive(fh)
    import openpyxl

    width = 0
    try:
        workbook = openpyxl.load_workbook(fh, read_only=True, data_only=True)
        sheet = workbook.worksheets[0]
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            cells = [_cell_text(value) for value in values]
            if number == 1:
                width = _used_width(cells)
            cells = _fit(cells, width)
            if any(len(cell) > max_cell_chars for cell in cells):
                raise FileRejected(Problem("file.line_too_long", f"a cell is longer than {max_cell_chars} characters",
                                           row=number))
            yield number, cells
    except FileRejected:
        raise
    except Exception:  # openpyxl raises many types for a damaged workbook; all mean the same to the partner
        raise FileRejected(Problem("xlsx.unreadable", "the Excel file is damaged or not a workbook")) from None


def _check_workbook_archive(fh: IO[bytes]) -> None:
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
