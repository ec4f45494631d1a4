"""Re-sent rows: a dataset's row key says when two rows are the same row, and only the newest copy is kept.

A dataset may declare `row_key: [nhs_number, visit_date]` in the policy. Two rows of one partner and dataset with
equal values in those columns are the same row: identifier columns compare by their stored pseudonym, attributes
by their stored value. When a partner corrects a row and sends it again, the new copy replaces the old one.

The work is split around the ledger's commit point, so that it is idempotent and a crash anywhere is safe:

1. Before the commit (`prepare`), with this upload's rows still in local files:
   - within the upload, the last row with a key wins; earlier rows with that key are dropped (`replaced`);
   - every stored file of the same partner and dataset from another upload is read, and each of its rows with a
     key of this upload is compared by when the uploads were received: a copy received earlier is to be removed
     (`replaced`), and if the stored copy is the newer one (an older upload delivered late, or retried after a
     newer one), this upload's row is dropped instead (`superseded`). A retry never counts its own files, which
     carry its own ingest id, so a retried delivery can never remove the copy it stored on its first attempt.
   - The plan (other upload -> its row numbers) is saved as `linkage/replacements/<ingest id>.json`, and the
     ledger's final row names it.
2. After the commit (`execute`, from the ledger alone, like the audit entry and deleting the raw file): each
   listed row is taken out of whichever curated file now holds it (a retention re-plan may have moved it),
   rewritten only if nobody changed the file meanwhile (its ETag) and keeping its metadata with the new row
   count; then its record leaves the person index (`PersonIndex.forget_records`); then the plan is deleted.
   Repeating any of it removes nothing more.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

from shared.identity.index import PersonIndex, record_id
from shared.ingest import curated
from shared.ingest.receipts import RowCounts, RowList
from shared.platform.storage import CURATED, LINKAGE, Storage
from shared.policy.loader import Dataset

PLANS = "replacements/"
_SEPARATOR = "\x1f"


@dataclass
class Plan:
    dataset: str
    partner: str
    ingest_id: str
    rows: dict[str, list[int]] = field(default_factory=dict)
    """Another upload's ingest id -> the row numbers of its rows that this upload replaces."""

    @property
    def name(self) -> str:
        return f"{PLANS}{self.ingest_id}.json"

    @property
    def count(self) -> int:
        return sum(len(rows) for rows in self.rows.values())


@dataclass
class Prepared:
    plan: Plan | None
    local: dict[str, Path]
    linkage: dict[str, Path]
    replacing: list[int] = field(default_factory=list)
    """This upload's rows that replaced a copy stored before or an earlier row of the same file."""


def key_columns(dataset: Dataset) -> list[str]:
    """The stored names of the row key's columns (an identifier by its pseudonym column)."""
    names = []
    for name in dataset.row_key:
        column = dataset.contract.column(name)
        if column is None or column.output_name is None:
            raise ValueError(f"row_key column {name!r} is not stored")  # the loader refuses such a policy
        names.append(column.output_name)
    return names


def row_keys(table: pa.Table, columns: list[str]) -> pa.Array:
    """One text key per row: the key columns' stored values joined; null where any of them is null."""
    parts = [pc.cast(table.column(name), pa.string()) for name in columns]
    joined = pc.binary_join_element_wise(*parts, _SEPARATOR) if len(parts) > 1 else parts[0]
    return joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined


