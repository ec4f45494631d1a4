"""The audit log is a hash chain in Table storage; the verify command detects any edited, inserted or deleted
entry. Tampering is done the way an attacker with table access would: through the Tables API."""

from __future__ import annotations

import json
import threading

import pytest
from azure.data.tables import UpdateMode

from shared import cli
from shared.platform.audit import PARTITION, AuditLog, entry_hash
from shared.platform.storage import AUDIT


@pytest.fixture
def log(storage) -> AuditLog:
    audit = AuditLog(storage.table(AUDIT))
    for number in range(1, 6):
        audit.append("test.event", {"number": number})
    return audit


def entity(storage, seq: int) -> dict:
    return dict(storage.table(AUDIT).get_entity(PARTITION, f"{seq:012d}"))


def test_intact_chain_verifies(storage, log, capsys):
    assert log.verify().ok
    assert cli.verify_audit(storage) == 0
    assert "5 entries verified" in capsys.readouterr().out


def test_edited_entry_is_detected(storage, log, capsys):
    row = entity(storage, 3)
    row["details"] = json.dumps({"number": 30})
    storage.table(AUDIT).update_entity(row, mode=UpdateMode.REPLACE)
    result = log.verify()
    assert not result.ok
    assert any("entry 3" in problem and "edited" in problem for problem in result.problems)
    assert cli.verify_audit(storage) == 1
    assert "BROKEN" in capsys.readouterr().out


def test_edit_with_recomputed_hash_breaks_the_next_link(storage, log):
    row = entity(storage, 3)
    row["details"] = json.dumps({"number": 30})
    row["hash"] = entry_hash(3, row["at"], row["action"], row["actor"], row["details"], row["prev_hash"])
    storage.table(AUDIT).update_entity(row, mode=UpdateMode.REPLACE)
    problems = log.verify().problems
    assert any("entry 4" in problem and "does not link" in problem for problem in problems)


def test_deleted_entry_is_detected(storage, log):
    storage.table(AUDIT).delete_entity(PARTITION, f"{3:012d}")
    problems = log.verify().problems
    assert any("missing or inserted" in problem for problem in problems)


def test_deleted_last_entry_is_detected(storage, log):
    storage.table(AUDIT).delete_entity(PARTITION, f"{5:012d}")
    problems = log.verify().problems
    assert any("head" in problem for problem in problems)


def test_inserted_entry_is_detected(storage, log):
    forged = entity(storage, 5)
    forged.update(RowKey=f"{6:012d}", seq=6, details=json.dumps({"forged": True}), prev_hash="f" * 64)
    forged["hash"] = entry_hash(6, forged["at"], forged["action"], forged["actor"], forged["details"], "f" * 64)
    storage.table(AUDIT).create_entity(forged)
    assert not log.verify().ok


def test_keyed_append_is_idempotent(storage):
    audit = AuditLog(storage.table(AUDIT))
    first = audit.append("ingest.accepted", {"n": 1}, key="ingest:abc")
    again = audit.append("ingest.accepted", {"n": 1}, key="ingest:abc")
    assert again == first
    assert len(audit.entries()) == 1


def test_concurrent_appenders_keep_one_chain(storage):
    """Two function instances appending at once: the head's ETag makes one of them retry, never fork."""
    writers = [AuditLog(storage.table(AUDIT)) for _ in range(3)]

    def append_many(audit: AuditLog, name: int) -> None:
        for number in range(8):
            audit.append("test.concurrent", {"writer": name, "number": number})

    threads = [threading.Thread(target=append_many, args=(audit, n)) for n, audit in enumerate(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = writers[0].verify()
    assert result.ok, result.problems
    assert result.entries == 24
