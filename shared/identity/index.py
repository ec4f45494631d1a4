"""The person index: who each stored row is about, written in bulk and looked up by the person.

Everything lives in the restricted `linkage` container of the platform account (never read by reports or
extracts, never copied into curated data):

    records/<ingest>.parquet        one row per stored row of an upload: the curated file and row it describes,
                                    its person and group identifiers (pseudonyms) and its match-key tokens;
                                    written once per upload, so an upload adds one blob, whatever its size
    index/persons/<bb>.parquet      person key -> each of their records (dataset, file, row)
    index/keys/<bb>.parquet         identifier pseudonym or strong match key -> person key
    index/state.json                the record files and decisions the index was built from

`<bb>` is the first hex digit of the key (two once the store holds 200,000 records), so a lookup reads one 16th
(later one 256th) of the index for the identifiers given and one for the person found. `ensure_linked` rebuilds
the index (`linkage.link`) when an upload or a decision has come since it was built: rights work, reports and the
review queue call it first, so each acts on the persons as they are now.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

from shared.identity import linkage
from shared.identity.keys import KeySource
from shared.identity.matchkeys import LIST_COLUMNS, TOKEN_COLUMNS
from shared.identity.review import ReviewQueue
from shared.platform.storage import LINKAGE, REVIEWS, Storage

log = logging.getLogger("fdp.identity")

RECORDS = "records/"
PERSONS = "index/persons/"
KEYS = "index/keys/"
STATE = "index/state.json"
SMALL_STORE = 200_000
"""Below this many records the index is cut into 16 buckets (one hex digit), above it into 256 (two)."""
PARALLEL_BLOBS = 8

RECORD_FIELDS = [pa.field("ingest_id", pa.string()), pa.field("row", pa.int32()),
                 pa.field("partner", pa.string()), pa.field("dataset", pa.string()), pa.field("file", pa.string()),
                 pa.field("ids", pa.list_(pa.string())), pa.field("groups", pa.list_(pa.string())),
                 pa.field("strong_keys", pa.list_(pa.string())),
                 *(pa.field(name, pa.string()) for name in TOKEN_COLUMNS),
                 *(pa.field(name, pa.list_(pa.string())) for name in LIST_COLUMNS)]
RECORD_SCHEMA = pa.schema([pa.field("record", pa.string()), *RECORD_FIELDS])
LOCAL_FIELDS = [f for f in RECORD_FIELDS if f.name not in ("ingest_id", "partner", "dataset", "file")]
"""What ingest gathers per row beside the curated file; the rest is added when the upload's records are written."""
_SELDOM_REPEATED = ("record", "ids", "groups", "strong_keys", "postcode")
_RECORD_WRITING = {"compression": "zstd",
                   "use_dictionary": [name for name in RECORD_SCHEMA.names if name not in _SELDOM_REPEATED],
                   "write_statistics": ["record", "ingest_id", "row", "partner", "dataset", "file"]}
"""Pseudonyms and keys that are nearly all distinct gain nothing from a dictionary or min/max statistics, which
cost a third of the time of writing them."""


def record_id(ingest_id: str, row: int) -> str:
    return f"{ingest_id}:{row}"


