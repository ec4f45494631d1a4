"""Curated storage: pseudonymised Parquet, partitioned by dataset and purge month.

    curated/<dataset>/purge_month=YYYY-MM/partner=<partner>/<ingest id>.parquet

One upload writes one file per purge month it touches, named by its ingest id, so a retried upload overwrites
its own files instead of adding copies. Rows are written in batches to local temporary files, so memory stays
bounded whatever the file size; the files are uploaded only when the whole upload has passed.

Each row keeps its row number in the upload (`_row`): with the ingest id it names the row's record in the person
index. Beside each curated file the writer keeps the rows' linkage columns (identifiers by kind, match-key
tokens) in a file of their own, which goes to the restricted linkage store and never into curated data.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from shared.identity.index import LOCAL_FIELDS
from shared.policy.contracts import Contract

SUBJECT_ID = "subject_id"
INGEST_ID = "_ingest_id"
PURGE_MONTH = "_purge_month"
ROW = "_row"
LINKAGE = "_lk_"
"""Prefix of the linkage columns a row carries through the writer; they never reach a curated file."""
LINKAGE_FIELDS = [pa.field(LINKAGE + field.name, field.type) for field in LOCAL_FIELDS if field.name != "row"]
IDENTIFIER_FIELDS = [f for f in LINKAGE_FIELDS if f.name.removeprefix(LINKAGE) in ("ids", "groups", "strong_keys")]


def linkage_fields(contract: Contract) -> list[pa.Field]:
    """A contract with nothing to match on carries only the identifier lists, not a dozen empty token columns."""
    return LINKAGE_FIELDS if contract.matches else IDENTIFIER_FIELDS
_ATTRIBUTE_TYPES = {"string": pa.string(), "integer": pa.int64(), "number": pa.float64(), "date": pa.date32(),
                    "boolean": pa.bool_()}


def curated_path(dataset: str, purge_month: str, partner: str, ingest_id: str) -> str:
    return f"{dataset}/purge_month={purge_month}/partner={partner}/{ingest_id}.parquet"


def schema_for(contract: Contract) -> pa.Schema:
    fields = [pa.field(SUBJECT_ID, pa.string(), nullable=False)]
    for column in contract.columns:
        name = column.output_name
        if name is None:
            continue
        if column.role == "identifier":
            kind = pa.string()
        elif column.role == "quasi":
            kind = pa.int32() if column.generalise == "age_in_months" else pa.string()
        else:
            kind = attribute_type(column.type)
        fields.append(pa.field(name, kind))
    fields += [pa.field(INGEST_ID, pa.string(), nullable=False), pa.field(PURGE_MONTH, pa.string(), nullable=False),
               pa.field(ROW, pa.int32())]
    return pa.schema(fields)


def writer_schema(contract: Contract) -> pa.Schema:
    """The curated schema and the linkage columns, as rows travel through the writer."""
    return pa.schema([*schema_for(contract), *linkage_fields(contract)])


def attribute_type(type_name: str | None) -> pa.DataType:
    return _ATTRIBUTE_TYPES[type_name or "string"]


class CuratedWriter:
    """Buffers rows per purge month and streams them to temporary Parquet files."""

    def __init__(self, contract: Contract, metadata: dict[str, str], batch_rows: int = 20_000) -> None:
        self.schema = schema_for(contract).with_metadata(metadata)
        self.full_schema = writer_schema(contract)
        self._linkage_fields = linkage_fields(contract)
        self._linkage_schema = pa.schema([pa.field("row", pa.int32()),
                                          *(f.with_name(f.name.removeprefix(LINKAGE)) for f in self._linkage_fields)])
        self._batch_rows = batch_rows
        self._dir = tempfile.TemporaryDirectory(prefix="fdp-curated-")
        self._names = self.full_schema.names
        self._buffers: dict[str, dict[str, list[Any]]] = {}
        self._sizes: dict[str, int] = {}
        self._writers: dict[str, pq.ParquetWriter] = {}
        self._linkage_writers: dict[str, pq.ParquetWriter] = {}
        self._tables: dict[str, list[pa.Table]] = {}
        # Pseudonyms never repeat enough for a dictionary, and their min and max help no reader: both are skipped.
        self._repeating = [name for name in self.schema.names if name != SUBJECT_ID and not name.endswith("_pseudonym")]

    def add(self, purge_month: str, record: dict[str, Any]) -> None:
        """Rows are buffered column by column: building Arrow arrays from lists is far cheaper than from dicts."""
        buffer = self._buffers.get(purge_month)
        if buffer is None:
            buffer = self._buffers[purge_month] = {name: [] for name in self._names}
            self._sizes[purge_month] = 0
        get = record.get
        for name, values in buffer.items():
            values.append(get(name))
        self._sizes[purge_month] += 1
        if self._sizes[purge_month] >= self._batch_rows:
            self._flush(purge_month)

    def add_table(self, purge_month: str, table: pa.Table) -> None:
        """A batch of rows already in the curated schema (the columnar path); written once enough have gathered."""
        if purge_month not in self._buffers:
            self._buffers[purge_month] = {name: [] for name in self._names}
            self._sizes[purge_month] = 0
        self._tables.setdefault(purge_month, []).append(table.cast(self.full_schema))
        self._sizes[purge_month] += len(table)
        if self._sizes[purge_month] >= self._batch_rows:
            self._flush(purge_month)

    def _flush(self, purge_month: str) -> None:
        if not self._sizes.get(purge_month):
            return
        if purge_month not in self._writers:
            folder = Path(self._dir.name)
            self._writers[purge_month] = pq.ParquetWriter(folder / f"{purge_month}.parquet", self.schema,
                                                          compression="zstd", use_dictionary=self._repeating,
                                                          write_statistics=self._repeating)
            # Read back once, moments later, to make the upload's records blob: written fast, not small.
            self._linkage_writers[purge_month] = pq.ParquetWriter(folder / f"{purge_month}.linkage.parquet",
                                                                  self._linkage_schema, compression="none",
                                                                  use_dictionary=False, write_statistics=False)
        buffer = self._buffers[purge_month]
        arrays = [pa.array(buffer[field.name], type=field.type) for field in self.full_schema]
        tables = [*self._tables.pop(purge_month, []), pa.Table.from_arrays(arrays, schema=self.full_schema)]
        rows = pa.concat_tables(tables)
        self._writers[purge_month].write_table(rows.select(self.schema.names).cast(self.schema))
        linkage = rows.select([ROW, *(f.name for f in self._linkage_fields)])
        self._linkage_writers[purge_month].write_table(linkage.rename_columns(self._linkage_schema.names))
        for values in buffer.values():
            values.clear()
        self._sizes[purge_month] = 0

    def finish(self) -> dict[str, Path]:
        """Close every partition file; returns purge month -> local file."""
        for purge_month in list(self._buffers):
            self._flush(purge_month)
        self._close()
        return {month: Path(self._dir.name) / f"{month}.parquet" for month in sorted(self._writers)}

    def linkage_files(self) -> dict[str, Path]:
        """After finish(): purge month -> the linkage columns of that file's rows, in the same order."""
        return {month: Path(self._dir.name) / f"{month}.linkage.parquet" for month in sorted(self._writers)}

    def _close(self) -> None:
        for writer in [*self._writers.values(), *self._linkage_writers.values()]:
            writer.close()

    def discard(self) -> None:
        self._close()
        self._dir.cleanup()

    def reset(self) -> None:
        """Forget every row written so far (the upload starts again on another path)."""
        self._close()
        for path in Path(self._dir.name).iterdir():
            path.unlink()
        self._buffers, self._sizes, self._writers, self._tables = {}, {}, {}, {}
        self._linkage_writers = {}


