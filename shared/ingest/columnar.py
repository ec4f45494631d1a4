"""The columnar path: plain CSV uploads checked, pseudonymised and generalised a batch at a time.

The row path (`contracts.BoundContract.check` and the ingest's row handler) defines what every cell means. This
path gives the same result, only faster: the same counts, the same receipt, the same curated rows in the same
order. It is built to be conservative, so that sameness holds by construction:

- It reads only files whose rows are single lines: CSV in UTF-8 (BOM or not) or Windows-1252, LF or CRLF, no line
  over the limit (`can_read`); quoted fields are read when every line is a whole record as Python's csv module
  (strict) reads it, checked by one regular expression per block. Anything else goes to the row path from the
  start, and a file whose lines are not (a quoted line break, a quote misplaced, a row of another width) goes back
  to it (`Fallback`) before anything is stored: the row path then names the row, so both paths say the same.
- In a batch, a cell is accepted here only when a vectorised check proves it valid and its value is computed as
  the row path would compute it: ASCII cells trimmed of spaces and tabs, identifiers in their strict form, and
  every other column's distinct values converted once by the row path's own function. A row with any other cell
  goes to the row path whole, in its place, so every problem a receipt lists is the row path's.
"""

from __future__ import annotations

import codecs
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import IO, Any, Protocol, TypeGuard

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from shared.identity.matchcolumns import empty_lists, match_columns
from shared.identity.matchkeys import NAME_TOKENS_LIMIT, NAME_TOKENS_PATTERN
from shared.identity.pseudonymise import MAX_REFERENCE_LENGTH, InvalidIdentifier, Pseudonymiser, scoped_type
from shared.identity.records import RecordMaker, id_lists
from shared.identity.source import TOKEN_TYPE
from shared.ingest import curated
from shared.ingest.formats import TextProfile
from shared.ingest.receipts import RowCounts, RowList
from shared.policy import generalise
from shared.policy.contracts import _FALSE, _TRUE, BoundContract, CheckedRow, Column, FileRejected, Problem
from shared.policy.generalise import InvalidValue

BLOCK_BYTES = 4 * 1024 * 1024
"""The file is read in blocks of about this size, each one batch (about 38,000 rows of 12 columns). Larger blocks
gain little speed; peak memory grows by about six times the block size."""
_ROW, _CONSENT, _DATE, _ID, _MATCH = "__row", "__consent", "__date:", "__id:", "__match:"
"""Working columns beside the curated ones while a batch is checked (curated names never start with __)."""
_STRONG = "strong_keys"
SHEET_BATCH_ROWS = 32_768
"""Rows of an Excel sheet checked at a time (about a CSV block's worth)."""
_CONTROL = "[\x00-\x08\x0a-\x1f\x7f]"
"""Control characters other than the tab, which Python's strip() and the row path's rules may treat otherwise."""
_SPACES = " \t"
"""What Python's strip() removes from an ASCII cell of a plain line (other whitespace is a control byte)."""
_NHS_WEIGHTS = np.arange(10, 0, -1)
DISTINCT_WORTH_IT = 0.8
"""Identifiers are hashed once per distinct value while a batch has fewer distinct values than this share."""
_POSTCODE = r"^(?P<outward>[A-Z]{1,2}[0-9][A-Z0-9]?)[ \t]*(?P<sector>[0-9])(?P<unit>[ABD-HJLNP-UW-Z]{2})$"
"""generalise._POSTCODE, with Python's \\s narrowed to the whitespace a plain line can hold."""
_FIELD = r'(?:"(?:[^"\r\n]|"")*"|[^,"\r\n][^,\r\n]*|)'
_RECORD = rf"^{_FIELD}(?:,{_FIELD})*\r?$"
"""One line that is one whole record to Python's csv module with strict=True: each field either quoted (a quote
inside doubled, the closing quote followed by a comma or the line's end) or not starting with a quote (a quote
later in it is kept as text). Arrow reads such a line to the same cells; on a line that is not (`"a"b`, a quote
left open), Arrow reads on where Python stops with an error, and the row path is right to stop: the partner
learns which row to fix instead of finding two cells glued together."""


