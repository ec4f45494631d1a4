"""The subject index and identifier links: how a rights request finds everything held about a person.

`subjects`: one row per (pseudonym, upload, purge month), naming the dataset and the curated file, so a
lookup reads only that person's rows. `links`: both directions of every pair of pseudonyms seen on one row
(an NHS number beside a local reference), so a request made with either identifier finds the other.
Partition keys are the first hex digit of the pseudonym: writes batch into transactions and a lookup is one
partition range query.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

from azure.data.tables import TableClient

from shared.platform.storage import upsert_in_transactions


def _partition(pseudonym: str) -> str:
    """Sixteen partitions: large uploads fill 100-row transactions, and a lookup is still one range query."""
    return pseudonym[:1]


def subject_rows(pseudonyms: Iterable[str], *, ingest_id: str, partner: str, dataset: str, purge_month: str,
                 file: str) -> Iterator[dict[str, Any]]:
    """Row keys cannot hold '/', so a file is keyed by its upload and purge month (which name it uniquely)."""
    for pseudonym in pseudonyms:
        yield {"PartitionKey": _partition(pseudonym), "RowKey": f"{pseudonym}|{ingest_id}|{purge_month}",
               "pseudonym": pseudonym, "ingest_id": ingest_id, "partner": partner, "dataset": dataset, "file": file}


def link_rows(pairs: Iterable[tuple[str, str]], *, ingest_id: str) -> Iterator[dict[str, Any]]:
    for first, second in pairs:
        for a, b in ((first, second), (second, first)):
            yield {"PartitionKey": _partition(a), "RowKey": f"{a}|{b}", "ingest_id": ingest_id}


class SubjectIndex:
    def __init__(self, subjects: TableClient, links: TableClient) -> None:
        self._subjects = subjects
        self._links = links

    def add(self, entries: Iterable[tuple[str, dict[str, Any]]], window: int = 20_000) -> int:
        """Write ("subject", row) and ("link", row) entries, a window at a time. Idempotent: the same upload
        writes the same keys."""
        written = 0
        iterator = iter(entries)
        while chunk := list(islice(iterator, window)):
            written += upsert_in_transactions(self._subjects, (row for kind, row in chunk if kind == "subject"))
            written += upsert_in_transactions(self._links, (row for kind, row in chunk if kind == "link"))
        return written

    def linked(self, pseudonym: str) -> set[str]:
        """The pseudonym and every pseudonym linked to it, directly or through others."""
        found, frontier = {pseudonym}, [pseudonym]
        while frontier:
            current = frontier.pop()
            for row in _range(self._links, current):
                other = row["RowKey"].split("|", 1)[1]
                if other not in found:
                    found.add(other)
                    frontier.append(other)
        return found

    def files_for(self, pseudonym: str) -> list[dict[str, Any]]:
        return [dict(row) for row in _range(self._subjects, pseudonym)]


def _range(table: TableClient, pseudonym: str) -> Iterable[dict[str, Any]]:
    return table.query_entities(
        "PartitionKey eq @pk and RowKey gt @low and RowKey lt @high",
        parameters={"pk": _partition(pseudonym), "low": f"{pseudonym}|", "high": f"{pseudonym}|~"},
    )
