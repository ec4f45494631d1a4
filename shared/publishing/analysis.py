"""Reading curated data for anonymised outputs: reports and research extracts.

Restricted people (Art 18) and anyone on the suppression register are left out before anything is counted.
People are linked across datasets and partners by their pseudonyms: every pseudonym seen on a row with another
belongs to the same person, and each person gets one canonical pseudonym (the smallest of their linked ones).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from shared.ingest import curated
from shared.platform.storage import CURATED, LINKS, REGISTER, Storage


@dataclass
class Extract:
    rows: list[dict[str, Any]]
    """Each row with `_person` (canonical pseudonym) and `_dataset` added."""
    data_version: str
    """A hash of the curated files read (names and ETags): the same data gives the same version."""


def excluded_people(storage: Storage) -> set[str]:
    """Everyone restricted or on the suppression register, in any scope."""
    return {row["PartitionKey"] for row in storage.table(REGISTER).list_entities(select=["PartitionKey"])}


def canonical_people(storage: Storage) -> dict[str, str]:
    """pseudonym -> the person's canonical pseudonym, by union-find over the identifier links."""
    parent: dict[str, str] = {}

    def root(node: str) -> str:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for row in storage.table(LINKS).list_entities(select=["RowKey"]):
        first, second = row["RowKey"].split("|", 1)
        a, b = root(first), root(second)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return {node: root(node) for node in parent}


def load(storage: Storage, datasets: tuple[str, ...], columns: set[str]) -> Extract:
    excluded = excluded_people(storage)
    people = canonical_people(storage)
    rows: list[dict[str, Any]] = []
    versions = []
    container = storage.platform_container(CURATED)
    for dataset in datasets:
        for blob in container.list_blobs(name_starts_with=f"{dataset}/"):
            versions.append(f"{blob.name}@{blob.etag}")
            table = curated.read_file(container.download_blob(blob.name).readall())
            identifiers = [n for n in table.column_names if n.endswith("_pseudonym")]
            wanted = [n for n in table.column_names if n in columns or n in identifiers or n == curated.SUBJECT_ID]
            for row in table.select(wanted).to_pylist():
                pseudonyms = {row[n] for n in identifiers if row.get(n)} | {row[curated.SUBJECT_ID]}
                if pseudonyms & excluded:
                    continue
                person = min(people.get(p, p) for p in pseudonyms)
                shown = {k: v for k, v in row.items() if k in columns}
                rows.append({**shown, "_person": person, "_dataset": dataset})
    version = hashlib.sha256("\n".join(sorted(versions)).encode()).hexdigest()[:16]
    return Extract(rows, version)