class Replacer:
    def __init__(self, storage: Storage, index: PersonIndex) -> None:
        self.storage = storage
        self.index = index
        self.linkage = storage.platform_container(LINKAGE)

    # Before the commit point ------------------------------------------------------------------------------

    def prepare(self, dataset: Dataset, partner: str, ingest_id: str, received_at: datetime,
                local: dict[str, Path], linkage: dict[str, Path], counts: RowCounts, left_out: RowList) -> Prepared:
        """Drop from the local files the rows this upload must not store, and plan what it replaces."""
        if not dataset.row_key or not local:
            return Prepared(None, local, linkage)
        columns = key_columns(dataset)
        ours = pa.concat_tables([pq.read_table(path, columns=[*columns, curated.ROW]) for path in local.values()])
        keyed = pa.table({"key": row_keys(ours, columns), "row": ours.column(curated.ROW)})
        keyed = keyed.filter(pc.is_valid(keyed.column("key")))
        last = keyed.group_by("key").aggregate([("row", "max"), ("row", "count")])
        drop: set[int] = set()
        replacing: set[int] = set()
        if last.num_rows < keyed.num_rows:  # a key repeated within the file: its last row wins
            kept = last.column("row_max")
            drop = set(keyed.filter(pc.invert(pc.is_in(keyed.column("row"), kept))).column("row").to_pylist())
            replacing = set(last.filter(pc.greater(last.column("row_count"), 1)).column("row_max").to_pylist())
        wanted, kept_rows = last.column("key").combine_chunks(), last.column("row_max").combine_chunks()
        plan = Plan(dataset.name, partner, ingest_id)
        older: list[pa.Array] = []
        newer: list[pa.Array] = []
        for name, metadata in self._stored_files(dataset.name, partner, exclude=ingest_id):
            found = curated.download(self.storage, name)
            if found is None:
                continue
            table = found[0]
            if not set(columns) <= set(table.column_names):
                continue  # written under an agreement without these columns: not the same kind of row
            keys = row_keys(table, columns)
            hit = _matching(keys, wanted)
            if not pc.any(hit).as_py():
                continue
            if _stored_is_newer(metadata, received_at):
                newer.append(keys.filter(hit))
            else:
                other = metadata.get("ingest_id") or name.rsplit("/", 1)[1].removesuffix(".parquet")
                plan.rows.setdefault(other, []).extend(table.filter(hit).column(curated.ROW).to_pylist())
                older.append(keys.filter(hit))
        superseded = set(_rows_of(newer, wanted, kept_rows))
        replacing = (replacing | set(_rows_of(older, wanted, kept_rows))) - superseded
        counts.replaced += len(drop) + plan.count
        drop |= superseded
        counts.superseded += len(superseded)
        counts.stored -= len(drop)
        left_out.extend("superseded", sorted(superseded))
        for rows in plan.rows.values():
            rows.sort()
        local, linkage = _without(drop, local, linkage)
        return Prepared(plan if plan.rows else None, local, linkage, sorted(replacing))

    def save(self, plan: Plan) -> None:
        self.linkage.get_blob_client(plan.name).upload_blob(
            json.dumps({"dataset": plan.dataset, "partner": plan.partner, "ingest_id": plan.ingest_id,
                        "rows": plan.rows}).encode(), overwrite=True)

    def discard(self, ingest_id: str) -> None:
        """A retry that no longer replaces anything leaves no plan of an earlier attempt behind."""
        with contextlib.suppress(ResourceNotFoundError):
            self.linkage.delete_blob(f"{PLANS}{ingest_id}.json")

    # After the commit point -------------------------------------------------------------------------------

    def execute(self, ingest_id: str) -> int:
        """Carry out the saved plan of this upload, if any is left; returns how many rows it removed now."""
        plan = self._load(ingest_id)
        if plan is None:
            return 0
        files: dict[str, list[str]] = {}
        for name, _ in self._stored_files(plan.dataset, plan.partner):
            files.setdefault(name.rsplit("/", 1)[1].removesuffix(".parquet"), []).append(name)
        removed = 0
        for other, rows in sorted(plan.rows.items()):
            for name in files.get(other, []):
                removed += self._remove(name, rows)
            self.index.forget_records({record_id(other, row) for row in rows})
        self.discard(ingest_id)
        return removed

    def _remove(self, name: str, rows: list[int]) -> int:
        """The file without these rows, only if nobody changed it meanwhile; its metadata kept, its row count
        updated."""
        for _ in range(5):
            found = curated.download(self.storage, name)
            if found is None:
                return 0
            table, properties = found
            gone = curated.row_mask(table, rows)
            count = int(pc.sum(gone).as_py() or 0)
            blob = self.storage.platform_blob(CURATED, name)
            try:
                if count == len(table):
                    blob.delete_blob(etag=properties.etag, match_condition=MatchConditions.IfNotModified)
                elif count:
                    blob.upload_blob(curated.to_bytes(table.filter(pc.invert(gone))), overwrite=True,
                                     etag=properties.etag, match_condition=MatchConditions.IfNotModified,
                                     metadata={**(properties.metadata or {}), "rows": str(len(table) - count)})
                return count
            except ResourceModifiedError:
                continue
        raise RuntimeError("a curated file kept changing while rows were being replaced")

    # Helpers ----------------------------------------------------------------------------------------------

    def _load(self, ingest_id: str) -> Plan | None:
        try:
            saved = json.loads(self.linkage.download_blob(f"{PLANS}{ingest_id}.json").readall())
        except ResourceNotFoundError:
            return None
        return Plan(saved["dataset"], saved["partner"], saved["ingest_id"],
                    {other: [int(row) for row in rows] for other, rows in saved["rows"].items()})

    def _stored_files(self, dataset: str, partner: str, exclude: str | None = None) -> Iterator[
            tuple[str, dict[str, str]]]:
        """The curated files of one partner's dataset, every purge month, with their metadata."""
        for blob in self.storage.platform_container(CURATED).list_blobs(name_starts_with=f"{dataset}/",
                                                                         include=["metadata"]):
            if f"/partner={partner}/" not in blob.name or not blob.name.endswith(".parquet"):
                continue
            if exclude is not None and blob.name.endswith(f"/{exclude}.parquet"):
                continue
            yield blob.name, dict(blob.metadata or {})