class PersonIndex:
    def __init__(self, storage: Storage, keys: KeySource) -> None:
        self.storage = storage
        self.keys = keys
        self.container = storage.platform_container(LINKAGE)
        self.reviews = ReviewQueue(storage.table(REVIEWS))

    # Writing an upload's records ----------------------------------------------------------------------------

    def write_records(self, ingest_id: str, partner: str, dataset: str, parts: Iterable[tuple[str, pa.Table]]) -> int:
        """One blob for the whole upload: each part is some of one curated file's rows (LOCAL_FIELDS). Idempotent.
        Parts are written one after another to a local file, so a large upload's records are never all in memory."""
        rows = 0
        with tempfile.TemporaryFile() as spooled:
            with pq.ParquetWriter(spooled, RECORD_SCHEMA, **_RECORD_WRITING) as writer:
                writer.write_table(RECORD_SCHEMA.empty_table())
                for file, local in parts:
                    writer.write_table(_records(ingest_id, partner, dataset, file, local))
                    rows += local.num_rows
            spooled.seek(0)
            self._upload_bytes(f"{RECORDS}{ingest_id}.parquet", spooled)
        return rows

    def forget_records(self, records: set[str]) -> int:
        """Erasure: take these records out of their upload's record file (conditional on its ETag)."""
        wanted = pa.array(sorted(records), pa.string())

        def without(table: pa.Table) -> tuple[pa.Table, int]:
            gone = pc.is_in(table.column("record"), wanted)
            return table.filter(pc.invert(gone)), int(pc.sum(gone).as_py() or 0)

        return sum(self._rewrite(ingest_id, without) for ingest_id in sorted({r.split(":", 1)[0] for r in records}))

    def relocate_records(self, ingest_id: str, rows: dict[int, str]) -> int:
        """A re-planned curated file's rows now live in another file: point their records at it."""
        def moved(table: pa.Table) -> tuple[pa.Table, int]:
            files = [rows.get(row, file) for row, file in zip(table.column("row").to_pylist(),
                                                               table.column("file").to_pylist(), strict=True)]
            return table.set_column(table.schema.get_field_index("file"), "file", pa.array(files, pa.string())), \
                len(rows)
        return self._rewrite(ingest_id, moved)

    def _rewrite(self, ingest_id: str, change: Callable[[pa.Table], tuple[pa.Table, int]]) -> int:
        """Replace an upload's record file by `change` of it (deleted when nothing is left), only if nobody changed
        it meanwhile; returns the count `change` gives, 0 when the file is gone."""
        name = f"{RECORDS}{ingest_id}.parquet"
        for _ in range(5):
            found = self._download(name)
            if found is None:
                return 0
            table, etag = found
            changed, count = change(table)
            blob = self.container.get_blob_client(name)
            try:
                if count and not changed.num_rows:
                    blob.delete_blob(etag=etag, match_condition=MatchConditions.IfNotModified)
                elif count:
                    blob.upload_blob(_parquet(changed, **_RECORD_WRITING), overwrite=True, etag=etag,
                                     match_condition=MatchConditions.IfNotModified)
                return count
            except ResourceModifiedError:
                continue
        raise RuntimeError("a record file kept changing while it was being rewritten")

    # Linking ------------------------------------------------------------------------------------------------

    def ensure_linked(self) -> dict[str, Any] | None:
        """Rebuild the index if an upload, an erasure or a decision has come since it was built."""
        sources = self._sources()
        state = self._state()
        if state.get("sources") == sources:
            return None
        return self.link(sources)

    def link(self, sources: dict[str, Any] | None = None) -> dict[str, Any]:
        sources = sources or self._sources()
        records = self._all_records()
        result = linkage.link(records, self.reviews.decisions(), self.keys.root_key().material)
        width = 1 if records.num_rows < SMALL_STORE else 2
        self._write_index(records, result.persons, width)
        queue = self.reviews.sync(result.candidates)
        summary = {**result.summary, "review_added": queue["added"], "review_removed": queue["removed"]}
        self._upload_bytes(STATE, json.dumps({"sources": sources, "linked_at": datetime.now(UTC).isoformat(),
                                              "bucket_chars": width, "summary": summary}).encode())
        return summary

    def _sources(self) -> dict[str, Any]:
        files = sorted(f"{blob.name}@{blob.etag}" for blob in self.container.list_blobs(name_starts_with=RECORDS))
        return {"records": hashlib.sha256("\n".join(files).encode()).hexdigest()[:32], "files": len(files),
                "decisions": self.reviews.version()}

    def _state(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.container.download_blob(STATE).readall()))
        except ResourceNotFoundError:
            return {}

    def _all_records(self) -> pa.Table:
        names = [blob.name for blob in self.container.list_blobs(name_starts_with=RECORDS)]
        with ThreadPoolExecutor(PARALLEL_BLOBS) as pool:
            found = list(pool.map(self._download, names))
        tables = [item[0].cast(RECORD_SCHEMA) for item in found if item is not None]
        return pa.concat_tables(tables) if tables else RECORD_SCHEMA.empty_table()

    def _write_index(self, records: pa.Table, persons: pa.Table, width: int) -> None:
        """Persons and keys, each bucketed by its key's first hex digits; buckets left empty are removed."""
        person_key = persons.column("person_key")
        by_person = records.select(["record", "ingest_id", "row", "partner", "dataset", "file"]).append_column(
            "person_key", person_key).append_column("entity", persons.column("entity"))
        keys = _key_table(records, person_key)
        parts = _buckets(PERSONS, by_person, "person_key", width) + _buckets(KEYS, keys, "key", width)
        with ThreadPoolExecutor(PARALLEL_BLOBS) as pool:
            list(pool.map(lambda part: self._upload(*part), parts))
        written = {name for name, _ in parts}
        for blob in self.container.list_blobs(name_starts_with="index/"):
            if blob.name != STATE and blob.name not in written:
                self.container.delete_blob(blob.name)

    # Looking up a person ------------------------------------------------------------------------------------

    def resolve(self, keys: Iterable[str]) -> set[str]:
        """The persons any of these identifier pseudonyms or strong match keys belong to."""
        found: set[str] = set()
        for bucket, wanted in self._by_bucket(keys).items():
            table = self._bucket(KEYS, bucket)
            if table is not None:
                hits = table.filter(pc.is_in(table.column("key"), pa.array(sorted(wanted), pa.string())))
                found |= set(hits.column("person_key").to_pylist())
        return found

    def records_of(self, person_keys: Iterable[str]) -> list[dict[str, Any]]:
        """Every record of these persons: record, ingest_id, row, partner, dataset, file, person_key, entity."""
        rows: list[dict[str, Any]] = []
        for bucket, wanted in self._by_bucket(person_keys).items():
            table = self._bucket(PERSONS, bucket)
            if table is not None:
                rows += table.filter(pc.is_in(table.column("person_key"),
                                              pa.array(sorted(wanted), pa.string()))).to_pylist()
        return rows

    def person_map(self) -> dict[str, str]:
        """record -> person key for the whole store (reports read everything anyway)."""
        mapping: dict[str, str] = {}
        for blob in self.container.list_blobs(name_starts_with=PERSONS):
            found = self._download(blob.name)
            if found is not None:
                table = found[0]
                mapping.update(zip(table.column("record").to_pylist(), table.column("person_key").to_pylist(),
                                   strict=True))
        return mapping

    def own_keys(self, records: list[dict[str, Any]]) -> tuple[set[str], set[str]]:
        """The own identifier pseudonyms (never a family reference shared with someone else) and strong match keys
        of these records (as `records_of` gives them): what an access pack names and the register must hold."""
        rows = self._record_rows(records)
        ids = {value.split(linkage.KIND_SEPARATOR, 1)[1] for row in rows for value in row["ids"] or []}
        return ids, {key for row in rows for key in row["strong_keys"] or []}

    def postcode_tokens_of(self, person_keys: Iterable[str]) -> set[str]:
        """The postcode tokens of these persons' records: where a request's postcode decides between two."""
        return {row["postcode"] for row in self._record_rows(self.records_of(person_keys)) if row["postcode"]}

    def _record_rows(self, of: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """These records' rows in their uploads' record files: identifiers, strong keys, postcode token."""
        records = {row["record"] for row in of}
        rows: list[dict[str, Any]] = []
        for ingest_id in sorted({record.split(":", 1)[0] for record in records}):
            downloaded = self._download(f"{RECORDS}{ingest_id}.parquet")
            if downloaded is not None:
                table = downloaded[0].select(["record", "ids", "strong_keys", "postcode"])
                rows += table.filter(pc.is_in(table.column("record"), pa.array(sorted(records)))).to_pylist()
        return rows

    # Review -------------------------------------------------------------------------------------------------

    def split(self, person_key: str, actor: str) -> int:
        """Keep a person's exact-identifier entities apart from each other on every later run."""
        entities = sorted({row["entity"] for row in self.records_of([person_key])})
        pairs = [(a, b) for i, a in enumerate(entities) for b in entities[i + 1:]]
        return self.reviews.keep_apart(pairs, actor, "split by a reviewer")

    def _by_bucket(self, keys: Iterable[str]) -> dict[str, set[str]]:
        width = int(self._state().get("bucket_chars", 1))
        buckets: dict[str, set[str]] = {}
        for key in keys:
            buckets.setdefault(key[:width], set()).add(key)
        return buckets

    # Blob helpers -------------------------------------------------------------------------------------------

    def _bucket(self, prefix: str, bucket: str) -> pa.Table | None:
        found = self._download(f"{prefix}{bucket}.parquet")
        return found[0] if found else None

    def _download(self, name: str) -> tuple[pa.Table, str] | None:
        try:
            stream = self.container.download_blob(name)
        except ResourceNotFoundError:
            return None
        return pq.read_table(io.BytesIO(stream.readall())), stream.properties.etag

    def _upload(self, name: str, table: pa.Table) -> None:
        self._upload_bytes(name, _parquet(table))

    def _upload_bytes(self, name: str, data: bytes | IO[bytes]) -> None:
        self.container.get_blob_client(name).upload_blob(data, overwrite=True)


def _records(ingest_id: str, partner: str, dataset: str, file: str, local: pa.Table) -> pa.Table:
    """Rows of one curated file's linkage columns as the index stores them: each named by its record id."""
    rows = local.num_rows
    constant = {"ingest_id": ingest_id, "partner": partner, "dataset": dataset, "file": file}
    columns = {name: pa.array([value] * rows, pa.string()) for name, value in constant.items()}
    columns |= {name: local.column(name) for name in local.column_names}
    columns |= {f.name: pa.nulls(rows, f.type) for f in LOCAL_FIELDS if f.name not in columns}  # no tokens
    columns["record"] = pc.binary_join_element_wise(columns["ingest_id"], pc.cast(local.column("row"), pa.string()),
                                                    ":")
    return pa.table({f.name: pc.cast(columns[f.name], f.type) for f in RECORD_SCHEMA}, schema=RECORD_SCHEMA)


def _key_table(records: pa.Table, person_key: pa.ChunkedArray) -> pa.Table:
    """identifier pseudonym (the part after `kind=`) or strong key -> person key, each pair once."""
    owner = person_key.combine_chunks()
    ids = records.column("ids").combine_chunks()
    strong = records.column("strong_keys").combine_chunks()
    pseudonyms = pc.list_element(pc.split_pattern(pc.list_flatten(ids), linkage.KIND_SEPARATOR, max_splits=1), 1)
    keys = pa.concat_arrays([pseudonyms, pc.list_flatten(strong)])
    owners = pa.concat_arrays([owner.take(_parents(ids)), owner.take(_parents(strong))])
    table = pa.table({"key": pc.cast(keys, pa.string()), "person_key": owners})
    return table.filter(pc.is_valid(table.column("key"))).group_by(["key", "person_key"]).aggregate([])


def _parents(lists: pa.Array) -> pa.Array:
    """Which row each flattened list value came from (an all-null list column has none)."""
    return pc.cast(pc.list_parent_indices(lists), pa.int64())


def _flat(array: Any) -> pa.Array:
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def _buckets(prefix: str, table: pa.Table, column: str, width: int) -> list[tuple[str, pa.Table]]:
    """The table cut by the first `width` hex digits of `column`, each part sorted by it: (blob name, rows)."""
    bucket = pc.utf8_slice_codeunits(table.column(column), 0, width)
    table = table.append_column("_bucket", bucket).sort_by([("_bucket", "ascending"), (column, "ascending")])
    parts, start = [], 0
    for entry in pc.value_counts(table.column("_bucket")).to_pylist():  # in order of first appearance: sorted
        parts.append((f"{prefix}{entry['values']}.parquet", table.slice(start, entry["counts"]).drop_columns(
            ["_bucket"])))
        start += entry["counts"]
    return parts


def _parquet(table: pa.Table, **options: Any) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **({"compression": "zstd"} | options))
    return sink.getvalue()