class Fallback(Exception):
    """The file needs the row path after all (a row of another width, say); nothing has been stored."""


class RowHandler(Protocol):
    """The ingest's handler for one checked row (counts, consent, pseudonyms, suppression, purge month)."""

    def handle(self, result: tuple[CheckedRow | None, list[Problem]], writer: Any) -> None: ...

    def purge_month(self, anchor: date | None) -> str: ...


@dataclass
class Context:
    bound: BoundContract
    handler: RowHandler
    pseudonymiser: Pseudonymiser
    records: RecordMaker
    partner: str
    ingest_id: str
    received: date
    needs_consent: bool
    suppressed: set[str]
    retention_column: str | None
    max_rows: int
    ascii: bool
    """The whole file is ASCII (the scan says so), so no cell needs Python's Unicode rules."""
    longest_line: int
    encoding: str = "utf-8-sig"
    """The scan's: UTF-8 (BOM or not) or Windows-1252, which is turned into UTF-8 a block at a time."""
    quoted: bool = False
    """The file holds a quote character: each block's lines are checked to be whole records before Arrow reads them."""
    scanned: bool = True
    """Cells come from the lines of a text file the scan checked (no control characters); an Excel sheet's may hold
    any character, so there a cell with a control character is left to the row path."""
    repeats: dict[str, bool] = field(default_factory=dict)
    """Per identifier type: whether its values repeated enough in the last batch to hash distinct ones only."""
    left_out: RowList = field(default_factory=RowList)
    """Rows left out without an error (no consent, suppressed), by row number, as the row path lists them."""


def can_read(profile: TextProfile | None, max_line_chars: int) -> TypeGuard[TextProfile]:
    """Text (not Excel) with every line ended by a line feed and within the limit."""
    return profile is not None and not profile.lone_carriage_return and profile.longest_line <= max_line_chars


def transform(fh: IO[bytes], context: Context, counts: RowCounts, writer: curated.CuratedWriter) -> None:
    """Check and store every row of the file; counts and problems accumulate as on the row path."""
    first_row = 2
    for batch in _batches(fh, context.bound.width, context.encoding, context.quoted):
        numbers = np.arange(first_row, first_row + batch.num_rows)
        first_row += batch.num_rows
        _Batch(context, batch, numbers, counts).store(writer)


def transform_rows(rows: Iterable[tuple[int, list[str]]], context: Context, counts: RowCounts,
                   writer: curated.CuratedWriter) -> None:
    """Rows already split into cells (an Excel sheet, by calamine), checked a batch at a time as a CSV file's are.
    A row of another width, or a sheet the reader refuses part way (a cell over the limit), goes back to the row
    path whole (`Fallback`), which names the row and the rule in file order."""
    names = [f"c{i}" for i in range(context.bound.width)]
    iterator = iter(rows)
    while True:
        try:
            chunk = list(itertools.islice(iterator, SHEET_BATCH_ROWS))
        except FileRejected:
            raise Fallback from None
        if not chunk:
            return
        if any(len(cells) != len(names) for _, cells in chunk):
            raise Fallback
        columns = zip(*(cells for _, cells in chunk), strict=True)
        batch = pa.RecordBatch.from_arrays([pa.array(column, pa.string()) for column in columns], names)
        _Batch(context, batch, np.array([number for number, _ in chunk]), counts).store(writer)


def _batches(fh: IO[bytes], width: int, encoding: str, quoted: bool) -> Iterator[pa.RecordBatch]:
    """The rows after the header, a block of whole lines at a time. With every record on one line, a block may end
    at any line end; Arrow only splits the lines into cells."""
    names = [f"c{i}" for i in range(width)]
    read_options = pcsv.ReadOptions(use_threads=False, column_names=names, block_size=2 * BLOCK_BYTES)
    parse_options = pcsv.ParseOptions(quote_char='"' if quoted else False, double_quote=True,
                                      newlines_in_values=False, ignore_empty_lines=False)
    convert_options = pcsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()), null_values=[],
                                          strings_can_be_null=False, check_utf8=False)  # the scan checked the text
    header = fh.readline()
    if quoted:
        _check_records(_utf8(header, encoding).removeprefix(codecs.BOM_UTF8))
    rest = b""
    while True:
        chunk = fh.read(BLOCK_BYTES)
        data = rest + chunk
        end = len(data) if not chunk else data.rfind(b"\n") + 1
        rest = data[end:]
        if end:
            block = _utf8(data[:end], encoding)
            if quoted:
                _check_records(block)
            try:
                table = pcsv.read_csv(pa.py_buffer(block), read_options=read_options,
                                      parse_options=parse_options, convert_options=convert_options)
            except pa.ArrowInvalid:  # a row of another width: the row path names it
                raise Fallback from None
            yield pa.RecordBatch.from_arrays([column.combine_chunks() for column in table.columns], names)
        if not chunk:
            return


