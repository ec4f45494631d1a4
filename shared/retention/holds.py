"""Legal holds: data that must survive its retention period (litigation, an investigation, an inquiry).

A hold covers a whole dataset or one person (every pseudonym linked to the identifiers given); it is set and
lifted by a platform administrator, each time with a reason, and both are kept with who and when.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.platform.auth import Problem
from shared.platform.paging import PageRequest, page_body, table_page

PARTITION = "hold"


@dataclass(frozen=True)
class ActiveHolds:
    datasets: frozenset[str]
    people: frozenset[str]

    def covers_dataset(self, dataset: str) -> bool:
        return dataset in self.datasets


class HoldRegister:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    def set(self, *, reason: object, by: str, dataset: str | None = None,
            pseudonyms: set[str] | None = None) -> dict[str, Any]:
        if not isinstance(reason, str) or not reason.strip():
            raise Problem(400, "Bad Request", "a legal hold needs a reason", field="reason", rule="hold.reason")
        hold = {"PartitionKey": PARTITION, "RowKey": uuid.uuid4().hex, "scope": "dataset" if dataset else "person",
                "dataset": dataset or "", "pseudonyms": json.dumps(sorted(pseudonyms or [])), "reason": reason.strip(),
                "set_by": by, "set_at": datetime.now(UTC).isoformat(), "active": True}
        self._table.create_entity(hold)
        return _public(hold)

    def lift(self, hold_id: str, *, reason: object, by: str) -> dict[str, Any]:
        if not isinstance(reason, str) or not reason.strip():
            raise Problem(400, "Bad Request", "lifting a hold needs a reason", field="reason", rule="hold.reason")
        try:
            hold = dict(self._table.get_entity(PARTITION, hold_id))
        except ResourceNotFoundError:
            raise Problem(404, "Not Found", "No hold has that id.") from None
        hold.update(active=False, lifted_by=by, lifted_at=datetime.now(UTC).isoformat(), lift_reason=reason.strip())
        self._table.upsert_entity(hold, mode=UpdateMode.REPLACE)
        return _public(hold)

    def active(self) -> ActiveHolds:
        rows = [row for row in self._table.query_entities(f"PartitionKey eq '{PARTITION}'") if row["active"]]
        return ActiveHolds(frozenset(r["dataset"] for r in rows if r["scope"] == "dataset"),
                           frozenset(p for r in rows if r["scope"] == "person" for p in json.loads(r["pseudonyms"])))

    def listing(self, page: PageRequest) -> dict[str, Any]:
        """Every hold, set and lifted, a page at a time in the table's order (the service's continuation token)."""
        rows, following = table_page(self._table, "PartitionKey eq @p", page, {"p": PARTITION})
        return page_body([_public(row) for row in rows], following)


def _public(hold: dict[str, Any]) -> dict[str, Any]:
    """A hold as the API shows it: who and why, never the held person's pseudonyms."""
    shown = {k: v for k, v in hold.items() if k not in ("PartitionKey", "RowKey", "pseudonyms")}
    shown["id"] = hold["RowKey"]
    shown["people"] = 1 if json.loads(hold.get("pseudonyms") or "[]") else 0
    return shown
