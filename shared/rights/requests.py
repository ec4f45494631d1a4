"""The register of rights requests: who asked for what, when it is due, what was decided and why.

Requests hold no identities: the identifiers a request was made with are kept only as pseudonyms, each with a
label saying which kind of identifier the requester gave, so an access pack can say which rows each identifier
found without the register ever holding the identifier.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.platform.auth import Problem
from shared.rights.deadlines import due_date

TYPES = ("access", "rectification", "erasure", "restriction", "objection", "withdraw-consent")
RECEIVED, IN_PROGRESS, AWAITING_DECISION, COMPLETED = "received", "in_progress", "awaiting_decision", "completed"
OPEN = (RECEIVED, IN_PROGRESS, AWAITING_DECISION)
PARTITION = "request"
_JSON_FIELDS = ("given", "corrections", "result", "history")


@dataclass
class RightsRequest:
    id: str
    type: str
    status: str
    received: date
    created_by: str
    given: list[dict[str, str]]
    """[{pseudonym, label}] for each identifier the request was made with."""
    context: str = ""
    corrections: list[dict[str, Any]] = field(default_factory=list)
    extended: bool = False
    extension_reason: str | None = None
    outcome: str | None = None
    reasons: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, str]] = field(default_factory=list)

    @property
    def due(self) -> date:
        return due_date(self.received, extended=self.extended)

    @property
    def pseudonyms(self) -> list[str]:
        return [item["pseudonym"] for item in self.given]

    @property
    def labels(self) -> list[str]:
        """What the person gave, once each (a name gives several keys; a rotation, one set per key version)."""
        return list(dict.fromkeys(item["label"] for item in self.given))

    def note(self, at: datetime, who: str, what: str) -> None:
        self.history.append({"at": at.isoformat(timespec="seconds"), "by": who, "what": what})

    def public(self, today: date) -> dict[str, Any]:
        """What the API shows: no pseudonyms."""
        view = {"id": self.id, "type": self.type, "status": self.status, "received": self.received.isoformat(),
                "due": self.due.isoformat(), "extended": self.extended, "extension_reason": self.extension_reason,
                "outcome": self.outcome, "reasons": self.reasons, "identifiers": self.labels,
                "result": self.result, "history": self.history}
        if self.status in OPEN:
            view["days_left"] = (self.due - today).days
        return view


class RequestRegister:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    def save(self, request: RightsRequest) -> None:
        entity: dict[str, Any] = {"PartitionKey": PARTITION, "RowKey": request.id}
        for name, value in request.__dict__.items():
            if name == "id":
                continue
            if name in _JSON_FIELDS:
                value = json.dumps(value)
            elif isinstance(value, date):
                value = value.isoformat()
            entity[name] = value
        entity["due"] = request.due.isoformat()
        self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    def get(self, request_id: str) -> RightsRequest:
        try:
            row = self._table.get_entity(PARTITION, request_id)
        except ResourceNotFoundError:
            raise Problem(404, "Not Found", "No request has that id.") from None
        return _from_row(row)

    def with_status(self, statuses: tuple[str, ...]) -> list[RightsRequest]:
        rows = self._table.query_entities(f"PartitionKey eq '{PARTITION}'")
        found = [_from_row(row) for row in rows if row["status"] in statuses]
        return sorted(found, key=lambda request: request.due)


def _from_row(row: dict[str, Any]) -> RightsRequest:
    values = {k: v for k, v in row.items() if k not in ("PartitionKey", "RowKey", "due")}
    for name in _JSON_FIELDS:
        values[name] = json.loads(values.get(name) or ("{}" if name == "result" else "[]"))
    values["received"] = date.fromisoformat(values["received"])
    return RightsRequest(id=row["RowKey"], **values)
