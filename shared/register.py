"""The suppression register: people who were erased or withdrew consent, keyed by pseudonym.

A later upload of their rows is dropped and counted, never stored. Withdrawal of consent suppresses only
datasets whose legal basis is consent; erasure suppresses every dataset.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from azure.data.tables import TableClient, UpdateMode

ALL_DATASETS = "all"
CONSENT_DATASETS = "consent"
SCOPES = (ALL_DATASETS, CONSENT_DATASETS)


class SuppressionRegister:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    def add(self, pseudonym: str, scope: str, reason: str) -> None:
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}")
        self._table.upsert_entity({"PartitionKey": pseudonym, "RowKey": scope, "reason": reason,
                                   "at": datetime.now(UTC).isoformat()}, mode=UpdateMode.REPLACE)

    def snapshot(self) -> SuppressionSnapshot:
        """The whole register, read once per upload: it holds only the people who opted out, so it stays small."""
        scopes: dict[str, set[str]] = {}
        for row in self._table.list_entities(select=["PartitionKey", "RowKey"]):
            scopes.setdefault(row["PartitionKey"], set()).add(row["RowKey"])
        return SuppressionSnapshot(scopes)


class SuppressionSnapshot:
    def __init__(self, scopes: dict[str, set[str]]) -> None:
        self._scopes = scopes

    def suppresses(self, pseudonyms: Iterable[str], basis: str) -> bool:
        for pseudonym in pseudonyms:
            scopes = self._scopes.get(pseudonym)
            if scopes and (ALL_DATASETS in scopes or (basis == "consent" and CONSENT_DATASETS in scopes)):
                return True
        return False
