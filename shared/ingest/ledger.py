"""The ingest ledger: one row per upload (partner, ingest id), from `processing` to `accepted` or `rejected`.

The ledger row is the pipeline's commit point: once it says accepted or rejected, a retried event only finishes
the steps after it (audit, deletion of the raw file) and never processes the file again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

PROCESSING = "processing"
ACCEPTED = "accepted"
REJECTED = "rejected"
FINAL = (ACCEPTED, REJECTED)


@dataclass(frozen=True)
class LedgerEntry:
    partner: str
    ingest_id: str
    status: str
    fields: dict[str, Any]

    @property
    def final(self) -> bool:
        return self.status in FINAL


class Ledger:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    def get(self, partner: str, ingest_id: str) -> LedgerEntry | None:
        try:
            row = self._table.get_entity(partner, ingest_id)
        except ResourceNotFoundError:
            return None
        fields = {k: v for k, v in row.items() if k not in ("PartitionKey", "RowKey")}
        for key in ("counts", "files"):
            if isinstance(fields.get(key), str):
                fields[key] = json.loads(fields[key])
        return LedgerEntry(partner, ingest_id, row["status"], fields)

    def record(self, partner: str, ingest_id: str, status: str, **fields: Any) -> None:
        """Write the upload's one row (replacing any earlier state of the same upload)."""
        entity: dict[str, Any] = {"PartitionKey": partner, "RowKey": ingest_id, "status": status}
        for key, value in fields.items():
            entity[key] = json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value
        self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    def for_partner(self, partner: str) -> list[LedgerEntry]:
        rows = self._table.query_entities("PartitionKey eq @partner", parameters={"partner": partner})
        return [entry for row in rows if (entry := self.get(partner, row["RowKey"])) is not None]