def _matching(keys: pa.Array, wanted: pa.Array) -> pa.Array:
    """Which of a stored file's keys this upload also has. The set is built from the smaller side: an upload of a
    million rows is probed by each stored file's keys, never hashed again for every file."""
    if len(wanted) <= len(keys):
        return pc.fill_null(pc.is_in(keys, value_set=wanted), False)
    present = pc.fill_null(pc.is_in(wanted, value_set=keys), False)
    if not pc.any(present).as_py():
        return pa.array([False] * len(keys), pa.bool_())
    return pc.fill_null(pc.is_in(keys, value_set=wanted.filter(present)), False)


def _rows_of(matched: list[pa.Array], wanted: pa.Array, kept_rows: pa.Array) -> list[int]:
    """This upload's row (the last with its key) for each matched key."""
    if not matched:
        return []
    keys = pc.unique(pa.concat_arrays([array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
                                       for array in matched]))
    return kept_rows.take(pc.index_in(keys, value_set=wanted)).to_pylist()


def _stored_is_newer(metadata: dict[str, str], received_at: datetime) -> bool:
    """Whether a stored copy came from an upload received after this one (storage keeps the time to the second).
    Files written before uploads recorded their time (`received_at`) carry only the day: such a copy counts as
    older unless its day is later. Two uploads received in the same second: the one processed later wins, which is
    the later one whenever events arrive in order."""
    if "received_at" in metadata:
        return datetime.fromisoformat(metadata["received_at"]) > received_at
    return date.fromisoformat(metadata.get("received", "1970-01-01")) > received_at.date()


def _without(drop: set[int], local: dict[str, Path], linkage: dict[str, Path]) -> tuple[dict[str, Path],
                                                                                        dict[str, Path]]:
    """The local curated and linkage files without the dropped rows; a month left empty has no file."""
    if not drop:
        return local, linkage
    rows = pa.array(sorted(drop), pa.int32())
    kept_local, kept_linkage = {}, {}
    for month, path in local.items():
        table = pq.read_table(path)
        keep = pc.invert(pc.fill_null(pc.is_in(table.column(curated.ROW), rows), False))
        remaining = table.filter(keep)
        if not len(remaining):
            continue
        _write(remaining, path)
        links = pq.read_table(linkage[month])
        _write(links.filter(pc.invert(pc.fill_null(pc.is_in(links.column("row"), rows), False))), linkage[month])
        kept_local[month], kept_linkage[month] = path, linkage[month]
    return kept_local, kept_linkage


def _write(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, compression="zstd")

