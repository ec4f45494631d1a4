"""The audit log: hash chains in Table storage that a command verifies end to end.

Every entry holds the previous entry's hash and its own hash over its content, so editing an entry breaks its own
hash, inserting or deleting one breaks the next entry's link, and a `head` row (seq and hash of the last entry)
exposes a truncated tail. An append is one table transaction in one partition: it moves the head (only if nobody
else moved it first), adds the entry and, for idempotent appends, a key row, so a retried event that appends
"the same" entry again finds its key row and appends nothing.

There are several chains, one partition each, so that concurrent writers do not queue on one head row: the main
chain (admin calls, rights, reports, key reads) and LANES chains for keyed appends (every ingest and retention
run), each key's chain fixed by its hash, so a retried event always meets its key row. A writer remembers the
head it last wrote and appends on it without reading it again; if another writer moved that head meanwhile, the
head's ETag refuses the transaction and the writer reads the head and tries again. The signed checkpoints
record every chain's head.

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
"""The main chain's partition; chain `c` other than the main one ("") lives in partition `chain-c`."""
HEAD = "head"
GENESIS = "0" * 64
LANES = 16
"""Keyed appends are spread over this many chains by their key. Never change it: a retried event would look for
its key row on another chain and append its entry a second time."""
_ATTEMPTS = 20


def chain_partition(chain: str) -> str:
    return PARTITION if not chain else f"{PARTITION}-{chain}"


def chain_of_partition(partition: str) -> str | None:
    """The chain a partition holds, or None for a partition that is not the audit log's."""
    if partition == PARTITION:
        return ""
    return partition.removeprefix(f"{PARTITION}-") if partition.startswith(f"{PARTITION}-") else None


def chain_for(key: str | None) -> str:
    """The chain an append goes to: a keyed one to the lane its key hashes to, any other to the main chain."""
    if key is None:
        return ""
    return f"{int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], 'big') % LANES:02d}"


def in_chain(chain: str, problems: list[str]) -> list[str]:
    """Problems as the operator reads them: the main chain's as they are, another chain's prefixed with its name."""
    return [f"chain {chain}: {problem}" for problem in problems] if chain else problems


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: str
    action: str
    actor: str
    details: dict[str, Any]
    prev_hash: str
    hash: str
    chain: str = ""
    """Which chain holds it ("" is the main chain); seq counts within that chain."""