def file_metadata(local: Path, dataset: Any, partner: str, ingest_id: str, received: date,
                  received_at: datetime | None = None) -> dict[str, str]:
    """Blob metadata that lets retention plan without opening the file: rows, the rule it was planned under; and
    when the upload was received, which decides which of two copies of a re-sent row is the newer. Every rewrite
    of a curated file (retention, rights, replacements) keeps it, with the new row count."""
    from shared.policy.retention_rules import fingerprint

    metadata = {"rows": str(pq.ParquetFile(local).metadata.num_rows), "dataset": dataset.name, "partner": partner,
                "ingest_id": ingest_id, "received": received.isoformat(), "retention": fingerprint(dataset.retention)}
    if received_at is not None:
        metadata["received_at"] = received_at.isoformat()
    return metadata


def download(storage: Any, name: str) -> tuple[pa.Table, Any] | None:
    """A curated file's rows and its blob properties (ETag, metadata), from one read; None if it is gone."""
    from azure.core.exceptions import ResourceNotFoundError

    from shared.platform.storage import CURATED

    try:
        stream = storage.platform_blob(CURATED, name).download_blob()
    except ResourceNotFoundError:
        return None
    return read_file(stream.readall()), stream.properties


def row_groups(path: Path) -> Iterator[pa.Table]:
    """A local Parquet file a row group at a time, each read alone: a large file is never all in memory (reading
    batches across row groups, or with pre-buffering, holds several at once)."""
    parquet = pq.ParquetFile(path, pre_buffer=False)
    for index in range(parquet.num_row_groups):
        yield parquet.read_row_group(index)


def read_file(data: bytes) -> pa.Table:
    import io

    return pq.read_table(io.BytesIO(data))


def row_mask(table: pa.Table, rows: list[int]) -> pa.ChunkedArray:
    """The rows of a curated file with these row numbers: a person's rows, as the person index names them."""
    import pyarrow.compute as pc

    return pc.fill_null(pc.is_in(table.column(ROW), pa.array(rows, pa.int32())), False)


def to_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()
