"""The file shapes partners really send, each derived from the bench's plain CSV file so the rows are the same.

The plain file is what `csv.writer` writes (and Excel's "CSV UTF-8"): UTF-8 without a byte-order mark, CRLF line
ends, no quotes. Each other shape changes one thing about it, except Windows-1252, which needs characters
outside ASCII to differ from UTF-8 at all, so it re-encodes the accented file:

- lf: line feeds alone (files from Unix tools);
- quoted: every address written as a partner's spreadsheet holds it, "36, Railton Road", quoted as Excel quotes
  a field with a comma in it;
- bom: a UTF-8 byte-order mark first (Excel's "CSV UTF-8" on Windows);
- accented: names with accents (every Chloe becomes Chloé, about one row in twenty), in UTF-8;
- cp1252: the accented file in Windows-1252 (Excel's plain "CSV" on a Windows machine in the UK);
- xlsx: the same rows as an Excel workbook, every cell text, written by openpyxl's streaming writer.

Every file is cached in bench/.data beside the plain one.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Iterator
from pathlib import Path

SHAPES = {
    "plain": "plain CSV (UTF-8, CRLF, unquoted)",
    "lf": "LF line ends",
    "quoted": 'quoted addresses ("36, Railton Road")',
    "bom": "UTF-8 with a byte-order mark",
    "accented": "accented names (Chloé), UTF-8",
    "cp1252": "accented names, Windows-1252",
    "xlsx": "Excel workbook (.xlsx)",
}
ADDRESS = 3
"""The address column of bench/policy.yaml's contract."""
_LINES_PER_WRITE = 50_000


def path_of(plain: Path, shape: str) -> Path:
    if shape == "plain":
        return plain
    return plain.with_suffix(".xlsx") if shape == "xlsx" else plain.with_name(f"{plain.stem}-{shape}.csv")


def derive(plain: Path, shape: str) -> Path:
    """The file of this shape holding the plain file's rows (generated once, then cached)."""
    path = path_of(plain, shape)
    if path.exists():
        return path
    partial = path.with_suffix(".partial")
    if shape == "xlsx":
        _write_xlsx(plain, partial)
    else:
        _rewrite_lines(plain, partial, shape)
    partial.rename(path)
    return path


def _quote_address(line: bytes) -> bytes:
    cells = line.split(b",")
    number, _, street = cells[ADDRESS].partition(b" ")
    cells[ADDRESS] = b'"' + number + b", " + street + b'"' if street else cells[ADDRESS]
    return b",".join(cells)


def _accent(line: bytes) -> bytes:
    return line.replace(b"Chloe ", "Chloé ".encode())


_LINE_CHANGES: dict[str, Callable[[bytes], bytes]] = {
    "lf": lambda line: line,
    "quoted": _quote_address,
    "bom": lambda line: line,
    "accented": _accent,
    "cp1252": lambda line: _accent(line).decode("utf-8").encode("cp1252"),
}


def _rewrite_lines(plain: Path, out: Path, shape: str) -> None:
    """Each line of the plain file changed for the shape (the header keeps its cells), a block at a time."""
    change, end = _LINE_CHANGES[shape], b"\n" if shape == "lf" else b"\r\n"
    with plain.open("rb") as source, out.open("wb") as sink:
        if shape == "bom":
            sink.write(codecs.BOM_UTF8)
        sink.write(source.readline().rstrip(b"\r\n") + end)
        for block in _blocks(source):
            sink.write(b"".join(change(line.rstrip(b"\r\n")) + end for line in block))


def _blocks(source: io.BufferedReader) -> Iterator[list[bytes]]:
    while block := source.readlines(_LINES_PER_WRITE * 100):
        yield block


def _write_xlsx(plain: Path, out: Path) -> None:
    """The plain file's rows as a workbook, streamed (openpyxl's write-only mode keeps memory flat)."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("sessions")
    with plain.open(newline="", encoding="utf-8") as text:
        for row in csv.reader(text):
            sheet.append(row)
    workbook.save(out)


def calamine_rows(workbook: Path, rows: int) -> int | None:
    """About how many rows of this workbook's kind the core still reads with calamine: its limit on the cells'
    uncompressed size (`shared.ingest.formats.XLSX_IN_MEMORY_BYTES`) over their size per row here."""
    import zipfile

    from shared.ingest import formats

    limit = getattr(formats, "XLSX_IN_MEMORY_BYTES", None)
    if limit is None:
        return None
    with zipfile.ZipFile(workbook) as archive:
        cells = sum(entry.file_size for entry in archive.infolist()
                    if entry.filename.startswith("xl/worksheets/") or entry.filename == "xl/sharedStrings.xml")
    return int(round(limit / (cells / rows), -3))
