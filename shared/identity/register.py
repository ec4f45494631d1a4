"""The suppression register: people who were erased or withdrew consent, keyed by pseudonym.

A later upload of their rows is dropped and counted, never stored. A suppression's scope is `all` or a legal
basis: withdrawal of consent suppresses datasets whose basis is consent, an upheld objection those held under
legitimate interest or public task, erasure every basis it erased. The same table records restrictions
(scope `restricted`), which keep the data but exclude it from reports and extracts.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from azure.data.tables import TableClient, UpdateMode

ALL_DATASETS = "all"
CONSENT_DATASETS = "consent"
RESTRICTED = "restricted"
"""Not a suppression: the person's data stays, but is left out of every report and extract (Art 18)."""
SCOPES = (ALL_DATASETS, "consent", "legitimate_interest", "public_task", "legal_obligation", RESTRICTED)


class SuppressionRegister:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    def add(self, pseudonym: str, scope: str, reason: str) -> None:
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}")
        self._table.upsert_entity({"PartitionKey": pseudonym, "RowKey": scope, "reason": reason,
                                   "at": datetime.now(UTC).isoformat()}, mode=UpdateMode.REPLACE)

    def remove(self, pseudonym: str, scope: str) -> None:
        self._table.delete_entity(pseudonym, scope)

    def restricted(self) -> set[str]:
        """Everyone whose data must stay out of reports and extracts."""
        rows = self._table.query_entities("RowKey eq @scope", parameters={"scope": RESTRICTED},
                                          select=["PartitionKey"])
        return {row["PartitionKey"] for row in rows}

    def snapshot(self) -> SuppressionSnapshot:
        """The whole register, read once per upload: it holds only the people who opted out, so it stays small."""
        scopes: dict[str, set[str]] = {}
        for row in self._table.list_entities(select=["PartitionKey", "RowKey"]):
            scopes.setdefault(row["PartitionKey"], set()).add(row["RowKey"])
        return SuppressionSnapshot(scopes)


class SuppressionSnapshot:
    def __init__(self, scopes: dict[str, set[str]]) -> None:
        self._scopes = scopes

    def suppressed(self, basis: str) -> set[str]:
        """Everyone suppressed for a dataset held under this basis."""
        return {p for p, scopes in self._scopes.items() if ALL_DATASETS in scopes or basis in scopes}

    def suppresses(self, pseudonyms: Iterable[str], basis: str) -> bool:
        for pseudonym in pseudonyms:
            scopes = self._scopes.get(pseudonym)
            if scopes and (ALL_DATASETS in scopes or basis in scopes):
                return True
        return False
