"""The ingest ledger: one row per upload (partner, ingest id), from `processing` to `accepted` or `rejected`.

The ledger row is the pipeline's commit point: once it says accepted or rejected, a retried event only finishes
the steps after it (audit, replacements, deletion of the raw file) and never processes the file again.

Every write is conditional on the row as the writer last read it (its ETag; for a new row, that there is none),
so two deliveries of the same upload at once cannot both move it: the one whose write fails gets LedgerConflict
and reads the row again. A final row is never written again: a delivery that paused after its check cannot move
`accepted` back to `processing`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

PROCESSING = "processing"
ACCEPTED = "accepted"
REJECTED = "rejected"
FINAL = (ACCEPTED, REJECTED)


class LedgerConflict(Exception):
    """The row is not as the writer last read it: another delivery of the same upload wrote it meanwhile."""


@dataclass(frozen=True)
class LedgerEntry:
    partner: str
    ingest_id: str
    status: str
    fields: dict[str, Any]
    etag: str | None = None

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
        return _entry(partner, ingest_id, row)

    def write(self, partner: str, ingest_id: str, status: str, expected: LedgerEntry | None,
              **fields: Any) -> LedgerEntry:
        """Write the upload's one row, only if it is still `expected` (None: only if there is no row yet).
        Raises LedgerConflict if it changed, and always if `expected` is final: a final row is never overwritten."""
        if expected is not None and expected.final:
            raise LedgerConflict(f"ingest {ingest_id} is already {expected.status}")
        entity: dict[str, Any] = {"PartitionKey": partner, "RowKey": ingest_id, "status": status}
        for key, value in fields.items():
            entity[key] = json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value
        try:
            if expected is None:
                written = self._table.create_entity(entity)
            else:
                written = self._table.update_entity(entity, mode=UpdateMode.REPLACE, etag=expected.etag,
                                                    match_condition=MatchConditions.IfNotModified)
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
            raise LedgerConflict(f"ingest {ingest_id} was written by another delivery") from None
        return LedgerEntry(partner, ingest_id, status, _decoded(fields), written.get("etag"))

    def for_partner(self, partner: str) -> list[LedgerEntry]:
        rows = self._table.query_entities("PartitionKey eq @partner", parameters={"partner": partner})
        return [_entry(partner, row["RowKey"], row) for row in rows]

    def everything(self) -> list[LedgerEntry]:
        """Every partner's rows (the operators' list of uploads across partners)."""
        return [_entry(row["PartitionKey"], row["RowKey"], row) for row in self._table.list_entities()]


def _entry(partner: str, ingest_id: str, row: Any) -> LedgerEntry:
    fields = _decoded({k: v for k, v in row.items() if k not in ("PartitionKey", "RowKey")})
    return LedgerEntry(partner, ingest_id, row["status"], fields, row.metadata.get("etag"))


def _decoded(fields: dict[str, Any]) -> dict[str, Any]:
    decoded = dict(fields)
    for key in ("counts", "files"):
        if isinstance(decoded.get(key), str):
            decoded[key] = json.loads(decoded[key])
    return decoded