@dataclass(frozen=True)
class _Head:
    """A chain's head as this writer last wrote it."""

    seq: int
    hash: str
    etag: str


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    problems: list[str]
    checkpoints: int = 0
    """Checkpoints whose signature verified (0: the chain was checked on its own)."""
    anchored: int = 0
    """How many entries (over every chain) a verified checkpoint covers."""
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
        self._heads: dict[str, _Head] = {}
        self._fresh_reads = 0
        """Appends left to make on a head read afresh: set when a remembered head proved stale (other writers are
        busy on the same chains), so that a busy log costs two round trips an append, not three."""

    def append(self, action: str, details: dict[str, Any], actor: str = "system",
               key: str | None = None) -> AuditEntry:
        """Append one entry. With `key`, appending the same key again returns the first entry unchanged.

        Usually one round trip: on the head this writer last wrote, or else on the head read now (always, for a
        while, after a remembered head proved stale). A transaction refused because the head moved is tried again
        on the head read afresh; one refused because a row exists looks for the key's entry first."""
        chain = chain_for(key)
        partition = chain_partition(chain)
        details_json = json.dumps(details, sort_keys=True, separators=(",", ":"))
        look_for_key = False
        for attempt in range(_ATTEMPTS):
            head = self._heads.pop(chain, None)
            if attempt or self._fresh_reads:
                head = None
            remembered = head is not None
            if head is None:
                if look_for_key and key is not None and (existing := self._entry_for_key(partition, key)):
                    return existing
                head = self._read_head(partition)
            seq = (head.seq if head else 0) + 1
            prev_hash = head.hash if head else GENESIS
            at = self._clock().isoformat(timespec="microseconds")
            digest = entry_hash(seq, at, action, actor, details_json, prev_hash)
            operations = [_move_head(partition, head, seq, digest),
                          ("create", {"PartitionKey": partition, "RowKey": _row_key(seq), "kind": "entry",
                                      "seq": seq, "at": at, "action": action, "actor": actor,
                                      "details": details_json, "prev_hash": prev_hash, "hash": digest})]
            if key is not None:
                operations.append(("create", {"PartitionKey": partition, "RowKey": f"key:{key}", "kind": "key",
                                              "seq": seq}))
            try:
                written = self._table.submit_transaction(operations)
            except TableTransactionError as refused:
                # 412: the head moved; try again on it (had our key been appended meanwhile, that attempt is refused
                # with 409). Anything else (409: the head or the key row exists) may mean the key was appended.
                look_for_key = refused.status_code != 412
                if remembered:
                    self._fresh_reads = LANES
                else:  # another writer is appending on this chain now: back off a little
                    time.sleep(min(0.01 * 2**attempt, 0.5))
                continue
            self._heads[chain] = _Head(seq, digest, written[0]["etag"])
            self._fresh_reads = max(self._fresh_reads - 1, 0)
            return AuditEntry(seq, at, action, actor, details, prev_hash, digest, chain)
        raise RuntimeError("audit log is too busy: could not append after several attempts")

    def _read_head(self, partition: str) -> _Head | None:
        try:
            row = self._table.get_entity(partition, HEAD)
        except ResourceNotFoundError:
            return None
        return _Head(row["seq"], row["hash"], str(row.metadata["etag"]))

    def _entry_for_key(self, partition: str, key: str) -> AuditEntry | None:
        try:
            pointer = self._table.get_entity(partition, f"key:{key}")
        except ResourceNotFoundError:
            return None
        return _to_entry(self._table.get_entity(partition, _row_key(pointer["seq"])))

    def entries(self) -> list[AuditEntry]:
        """Every chain's entries, in the order they were appended (by time; within a chain by number)."""
        return _in_order(self._table.query_entities("kind eq 'entry'"))

    def entries_between(self, start: str, end: str) -> list[AuditEntry]:
        """Entries appended from `start` to `end` (ISO 8601 times in UTC), in order."""
        return _in_order(self._table.query_entities("kind eq 'entry' and at ge @start and at le @end",
                                                    parameters={"start": start, "end": end}))

    def head(self, chain: str = "") -> TableEntity | None:
        """A chain's head row: `seq` and `hash` of its last entry, or None for an empty chain."""
        try:
            return self._table.get_entity(chain_partition(chain), HEAD)
        except ResourceNotFoundError:
            return None

    def heads(self) -> dict[str, TableEntity]:
        """Every chain's head row, by chain."""
        return {chain: row for row in self._table.query_entities("kind eq 'head'")
                if (chain := chain_of_partition(row["PartitionKey"])) is not None}

    def entry_rows(self, after: int = 0, up_to: int | None = None, chain: str = "") -> list[TableEntity]:
        """One chain's entry rows, in row-key order; with `after`/`up_to`, only seq after < n <= up_to (by row
        key)."""
        query = f"PartitionKey eq '{chain_partition(chain)}' and kind eq 'entry'"
        if after:
            query += f" and RowKey gt '{_row_key(after)}'"
        if up_to is not None:
            query += f" and RowKey le '{_row_key(up_to)}'"
        return sorted(self._table.query_entities(query), key=lambda row: row["RowKey"])

    def chains(self) -> tuple[dict[str, list[TableEntity]], dict[str, TableEntity]]:
        """Every chain as the table holds it: its entry rows (in row-key order) and its head, by chain. A chain
        whose head is gone still shows by its entries, and one whose entries are gone by its head."""
        rows: dict[str, list[TableEntity]] = {}
        heads: dict[str, TableEntity] = {}
        for row in self._table.query_entities("kind eq 'entry' or kind eq 'head'"):
            chain = chain_of_partition(row["PartitionKey"])
            if chain is None:
                continue
            if row["kind"] == "head":
                heads[chain] = row
            else:
                rows.setdefault(chain, []).append(row)
        for chain in heads:
            rows.setdefault(chain, [])
        return {chain: sorted(found, key=lambda row: row["RowKey"]) for chain, found in sorted(rows.items())}, heads

    def verify(self) -> Verification:
        """Every chain's own consistency: links, hashes, sequence and head. See AuditCheckpoints.verify for what
        only the signed checkpoints can show."""
        rows, heads = self.chains()
        problems = [problem for chain, found in rows.items()
                    for problem in in_chain(chain, check_chain(found, heads.get(chain)))]
        return Verification(not problems, sum(len(found) for found in rows.values()), problems)


def _move_head(partition: str, head: _Head | None, seq: int, digest: str) -> tuple:
    entity = {"PartitionKey": partition, "RowKey": HEAD, "kind": "head", "seq": seq, "hash": digest}
    if head is None:
        return ("create", entity)
    return ("update", entity, {"mode": UpdateMode.REPLACE, "etag": head.etag,
                               "match_condition": MatchConditions.IfNotModified})


def _in_order(rows: Any) -> list[AuditEntry]:
    entries = [_to_entry(row) for row in rows if chain_of_partition(row["PartitionKey"]) is not None]
    return sorted(entries, key=lambda entry: (entry.at, entry.chain, entry.seq))


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
                      row["prev_hash"], row["hash"], chain_of_partition(row["PartitionKey"]) or "")