def _utf8(block: bytes, encoding: str) -> bytes:
    """A block of whole lines as UTF-8 (Windows-1252 has one byte per character, so its line ends stay put)."""
    return block if encoding == "utf-8-sig" else block.decode(encoding).encode()


def _check_records(block: bytes) -> None:
    """Every line of the block is one whole record, as Python's csv module reads it (`_RECORD`)."""
    lines = pc.list_flatten(pc.split_pattern(pa.array([block], pa.string()), "\n"))
    if not pc.all(pc.match_substring_regex(lines, _RECORD)).as_py():
        raise Fallback


class _Batch:
    """One batch of rows: which are blank, which pass here, which go to the row path; then storage."""

    def __init__(self, context: Context, batch: pa.RecordBatch, numbers: np.ndarray, counts: RowCounts) -> None:
        self.context, self.counts = context, counts
        self.batch, self.numbers = batch, numbers
        self.trim = pc.ascii_trim if context.ascii else pc.utf8_trim
        self.trimmed = {position: self.trim(batch.column(position), _SPACES)
                        for column, position, kind in context.bound.present if kind != "direct" or column.match}
        self.ascii = {} if context.ascii else {position: self._simple(batch.column(position))
                                               for position in self.trimmed}
        blank = self._blank()
        if blank.any():
            keep = pa.array(~blank)
            self._narrow(lambda array: array.filter(keep), numbers[~blank])

    def _simple(self, cells: pa.Array) -> pa.Array:
        """Cells Arrow trims and checks exactly as Python does: ASCII, and free of control characters where the
        scan has not already ruled them out."""
        simple = pc.string_is_ascii(cells)
        if not self.context.scanned:
            simple = pc.and_(simple, pc.invert(pc.match_substring_regex(cells, _CONTROL)))
        return simple

    def _narrow(self, select: Callable[[Any], Any], numbers: np.ndarray) -> None:
        """Keep only some rows of the batch and of everything computed from it so far."""
        self.batch, self.numbers = select(self.batch), numbers
        self.trimmed = {position: select(column) for position, column in self.trimmed.items()}
        self.ascii = {position: select(column) for position, column in self.ascii.items()}

    def _blank(self) -> np.ndarray:
        """Rows with no text in any cell, as Python's strip() sees it. Nearly every row shows text in its first
        checked column, so each further column is looked at only for the rows still in doubt."""
        context, batch = self.context, self.batch
        doubt = np.arange(batch.num_rows)
        order = [*self.trimmed, *(p for p in range(batch.num_columns) if p not in self.trimmed)]
        for position in order:
            if not len(doubt):
                break
            rows = None if len(doubt) == batch.num_rows else pa.array(doubt)
            cells = _take(batch.column(position), rows)
            trimmed = _take(self.trimmed[position], rows) if position in self.trimmed else self.trim(cells, _SPACES)
            empty = pc.equal(pc.binary_length(trimmed), 0)
            if not context.ascii:  # a cell of non-ASCII whitespace is blank to Python: decided below
                empty = pc.or_(empty, pc.invert(self._simple(cells)))
            doubt = doubt[_bools(empty)]
        blank = np.zeros(batch.num_rows, dtype=bool)
        for index in doubt:
            blank[index] = context.ascii or not any(column[index].as_py().strip() for column in batch.columns)
        return blank

    def store(self, writer: curated.CuratedWriter) -> None:
        context, counts = self.context, self.counts
        rows = len(self.numbers)
        over = context.max_rows - counts.read
        if rows > over:  # the rows before the limit are handled as the row path would, then the file is refused
            self._truncate(max(over, 0))
            self.store(writer)
            raise FileRejected(Problem("file.too_many_rows", f"more than {context.max_rows} rows",
                                       int(self._overflow_row)))
        checks = _Checks(context, self.trimmed, self.ascii, rows)
        accepted = checks.accepted()
        slow = np.flatnonzero(~accepted)
        fast = pa.array(accepted)
        late = self._row_path(slow)
        counts.read += rows - len(slow)
        table = self._fast_rows(checks, fast)
        if late:
            table = pa.concat_tables([table, pa.Table.from_pylist(late, schema=table.schema)])
            table = table.take(pc.sort_indices(table.column(_ROW)))
        self._write(table.drop_columns([_ROW]), writer)

    def _truncate(self, keep: int) -> None:
        self._overflow_row = self.numbers[keep]
        self._narrow(lambda array: array.slice(0, keep), self.numbers[:keep])

    def _row_path(self, slow: np.ndarray) -> list[dict[str, Any]]:
        """Rows the vectorised checks could not accept, through the row path in file order."""
        if not len(slow):
            return []
        indices = pa.array(slow)
        cells = [column.take(indices).to_pylist() for column in self.batch.columns]
        collected = _Collector()
        for position, row in enumerate(zip(*cells, strict=True)):
            collected.row = int(self.numbers[slow[position]])
            self.context.handler.handle(self.context.bound.check(collected.row, list(row), self.context.received),
                                        collected)
        return collected.records

    def _fast_rows(self, checks: _Checks, fast: pa.Array) -> pa.Table:
        """The accepted rows: consent, then pseudonyms, then the suppression register, as on the row path."""
        context, counts = self.context, self.counts
        frame = checks.frame(pa.array(self.numbers)).filter(fast)
        if context.needs_consent:
            consented = frame.column(_CONSENT) if _CONSENT in frame.column_names else pa.nulls(len(frame), pa.bool_())
            given = pc.fill_null(consented, False)
            before = len(frame)
            context.left_out.extend("no_consent", frame.column(_ROW).filter(pc.invert(given)).to_pylist())
            frame = frame.filter(given)
            counts.no_consent += before - len(frame)
        pseudonyms = {column: _hash(context.pseudonymiser, scoped_type(column.id_type or "", context.partner),
                                     frame.column(_ID + column.name), context.repeats)
                      for column in checks.identifiers}
        tokens = {column: self._token_pseudonyms(frame.column(_ID + column.name))
                  for column in checks.identifiers if column.id_type == "nhs_number"}
        matching = self._match_keys(frame)
        people = [values for column, values in pseudonyms.items() if column.names_a_person] + list(tokens.values())
        if context.suppressed and len(frame):
            wanted = pa.array(sorted(context.suppressed), pa.string())
            hit = _any([pc.fill_null(pc.is_in(values, wanted), False) for values in people]
                       + [_strong_key_hits(matching[_STRONG], wanted)], len(frame))
            kept = pc.invert(hit)
            counts.suppressed += len(frame) - pc.sum(kept).as_py()
            context.left_out.extend("suppressed", frame.column(_ROW).filter(hit).to_pylist())
            frame = frame.filter(kept)
            pseudonyms = {column: values.filter(kept) for column, values in pseudonyms.items()}
            tokens = {column: values.filter(kept) for column, values in tokens.items()}
            matching = {name: values.filter(kept) for name, values in matching.items()}
        counts.stored += len(frame)
        return self._table(frame, pseudonyms, tokens, matching)

    def _match_keys(self, frame: pa.Table) -> dict[str, pa.Array]:
        """The person index's match keys of the rows (only strong keys, all empty, where the contract sends
        nothing to match on)."""
        if not self.context.bound.contract.matches:
            return {_STRONG: empty_lists(len(frame))}
        inputs = {name.removeprefix(_MATCH): frame.column(name).combine_chunks()
                  for name in frame.column_names if name.startswith(_MATCH)}
        return match_columns(self.context.records.match_keys, inputs, len(frame))

    def _token_pseudonyms(self, digits: pa.ChunkedArray) -> pa.Array:
        """Each NHS number's source token, re-keyed as a trust's token is: the index's bridge to trust rows."""
        records, repeats = self.context.records, self.context.repeats
        source = _hash(records.sources.pseudonymiser, "nhs_number", digits, repeats)
        return _hash(self.context.pseudonymiser, TOKEN_TYPE, pa.chunked_array([source]), repeats)

    def _table(self, frame: pa.Table, pseudonyms: dict[Column, pa.Array], tokens: dict[Column, pa.Array],
               matching: dict[str, pa.Array]) -> pa.Table:
        """Rows in the writer's schema, with their row numbers alongside to keep the file's order."""
        context = self.context
        rows = len(frame)
        schema = curated.writer_schema(context.bound.contract)
        stored = {column.output_name or "": values for column, values in pseudonyms.items()}
        subject = pc.coalesce(*stored.values()) if stored else pa.nulls(rows, pa.string())
        anchor = _DATE + (context.retention_column or "")
        person_ids: list[tuple[str | None, pa.Array]] = []
        for column, pseudonym in pseudonyms.items():
            if column.names_a_person:  # as on the row path: each identifier, then its NHS number token if any
                person_ids.append((context.records.kind(column.id_type or ""), pseudonym))
                if column in tokens:
                    person_ids.append((TOKEN_TYPE, tokens[column]))
        groups = [(None, v) for c, v in pseudonyms.items() if not c.names_a_person]
        values = {**{name: frame.column(name) for name in frame.column_names}, **stored,
                  curated.SUBJECT_ID: subject, curated.INGEST_ID: pa.array([context.ingest_id] * rows, pa.string()),
                  curated.PURGE_MONTH: self._purge_months(frame.column(anchor) if anchor in frame.column_names
                                                          else None, rows),
                  curated.ROW: frame.column(_ROW), curated.LINKAGE + "ids": id_lists(person_ids, rows),
                  curated.LINKAGE + "groups": id_lists(groups, rows),
                  **{curated.LINKAGE + name: values for name, values in matching.items()}}
        arrays = [pc.cast(values[field.name], field.type) if field.name in values else pa.nulls(rows, field.type)
                  for field in schema]
        return pa.Table.from_arrays([*arrays, frame.column(_ROW)], schema=schema.append(pa.field(_ROW, pa.int64())))

    def _purge_months(self, anchor: pa.Array | None, rows: int) -> pa.Array:
        """Rows share few anchor dates: each distinct one is planned once, by the row path's own memo."""
        if anchor is None:
            return pa.array([self.context.handler.purge_month(None)] * rows, pa.string())
        return _per_distinct(anchor.combine_chunks(), self.context.handler.purge_month, pa.string(), nulls_too=True)

    def _write(self, table: pa.Table, writer: curated.CuratedWriter) -> None:
        months = pc.unique(table.column(curated.PURGE_MONTH))
        if len(months) == 1:
            writer.add_table(months[0].as_py(), table)
            return
        for month in sorted(months.to_pylist()):
            writer.add_table(month, table.filter(pc.equal(table.column(curated.PURGE_MONTH), month)))


