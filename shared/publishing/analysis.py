"""Reading curated data for anonymised outputs: reports and research extracts.

Every row is counted as the person the index resolves it to (`_person`: their person key), so one child seen by a
charity, a nursery and a trust is one person, and two siblings who share a family reference are two. Restricted
people (Art 18) and anyone on the suppression register are left out before anything is counted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from shared.identity.index import PersonIndex, record_id
from shared.ingest import curated
from shared.platform.storage import CURATED, REGISTER, Storage


@dataclass
class Extract:
    rows: list[dict[str, Any]]
    """Each row with `_person` (the person key) and `_dataset` added."""
    data_version: str
    """A hash of the curated files read (names and ETags): the same data gives the same version."""


def excluded_people(storage: Storage, index: PersonIndex) -> set[str]:
    """The person keys of everyone restricted or on the suppression register, in any scope."""
    registered = {row["PartitionKey"] for row in storage.table(REGISTER).list_entities(select=["PartitionKey"])}
    return index.resolve(registered) if registered else set()


def load(storage: Storage, index: PersonIndex, datasets: tuple[str, ...], columns: set[str]) -> Extract:
    index.ensure_linked()
    people = index.person_map()
    excluded = excluded_people(storage, index)
    rows: list[dict[str, Any]] = []
    versions = []
    container = storage.platform_container(CURATED)
    for dataset in datasets:
        for blob in container.list_blobs(name_starts_with=f"{dataset}/"):
            if not blob.name.endswith(".parquet"):
                continue  # the dataset's data dictionary, published beside its files
            versions.append(f"{blob.name}@{blob.etag}")
            table = curated.read_file(container.download_blob(blob.name).readall())
            wanted = [n for n in table.column_names if n in columns or n in (curated.INGEST_ID, curated.ROW)]
            for row in table.select(wanted).to_pylist():
                person = people.get(record_id(row[curated.INGEST_ID], row[curated.ROW]))
                if person is None or person in excluded:
                    continue  # not yet indexed (an upload racing the read) or excluded
                shown = {k: v for k, v in row.items() if k in columns}
                rows.append({**shown, "_person": person, "_dataset": dataset})
    version = hashlib.sha256("\n".join(sorted(versions)).encode()).hexdigest()[:16]
    return Extract(rows, version)
