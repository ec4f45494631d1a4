"""The audit log: a hash chain in Table storage that a command verifies end to end.

Every entry holds the previous entry's hash and its own hash over its content, so editing an entry breaks its own
hash, inserting or deleting one breaks the next entry's link, and a `head` row (seq and hash of the last entry)
exposes a truncated tail. An append is one table transaction in one partition: it moves the head (only if nobody
else moved it first), adds the entry and, for idempotent appends, a key row, so a retried event that appends
"the same" entry again finds its key row and appends nothing.

The chain alone cannot show what someone with write access to the table does consistently: delete the last
entries and move the head back, or edit an entry and recompute every later hash and the head. Signed checkpoints
kept outside the table (shared/platform/checkpoints.py) show both; `verify` here checks the chain's own
consistency, and `checkpoints.verify_anchored` adds what the checkpoints recorded.

Entries hold no identities: actions, counts, pseudonymous ids and rule names only.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, TableEntity, TableTransactionError, UpdateMode

PARTITION = "chain"
HEAD = "head"
GENESIS = "0" * 64
_ATTEMPTS = 20


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: str
    action: str
    actor: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    problems: list[str]
    checkpoints: int = 0
    """Checkpoints whose signature verified (0: the chain was checked on its own)."""
    anchored: int = 0
    """Entries 1..anchored are covered by a verified checkpoint."""
    notes: list[str] = field(default_factory=list)
    """What the operator should know that is not a fault (entries not yet anchored, say)."""


def entry_hash(seq: int, at: str, action: str, actor: str, details_json: str, prev_hash: str) -> str:
    canonical = json.dumps([seq, at, action, actor, details_json, prev_hash], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _row_key(seq: int) -> str:
    return f"{seq:012d}"


class AuditLog:
    def __init__(self, table: TableClient, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._table = table
        self._clock = clock

    def append(self, action: str, details: dict[str, Any], actor: str = "system",
               key: str | None = None) -> AuditEntry:
        """Append one entry. With `key`, appending the same key again returns the first entry unchanged."""
        for attempt in range(_ATTEMPTS):
            if key is not None and (existing := self._entry_for_key(key)) is not None:
                return existing
            head = self._head()
            seq = (head["seq"] if head else 0) + 1
            prev_hash = head["hash"] if head else GENESIS
            at = self._clock().isoformat(timespec="microseconds")
            details_json = json.dumps(details, sort_keys=True, separators=(",", ":"))
            digest = entry_hash(seq, at, action, actor, details_json, prev_hash)
            operations = [self._move_head(head, seq, digest)]
            operations.append(("create", {"PartitionKey": PARTITION, "RowKey": _row_key(seq), "kind": "entry",
                                          "seq": seq, "at": at, "action": action, "actor": actor,
                                          "details": details_json, "prev_hash": prev_hash, "hash": digest}))
            if key is not None:
                operations.append(("create", {"PartitionKey": PARTITION, "RowKey": f"key:{key}", "kind": "key",
                                              "seq": seq}))
            try:
                self._table.submit_transaction(operations)
            except TableTransactionError:
                time.sleep(min(0.01 * 2**attempt, 0.5))  # another writer moved the head, or wrote our key
                continue
            return AuditEntry(seq, at, action, actor, details, prev_hash, digest)
        raise RuntimeError("audit log is too busy: could not append after several attempts")

    def _head(self) -> TableEntity | None:
        try:
            return self._table.get_entity(PARTITION, HEAD)
        except ResourceNotFoundError:
            return None

    @staticmethod
    def _move_head(head: TableEntity | None, seq: int, digest: str) -> tuple:
        entity = {"PartitionKey": PARTITION, "RowKey": HEAD, "kind": "head", "seq": seq, "hash": digest}
        if head is None:
            return ("create", entity)
        return ("update", entity, {"mode": UpdateMode.REPLACE, "etag": head.metadata["etag"],
                                   "match_condition": MatchConditions.IfNotModified})

    def _entry_for_key(self, key: str) -> AuditEntry | None:
        try:
            pointer = self._table.get_entity(PARTITION, f"key:{key}")
        except ResourceNotFoundError:
            return None
        return _to_entry(self._table.get_entity(PARTITION, _row_key(pointer["seq"])))

    def entries(self) -> list[AuditEntry]:
        rows = self._table.query_entities(f"PartitionKey eq '{PARTITION}' and kind eq 'entry'")
        return sorted((_to_entry(row) for row in rows), key=lambda entry: entry.seq)

    def entries_between(self, start: str, end: str) -> list[AuditEntry]:
        """Entries appended from `start` to `end` (ISO 8601 times in UTC), in order."""
        rows = self._table.query_entities(f"PartitionKey eq '{PARTITION}' and kind eq 'entry' and at ge @start "
                                          "and at le @end", parameters={"start": start, "end": end})
        return sorted((_to_entry(row) for row in rows), key=lambda entry: entry.seq)

    def head(self) -> TableEntity | None:
        """The head row: `seq` and `hash` of the last entry, or None for an empty log."""
        return self._head()

    def entry_rows(self, after: int = 0, up_to: int | None = None) -> list[TableEntity]:
        """The entry rows, in row-key order; with `after`/`up_to`, only seq after < n <= up_to (by row key)."""
        query = f"PartitionKey eq '{PARTITION}' and kind eq 'entry'"
        if after:
            query += f" and RowKey gt '{_row_key(after)}'"
        if up_to is not None:
            query += f" and RowKey le '{_row_key(up_to)}'"
        return sorted(self._table.query_entities(query), key=lambda row: row["RowKey"])

    def verify(self) -> Verification:
        """The chain's own consistency: links, hashes, sequence and head. See checkpoints.verify_anchored for
        what only the signed checkpoints can show."""
        rows = self.entry_rows()
        problems = check_chain(rows, self._head())
        return Verification(not problems, len(rows), problems)


def check_chain(rows: list[TableEntity], head: TableEntity | None, after: int = 0,
                prev_hash: str = GENESIS) -> list[str]:
    """Problems in the chain as the table holds it (rows in row-key order), naming entries by number only. With
    `after`, the rows start after entry `after`, whose hash is `prev_hash`."""
    problems: list[str] = []
    expected_seq = after + 1
    for row in rows:
        seq = row["seq"]
        if row["RowKey"] != _row_key(seq):
            problems.append(f"entry {row['RowKey']}: its row key does not match its sequence number {seq}")
        if seq != expected_seq:
            problems.append(f"entry {seq}: expected entry {expected_seq} here (an entry is missing or inserted)")
        if row["prev_hash"] != prev_hash:
            problems.append(f"entry {seq}: does not link to the entry before it")
        if row_hash(row) != row["hash"]:
            problems.append(f"entry {seq}: its content does not match its hash (edited)")
        prev_hash, expected_seq = row["hash"], seq + 1
    last_seq = expected_seq - 1
    if head is None and rows:
        problems.append("the head row is missing")
    elif head is not None and (head["seq"] != last_seq or head["hash"] != prev_hash):
        problems.append(f"the head names entry {head['seq']} but the chain ends at entry {last_seq} "
                        "(entries deleted from the end, or the head edited)")
    return problems


def row_hash(row: dict[str, Any], prev_hash: str | None = None) -> str:
    """The hash an entry row's content gives, linked to `prev_hash` (default: the row's own link)."""
    return entry_hash(row["seq"], row["at"], row["action"], row["actor"], row["details"],
                      row["prev_hash"] if prev_hash is None else prev_hash)

def _to_entry(row: dict[str, Any]) -> AuditEntry:
    return AuditEntry(row["seq"], row["at"], row["action"], row["actor"], json.loads(row["details"]),
                      row["prev_hash"], row["hash"])