class _Collector:
    """Stands in for the writer on the row path: keeps each stored record with its row number."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.row = 0

    def add(self, purge_month: str, record: dict[str, Any]) -> None:
        self.records.append({**record, _ROW: self.row})


class _Checks:
    """Every present column of a batch checked at once: which cells pass, and their values."""

    def __init__(self, context: Context, trimmed: dict[int, pa.Array], ascii_cells: dict[int, pa.Array],
                 rows: int) -> None:
        self.context = context
        self.rows = rows
        self.ok: list[pa.Array] = []
        self.outputs: dict[str, pa.Array] = {}
        self.dates: dict[str, pa.Array] = {}
        self.identifiers: dict[Column, pa.Array] = {}
        """Normalised identifiers, by contract column."""
        self.consent: pa.Array | None = None
        births: list[tuple[Column, pa.Array]] = []
        self.match: dict[str, pa.Array] = {}
        """What the person index matches on, by field, as the row path keeps it (`CheckedRow.match`)."""
        for column, position, kind in context.bound.present:
            if kind == "direct":
                if column.match:
                    self._kept_for_matching(column, trimmed[position], ascii_cells.get(position))
                continue
            cells = trimmed[position]
            passes, values = self._checked(column, kind, cells, ascii_cells.get(position))
            self.ok.append(passes)
            if column.match:
                self.match[column.match] = self._full_postcodes(cells) if kind == "postcode" else values
            if kind == "identifier":
                self.identifiers[column] = values
            elif kind == "consent":
                self.consent = values
            elif kind == "postcode":
                self.outputs[column.output_name or ""] = values
            else:
                if pa.types.is_date(values.type):
                    self.dates[column.name] = values
                if kind == "attribute":
                    self.outputs[column.name] = values
                else:
                    births.append((column, values))
        if context.bound.contract.identifiers:
            self.ok.append(_any([pc.is_valid(v) for v in self.identifiers.values()], rows))
        for column, born in births:
            self._birth(column, born)

    def _checked(self, column: Column, kind: str, cells: pa.Array,
                 ascii_cells: pa.Array | None) -> tuple[pa.Array, pa.Array]:
        """Which cells pass (a blank passes only in an optional column), and the values, null where blank.
        Checks the file cannot fail (a length no line reaches, non-ASCII in an ASCII file) are skipped."""
        length = pc.utf8_length(cells) if ascii_cells is not None else pc.binary_length(cells)
        blank = pc.equal(length, 0)
        any_blank = pc.any(blank).as_py()
        if any_blank:
            cells = pc.if_else(blank, pa.scalar(None, pa.string()), cells)
        value_ok, values = self._column(column, kind, cells)
        passes = pc.fill_null(value_ok, False)
        if self.context.longest_line > column.max_length:
            passes = pc.and_(passes, pc.less_equal(length, column.max_length))
        if ascii_cells is not None:
            passes = pc.and_(passes, ascii_cells)
        if any_blank and not column.required:
            passes = pc.or_(passes, blank)
        return passes, values

    def _kept_for_matching(self, column: Column, cells: pa.Array, ascii_cells: pa.Array | None) -> None:
        """A name (or a trust's name tokens) is never checked or stored, only matched on. Here a cell passes when
        the row path would keep it as it is: a name within the column's length, tokens in the source tool's form.
        A blank passes and matches on nothing."""
        length = pc.binary_length(cells)
        blank = pc.equal(length, 0)
        if column.match == "name_tokens":
            kept = pc.and_(pc.match_substring_regex(cells, f"^(?:{NAME_TOKENS_PATTERN})$"),
                           pc.less_equal(length, NAME_TOKENS_LIMIT))
        else:
            kept = pc.less_equal(length, column.max_length)
        if ascii_cells is not None:
            kept = pc.and_(kept, ascii_cells)
        self.ok.append(pc.or_(blank, kept))
        self.match[column.match or ""] = pc.if_else(blank, pa.scalar(None, pa.string()), cells)

    @staticmethod
    def _full_postcodes(cells: pa.Array) -> pa.Array:
        """The whole postcode (`SW9 8AB`) where the cell is one, as `generalise.full_postcode` writes it."""
        encoded, parts = _postcode_parts(cells)
        inward = pc.binary_join_element_wise(pc.struct_field(parts, [1]), pc.struct_field(parts, [2]), "")
        return pc.binary_join_element_wise(pc.struct_field(parts, [0]), inward, " ").take(encoded.indices)

    def frame(self, numbers: pa.Array) -> pa.Table:
        """Everything the accepted rows need, as one table to filter: outputs, dates, identifiers, consent and
        what the person index matches on."""
        columns = {**self.outputs, **{_DATE + name: values for name, values in self.dates.items()},
                   **{_ID + column.name: values for column, values in self.identifiers.items()},
                   **{_MATCH + name: values for name, values in self.match.items()}, _ROW: numbers}
        if self.consent is not None:
            columns[_CONSENT] = self.consent
        return pa.table(columns)

    def accepted(self) -> np.ndarray:
        return _bools(_all(self.ok, self.rows))

    def _column(self, column: Column, kind: str, cells: pa.Array) -> tuple[pa.Array, pa.Array]:
        """(passes, value) for each non-blank cell, as the row path's `value` would decide it."""
        if kind == "identifier" and column.id_type == "nhs_number":
            return _nhs_numbers(cells)
        if kind == "identifier" and column.id_type == TOKEN_TYPE:  # as `_normalise_token`: lower case, 32 hex digits
            lowered = pc.ascii_lower(cells)
            return pc.match_substring_regex(lowered, "^[0-9a-f]{32}$"), lowered
        if kind == "identifier" and column.id_type in ("partner_ref", "partner_pseudonym"):
            # Trimmed printable ASCII with no tab inside is exactly what the row path's pattern allows here.
            fits = pc.and_(pc.invert(pc.match_substring(cells, "\t")),
                           pc.less_equal(pc.binary_length(cells), MAX_REFERENCE_LENGTH))
            return fits, cells
        if kind == "consent":
            lowered = pc.ascii_lower(cells)
            known = pc.is_in(lowered, pa.array(sorted(_TRUE | _FALSE)))
            return known, pc.is_in(lowered, pa.array(sorted(_TRUE)))
        if kind == "postcode":
            return _postcodes(column, cells)
        return self._distinct_values(column, kind, cells)

    def _distinct_values(self, column: Column, kind: str, cells: pa.Array) -> tuple[pa.Array, pa.Array]:
        """Each distinct cell converted once by the row path's own function; its failures left to the row path."""
        encoded = cells.dictionary_encode()
        values, passes = [], []
        for text in encoded.dictionary.to_pylist():
            try:
                values.append(self.context.bound.value(column, kind, text, self.context.received))
                passes.append(True)
            except (InvalidValue, InvalidIdentifier):
                values.append(None)
                passes.append(False)
        converted = pa.array(values, _value_type(column, kind)).take(encoded.indices)
        return pa.array(passes, pa.bool_()).take(encoded.indices), converted

    def _birth(self, column: Column, born: pa.Array) -> None:
        """Birth dates become a month, or an age in months at an event date (which must not come first)."""
        if column.generalise == "birth_month":
            self.outputs[column.output_name or ""] = _per_distinct(born, generalise.birth_month, pa.string())
            return
        event = self.dates.get(column.at or "")
        if event is None:
            self.outputs[column.output_name or ""] = pa.nulls(self.rows, pa.int32())
            return
        months = pc.subtract(
            pc.add(pc.multiply(pc.subtract(pc.year(event), pc.year(born)), 12),
                   pc.subtract(pc.month(event), pc.month(born))),
            pc.cast(pc.less(pc.day(event), pc.day(born)), pa.int64()))
        self.ok.append(pc.fill_null(pc.greater_equal(months, 0), True))
        self.outputs[column.output_name or ""] = months


def _per_distinct(values: pa.Array, convert: Callable[[Any], Any], kind: pa.DataType, *,
                  nulls_too: bool = False) -> pa.Array:
    """`convert` applied once to each distinct value and spread back over the array. Nulls stay null, unless
    `nulls_too`: then None is converted like any other value (a row with no anchor date still has a purge month)."""
    encoded = values.dictionary_encode(null_encoding="encode" if nulls_too else "mask")
    return pa.array([convert(value) for value in encoded.dictionary.to_pylist()], kind).take(encoded.indices)


def _nhs_numbers(cells: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Ten digits (spaces and hyphens removed) whose modulus 11 check holds, as python-stdnum's nhs.checksum
    computes it: the digits weighted 10 down to 1 sum to a multiple of 11. Tests hold the two equal."""
    digits = cells
    if not pc.all(pc.fill_null(pc.utf8_is_decimal(cells), True)).as_py():  # written with separators
        for separator in (" ", "\t", "-"):
            digits = pc.replace_substring(digits, separator, "")
    shaped = pc.fill_null(pc.and_(pc.utf8_is_decimal(digits), pc.equal(pc.binary_length(digits), 10)), False)
    candidates = digits.filter(shaped)
    passes = np.zeros(len(cells), dtype=bool)
    if len(candidates):
        offsets = np.frombuffer(candidates.buffers()[1], dtype=np.int32)[candidates.offset:]
        data = np.frombuffer(candidates.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[0] + 10 * len(candidates)]
        sums = (data.reshape(-1, 10).astype(np.int64) - 48) @ _NHS_WEIGHTS
        passes[np.flatnonzero(_bools(shaped))] = sums % 11 == 0
    return pa.array(passes), digits


def _postcodes(column: Column, cells: pa.Array) -> tuple[pa.Array, pa.Array]:
    """The row path's postcode pattern, run once per distinct cell by Arrow's regex engine (ASCII cells only
    reach here, and in a plain line the only whitespace is a space or a tab)."""
    encoded, parts = _postcode_parts(cells)
    matched = pc.is_valid(parts)
    outward = pc.struct_field(parts, [0])
    if column.generalise == "postcode_sector":
        outward = pc.binary_join_element_wise(outward, pc.struct_field(parts, [1]), " ")
    return matched.take(encoded.indices), outward.take(encoded.indices)


def _strong_key_hits(strong_keys: pa.ListArray, wanted: pa.Array) -> pa.Array:
    """Rows with a strong match key on the suppression register (as the row path checks them)."""
    hits = np.zeros(len(strong_keys), dtype=bool)
    owners = np.asarray(pc.list_parent_indices(strong_keys), np.int64)
    hits[owners[_bools(pc.is_in(strong_keys.flatten(), wanted))]] = True
    return pa.array(hits)


def _postcode_parts(cells: pa.Array) -> tuple[pa.DictionaryArray, pa.StructArray]:
    """The distinct cells and, for each, the parts of the postcode pattern (null where it does not match)."""
    encoded = cells.dictionary_encode()
    return encoded, pc.extract_regex(pc.ascii_upper(encoded.dictionary), _POSTCODE)


def _hash(pseudonymiser: Pseudonymiser, id_type: str, values: pa.ChunkedArray, repeats: dict[str, bool]) -> pa.Array:
    """Pseudonyms for one identifier column: messages built by Arrow and hashed as a column.

    Where values repeat (a person with many rows), each distinct value is hashed once. Finding the distinct
    values costs a good part of hashing them all, so a column whose last batch barely repeated is hashed
    straight through; `repeats` carries that from batch to batch."""
    values = values.combine_chunks()
    if not repeats.get(id_type, True):
        return pseudonymiser.pseudonyms_of(id_type, values, repeating=False)
    encoded = values.dictionary_encode()
    repeats[id_type] = len(encoded.dictionary) < DISTINCT_WORTH_IT * max(len(values), 1)
    return pseudonymiser.pseudonyms_of(id_type, encoded.dictionary, repeating=False).take(encoded.indices)


def _value_type(column: Column, kind: str) -> pa.DataType:
    if kind == "birth_date":
        return pa.date32()
    if kind == "attribute":
        return curated.attribute_type(column.type)
    return pa.string()


def _bools(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean mask as NumPy, null counted as False (pyarrow would give an object array for a mask with nulls)."""
    mask = pc.fill_null(mask, False)
    if isinstance(mask, pa.ChunkedArray):
        return np.concatenate([_bools(chunk) for chunk in mask.chunks]) if mask.num_chunks else np.zeros(0, bool)
    bits = np.frombuffer(mask.buffers()[1], dtype=np.uint8)
    return np.unpackbits(bits, bitorder="little")[mask.offset:mask.offset + len(mask)].astype(bool)


def _take(array: pa.Array, rows: pa.Array | None) -> pa.Array:
    return array if rows is None else array.take(rows)


def _all(masks: list[pa.Array], rows: int | None = None) -> pa.Array:
    if not masks:
        return pa.array(np.ones(rows or 0, dtype=bool))
    result = masks[0]
    for mask in masks[1:]:
        result = pc.and_(result, mask)
    return result


def _any(masks: list[pa.Array], rows: int) -> pa.Array:
    if not masks:
        return pa.array(np.zeros(rows, dtype=bool))
    result = masks[0]
    for mask in masks[1:]:
        result = pc.or_(result, mask)
    return result
