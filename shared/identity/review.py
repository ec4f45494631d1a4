"""The identity review queue: pairs the model is unsure of, conflicts, and every decision a person made on them.

One Table entity per pair, keyed by a hash of its two record ids. A linkage run adds the pairs it is unsure of
and removes pending ones it no longer proposes; a decided pair is never overwritten, and every later run obeys
it: an accepted pair is one person, a rejected pair (or a split) stays two. A pair is shown as its agreement
pattern (which fields agree, and how), never as values.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.identity.linkage import Candidate, Decisions
from shared.platform.paging import PageRequest, page_body, sorted_page

PARTITION = "pair"
PENDING, ACCEPTED, REJECTED = "pending", "accepted", "rejected"
DECISIONS = {"accept": ACCEPTED, "reject": REJECTED}


class UnknownReview(LookupError):
    pass


class AlreadyDecided(ValueError):
    pass


def review_id(first: str, second: str) -> str:
    return hashlib.sha256(f"{first}|{second}".encode()).hexdigest()[:20]


class ReviewQueue:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    def _all(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self._table.query_entities("PartitionKey eq @p", parameters={"p": PARTITION})]

    def decisions(self) -> Decisions:
        decided = Decisions()
        for row in self._all():
            if row["status"] == ACCEPTED:
                decided.accepted.add((row["first"], row["second"]))
            elif row["status"] == REJECTED:
                decided.rejected.add((row["first"], row["second"]))
        return decided

    def version(self) -> str:
        """Changes whenever a decision is made: the index is rebuilt when it does."""
        decided = sorted(f"{row['RowKey']}={row['status']}" for row in self._all() if row["status"] != PENDING)
        return hashlib.sha256("\n".join(decided).encode()).hexdigest()[:16]

    def sync(self, candidates: Iterable[Candidate]) -> dict[str, int]:
        """Add what this run proposes, drop pending pairs it no longer proposes; decided pairs stay as they are."""
        existing = {row["RowKey"]: row for row in self._all()}
        proposed = {review_id(c.first, c.second): c for c in candidates}
        added = removed = 0
        now = datetime.now(UTC).isoformat()
        for key, candidate in proposed.items():
            row = existing.get(key)
            if row is not None and row["status"] != PENDING:
                continue
            self._table.upsert_entity({
                "PartitionKey": PARTITION, "RowKey": key, "first": candidate.first, "second": candidate.second,
                "status": PENDING, "kind": candidate.kind, "reason": candidate.reason,
                "probability": candidate.probability, "pattern": json.dumps(candidate.pattern, sort_keys=True),
                "proposed_at": row["proposed_at"] if row else now}, mode=UpdateMode.REPLACE)
            added += row is None
        for key, row in existing.items():
            if row["status"] == PENDING and key not in proposed:
                self._table.delete_entity(PARTITION, key)
                removed += 1
        return {"added": added, "removed": removed}

    def listing(self, status: str, page: PageRequest) -> dict[str, Any]:
        """What a reviewer sees, a page at a time: the id, why it is here, the score and the agreement pattern;
        conflicts first, then the likeliest matches."""
        rows = sorted((row for row in self._all() if row["status"] == status), key=_queue_order)
        shown, following = sorted_page(rows, _queue_order, page)
        return page_body([_public(row) for row in shown], following)

    def decide(self, key: str, decision: str, actor: str) -> dict[str, Any]:
        """A decision is made once: a second one, or one racing another, is refused (conditional on the ETag)."""
        try:
            entity = self._table.get_entity(PARTITION, key)
        except ResourceNotFoundError:
            raise UnknownReview(key) from None
        row = dict(entity)
        if row["status"] != PENDING:
            raise AlreadyDecided(key)
        row |= {"status": DECISIONS[decision], "decided_by": actor, "decided_at": datetime.now(UTC).isoformat()}
        try:
            self._table.update_entity(row, mode=UpdateMode.REPLACE, etag=entity.metadata["etag"],
                                      match_condition=MatchConditions.IfNotModified)
        except ResourceModifiedError:
            raise AlreadyDecided(key) from None
        return _public(row)

    def keep_apart(self, pairs: Iterable[tuple[str, str]], actor: str, reason: str) -> int:
        """Record pairs as rejected by a person (a split): no later run joins them."""
        now = datetime.now(UTC).isoformat()
        count = 0
        for first, second in pairs:
            self._table.upsert_entity({
                "PartitionKey": PARTITION, "RowKey": review_id(first, second), "first": first, "second": second,
                "status": REJECTED, "kind": "split", "reason": reason, "probability": 0.0, "pattern": "{}",
                "proposed_at": now, "decided_by": actor, "decided_at": now}, mode=UpdateMode.REPLACE)
            count += 1
        return count


def _queue_order(row: dict[str, Any]) -> tuple[str, str, str]:
    """Conflicts first, then the likeliest pairs first (probability is 0 to 1), then by id: as sortable text."""
    probability = float(row.get("probability") or 0)
    return ("0" if row["kind"] == "conflict" else "1", f"{1 - probability:.9f}", row["RowKey"])


def _public(row: dict[str, Any]) -> dict[str, Any]:
    shown = {"id": row["RowKey"], "kind": row["kind"], "reason": row["reason"], "status": row["status"],
             "probability": row.get("probability"), "agreement": json.loads(row.get("pattern") or "{}"),
             "proposed_at": row.get("proposed_at")}
    if row["status"] != PENDING:
        shown |= {"decided_by": row.get("decided_by"), "decided_at": row.get("decided_at")}
    return shown
