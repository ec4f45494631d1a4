"""The audit log is a hash chain in Table storage; the verify command detects any edited, inserted or deleted
entry, and against the signed checkpoints also entries cut from the end and an edit with every later hash
recomputed. Tampering is done the way an attacker with table access would: through the Tables API. Key Vault
signing runs through the real azure-keyvault-keys clients against tests/keyvault_stub.py, a local stand-in."""

from __future__ import annotations

import base64
import hashlib
import json
import threading

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.data.tables import UpdateMode
from azure.functions.timer import TimerRequest
from azure.keyvault.keys import KeyClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from devtools.eventgrid import indexed_functions
from shared import cli
from shared.platform.audit import GENESIS, HEAD, PARTITION, AuditLog, chain_for, chain_partition, entry_hash
from shared.platform.checkpoints import (
    AuditBrokenError,
    AuditCheckpoints,
    KeyVaultAuditKey,
    LocalAuditKey,
    audit_key_from_settings,
)
from shared.platform.settings import ConfigurationError, Settings
from shared.platform.storage import AUDIT, AUDIT_CHECKPOINTS
from tests import keyvault_stub


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


# Checkpoints: the chain anchored outside its table. Tampering is done through the Tables API, consistently, the
# way someone with write access to the table and knowledge of the hash formula would do it.

SECRET = "value-that-must-never-be-printed"


@pytest.fixture
def local_key(tmp_path) -> LocalAuditKey:
    path = tmp_path / "audit-key.pem"
    path.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return LocalAuditKey.from_file(str(path))


@pytest.fixture(scope="module")
def vault(tmp_path_factory):
    stub, server = keyvault_stub.start(tmp_path_factory.mktemp("vault"))
    yield stub
    server.shutdown()


def vault_key(vault, name: str) -> KeyVaultAuditKey:
    return KeyVaultAuditKey(vault.url, name, keyvault_stub.StaticCredential(), verify_challenge_resource=False,
                            connection_verify=vault.ca_file)


def append(storage, count: int, **details) -> AuditLog:
    audit = AuditLog(storage.table(AUDIT))
    for number in range(count):
        audit.append("test.event", {"number": number, **details})
    return audit


def recompute_from(storage, seq: int, last: int) -> None:
    """Rewrite entries seq..last so that every link and hash is consistent again, and move the head."""
    table = storage.table(AUDIT)
    prev_hash = entity(storage, seq - 1)["hash"] if seq > 1 else GENESIS
    for number in range(seq, last + 1):
        row = entity(storage, number)
        row["prev_hash"] = prev_hash
        row["hash"] = entry_hash(number, row["at"], row["action"], row["actor"], row["details"], prev_hash)
        table.update_entity(row, mode=UpdateMode.REPLACE)
        prev_hash = row["hash"]
    head = dict(table.get_entity(PARTITION, HEAD))
    head.update(seq=last, hash=prev_hash)
    table.update_entity(head, mode=UpdateMode.REPLACE)


def test_truncation_with_the_head_moved_back_is_detected(storage, local_key, capsys):
    audit = append(storage, 5)
    AuditCheckpoints(storage, local_key).write()
    for seq in (4, 5):
        storage.table(AUDIT).delete_entity(PARTITION, f"{seq:012d}")
    recompute_from(storage, 3, 3)
    assert audit.verify().ok, "the chain alone looks intact: only the checkpoint shows the cut"

    assert cli.verify_audit(storage, local_key) == 1
    out = capsys.readouterr().out
    assert "entries 4 to 5 are missing" in out
    assert "the head names entry 3 but checkpoint" in out and "recorded 5 entries" in out


def test_an_edit_with_every_later_hash_recomputed_is_detected(storage, local_key, capsys):
    audit = append(storage, 5)
    AuditCheckpoints(storage, local_key).write()
    row = entity(storage, 3)
    row["details"] = json.dumps({"number": SECRET})
    storage.table(AUDIT).update_entity(row, mode=UpdateMode.REPLACE)
    recompute_from(storage, 3, 5)
    assert audit.verify().ok, "the chain alone looks intact: only the checkpoint shows the edit"

    result = AuditCheckpoints(storage, local_key).verify()
    assert not result.ok
    assert any(p.startswith("entry 3 is changed since checkpoint") for p in result.problems), result.problems
    assert any(p.startswith("entries 4 to 5 are rewritten to follow a changed entry") for p in result.problems)
    assert cli.verify_audit(storage, local_key) == 1
    assert SECRET not in capsys.readouterr().out


def test_checkpoints_are_signed_in_key_vault_through_the_sdk_and_survive_rotation(storage, vault, capsys):
    first = vault.create_key("audit-rotating", "v1")
    key = vault_key(vault, "audit-rotating")
    append(storage, 3)
    signed = AuditCheckpoints(storage, key).write().checkpoint
    assert signed is not None and (signed.first, signed.count, signed.key_id) == (1, 3, first)
    assert vault.signs[-1] == "audit-rotating/v1"

    second = vault.create_key("audit-rotating", "v2")  # Key Vault's rotation policy adds a version
    append(storage, 2)
    signed = AuditCheckpoints(storage, key).write().checkpoint
    assert signed is not None and (signed.first, signed.count, signed.key_id) == (4, 5, second)
    assert vault.signs[-1] == "audit-rotating/v2"

    result = AuditCheckpoints(storage, vault_key(vault, "audit-rotating")).verify()
    assert result.ok, result.problems
    assert (result.checkpoints, result.anchored) == (2, 5)
    assert cli.verify_audit(storage, key) == 0
    assert "entries 1 to 5 match 2 signed checkpoints" in capsys.readouterr().out


def test_the_key_vault_key_never_leaves_the_vault(vault):
    vault.create_key("audit-private", "v1")
    client = KeyClient(vault.url, keyvault_stub.StaticCredential(), verify_challenge_resource=False,
                       connection_verify=vault.ca_file)
    key = client.get_key("audit-private")
    assert key.key.d is None, "only the public part is ever sent"
    assert key.properties.exportable is False
    assert set(key.key_operations or []) == {"sign", "verify"}


def test_a_forged_or_altered_checkpoint_anchors_nothing(storage, vault, local_key):
    vault.create_key("audit-forged", "v1")
    key = vault_key(vault, "audit-forged")
    append(storage, 3)
    checkpoints = AuditCheckpoints(storage, key)
    signed = checkpoints.write().checkpoint
    assert signed is not None
    document = json.loads(storage.platform_blob(AUDIT_CHECKPOINTS, signed.name).download_blob().readall())
    main = document["checkpoint"]["chains"][""]
    cut = {**main, "count": 2, "first": 1, "hashes": main["hashes"][:2], "head": main["hashes"][1]}
    altered = {**document, "checkpoint": {**document["checkpoint"], "count": 2, "chains": {"": cut}}}
    checkpoints.store(f"{2:012d}-altered.json", json.dumps(altered).encode())
    forger = AuditCheckpoints(storage, local_key)  # someone else's key, naming the platform's key version
    payload = {**document["checkpoint"], "at": "2030-01-01T00:00:00.000000+00:00"}
    forged = {"checkpoint": payload, "signature": document["signature"][::-1]}
    forger.store(f"{3:012d}-forged.json", json.dumps(forged).encode())

    problems = checkpoints.verify().problems
    assert any("000000000002-altered.json: its signature does not verify" in p for p in problems), problems
    assert any("000000000003-forged.json: its signature does not verify" in p for p in problems), problems
    elsewhere = {**document, "checkpoint": {**document["checkpoint"],
                                            "key": "https://elsewhere.vault.azure.net/keys/audit-forged/v1"}}
    checkpoints.store(f"{3:012d}-elsewhere.json", json.dumps(elsewhere).encode())
    assert any("elsewhere.json: it names a key other than the platform's audit key" in p
               for p in checkpoints.verify().problems)


def test_a_second_write_of_a_checkpoint_name_is_refused(storage, local_key):
    """Azurite has no immutability policies: locally, overwrite=False is what refuses it (in Azure, the container's
    time-based immutability policy refuses overwrites and deletes as well)."""
    append(storage, 2)
    checkpoints = AuditCheckpoints(storage, local_key)
    signed = checkpoints.write().checkpoint
    assert signed is not None
    before = storage.platform_blob(AUDIT_CHECKPOINTS, signed.name).download_blob().readall()
    with pytest.raises(ResourceExistsError):
        checkpoints.store(signed.name, b"{}")
    assert storage.platform_blob(AUDIT_CHECKPOINTS, signed.name).download_blob().readall() == before


def test_a_missing_checkpoint_and_unanchored_entries_are_reported(storage, local_key):
    checkpoints = AuditCheckpoints(storage, local_key)
    for _ in range(3):
        append(storage, 2)
        checkpoints.write()
    append(storage, 1)
    result = checkpoints.verify()
    assert result.ok and result.anchored == 6
    assert result.notes == ["1 entry after entry 6 is not anchored yet (the next checkpoint signs them)"]
    middle = checkpoints.names()[1]  # possible locally only: in Azure the immutability policy forbids it
    storage.platform_blob(AUDIT_CHECKPOINTS, middle).delete_blob()
    assert "no checkpoint records entries 3 to 4 (a checkpoint is missing)" in checkpoints.verify().problems


def test_nothing_new_writes_nothing_and_a_cut_chain_is_never_signed(storage, local_key):
    checkpoints = AuditCheckpoints(storage, local_key)
    assert checkpoints.write().checkpoint is None, "an empty log has nothing to anchor"
    append(storage, 4)
    assert checkpoints.write().checkpoint is not None
    assert checkpoints.write().checkpoint is None
    storage.table(AUDIT).delete_entity(PARTITION, f"{4:012d}")
    recompute_from(storage, 3, 3)
    with pytest.raises(AuditBrokenError, match="head names entry 3 but checkpoint"):
        checkpoints.write()
    assert len(checkpoints.names()) == 1


def test_the_command_line_writes_and_checks_checkpoints_with_a_local_key(storage, azurite_server, tmp_path,
                                                                           capsys):
    key_file = tmp_path / "audit-key.pem"
    key_file.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    settings_file = tmp_path / "local.settings.json"
    settings_file.write_text(json.dumps({"Values": {
        "FDP_POLICY_PATH": "policies/leap.yaml", "FDP_INGEST_STORAGE": azurite_server.connection_string,
        "FDP_PLATFORM_STORAGE": azurite_server.connection_string, "FDP_LOCAL_AUDIT_KEY_FILE": str(key_file)}}))
    append(storage, 3)
    assert cli.main(["--settings", str(settings_file), "checkpoint"]) == 0
    assert "entries 1 to 3 signed with local:" in capsys.readouterr().out
    assert cli.main(["--settings", str(settings_file), "verify-audit"]) == 0
    assert "entries 1 to 3 match 1 signed checkpoints" in capsys.readouterr().out
    storage.table(AUDIT).delete_entity(PARTITION, f"{3:012d}")
    assert cli.main(["--settings", str(settings_file), "verify-audit"]) == 1


def audit_settings(**overrides) -> Settings:
    values = dict(policy_path="p.yaml", ingest_storage="a", platform_storage="b", key_vault_url=None,
                  root_key_secret="pseudonymisation-root-key", local_root_key=None, in_azure=False)
    return Settings(**{**values, **overrides})


def test_a_local_audit_key_is_refused_in_azure(local_key, tmp_path):
    path = tmp_path / "key.pem"
    path.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    assert isinstance(audit_key_from_settings(audit_settings(local_audit_key_file=str(path))), LocalAuditKey)
    assert audit_key_from_settings(audit_settings()) is None
    with pytest.raises(ConfigurationError, match="Key Vault key"):
        audit_key_from_settings(audit_settings(local_audit_key_file=str(path), in_azure=True,
                                               key_vault_url="https://v.vault.azure.net"))
    with pytest.raises(ConfigurationError, match="FDP_KEY_VAULT_URL"):
        audit_key_from_settings(audit_settings(in_azure=True))
    assert isinstance(audit_key_from_settings(audit_settings(in_azure=True, key_vault_url="https://v.vault.azure.net")),
                      KeyVaultAuditKey)
    assert Settings.from_env({"FDP_POLICY_PATH": "p", "FDP_INGEST_STORAGE": "a", "FDP_PLATFORM_STORAGE": "b",
                              "FDP_AUDIT_KEY_NAME": "k", "FDP_LOCAL_AUDIT_KEY_FILE": "f"}).audit_key_name == "k"


def test_a_malformed_local_key_file_is_refused_without_echoing_it(tmp_path):
    path = tmp_path / "key.pem"
    path.write_text("not a key but a secret-looking line")
    with pytest.raises(ConfigurationError) as error:
        LocalAuditKey.from_file(str(path))
    assert "secret-looking" not in str(error.value)


def test_the_hourly_timer_signs_a_checkpoint(app_env, storage, tmp_path, monkeypatch):
    key_file = tmp_path / "audit-key.pem"
    key_file.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    app_env("leap")
    monkeypatch.setenv("FDP_LOCAL_AUDIT_KEY_FILE", str(key_file))
    append(storage, 2)
    function = indexed_functions()["audit_checkpoint"]
    [binding] = json.loads(function.get_function_json())["bindings"]
    assert (binding["type"], binding["schedule"]) == ("timerTrigger", "0 15 * * * *")
    function.get_user_function()(TimerRequest())
    key = LocalAuditKey.from_file(str(key_file))
    result = AuditCheckpoints(storage, key).verify()
    assert result.ok and (result.checkpoints, result.anchored) == (1, 2)


def test_a_deleted_entry_with_the_rest_renumbered_is_detected(storage, local_key):
    append(storage, 5)
    checkpoints = AuditCheckpoints(storage, local_key)
    checkpoints.write()
    table = storage.table(AUDIT)
    for seq in (3, 4):  # entry 3 deleted: 4 and 5 move down, and the chain is made consistent again
        row = entity(storage, seq + 1)
        row.update(RowKey=f"{seq:012d}", seq=seq)
        table.upsert_entity(row, mode=UpdateMode.REPLACE)
    table.delete_entity(PARTITION, f"{5:012d}")
    recompute_from(storage, 3, 4)
    assert AuditLog(table).verify().ok
    problems = checkpoints.verify().problems
    assert any(p.startswith("entry 5 is missing") for p in problems), problems
    assert any(p.startswith("entries 3 to 4 are changed since checkpoint") for p in problems), problems


# Several chains: keyed appends (every ingest) go to one of LANES chains by their key, so concurrent ingests do not
# queue on one head row; the checkpoints sign every chain's head, and the verifier checks each chain end to end.

def keys_on(chain: str, count: int) -> list[str]:
    """Idempotency keys whose appends land on `chain`."""
    found, number = [], 0
    while len(found) < count:
        if chain_for(f"ingest:{number}") == chain:
            found.append(f"ingest:{number}")
        number += 1
    return found


def lane_entity(storage, chain: str, seq: int) -> dict:
    return dict(storage.table(AUDIT).get_entity(chain_partition(chain), f"{seq:012d}"))


def test_keyed_appends_spread_over_chains_each_verified(storage):
    audit = AuditLog(storage.table(AUDIT))
    audit.append("admin.call", {"n": 0})
    appended = [audit.append("ingest.accepted", {"n": n}, key=f"ingest:{n}") for n in range(40)]
    chains = {entry.chain for entry in appended}
    assert len(chains) > 8 and "" not in chains, "keyed appends spread over the lanes, off the main chain"
    assert [entry.details["n"] for entry in audit.entries()] == [0, *range(40)], \
        "entries() reads every chain, in the order they were appended"
    result = audit.verify()
    assert result.ok and result.entries == 41, result.problems


def test_a_keyed_append_retried_by_another_writer_appends_nothing(storage):
    """The retry of an event on another instance: it has no cached head, finds the key row, appends nothing."""
    [key] = keys_on("03", 1)
    first = AuditLog(storage.table(AUDIT)).append("ingest.accepted", {"n": 1}, key=key)
    other = AuditLog(storage.table(AUDIT))
    other.append("ingest.accepted", {"n": 2}, key=keys_on("03", 2)[1])  # `other` now remembers chain 03's head
    assert other.append("ingest.accepted", {"n": 1}, key=key) == first
    assert AuditLog(storage.table(AUDIT)).append("ingest.accepted", {"n": 1}, key=key) == first
    assert len(AuditLog(storage.table(AUDIT)).entries()) == 2


def test_writers_with_stale_heads_never_fork_a_chain(storage):
    """Each writer appends on the head it last wrote; when another writer moved it, the head's ETag refuses the
    transaction and the writer reads the head again."""
    keys = iter(keys_on("05", 30))
    writers = [AuditLog(storage.table(AUDIT)) for _ in range(3)]
    for _ in range(4):
        for writer in writers:
            writer.append("ingest.accepted", {}, key=next(keys))

    def append_many(audit: AuditLog, mine: list[str]) -> None:
        for key in mine:
            audit.append("ingest.accepted", {}, key=key)

    rest = list(keys)
    threads = [threading.Thread(target=append_many, args=(writer, rest[n::3])) for n, writer in enumerate(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = writers[0].verify()
    assert result.ok and result.entries == 30, result.problems
    assert writers[0].head("05")["seq"] == 30


def test_checkpoints_sign_every_chain_and_name_a_cut_one(storage, local_key, capsys):
    audit = AuditLog(storage.table(AUDIT))
    audit.append("admin.call", {})
    for key in keys_on("07", 5):
        audit.append("ingest.accepted", {}, key=key)
    signed = AuditCheckpoints(storage, local_key).write().checkpoint
    assert signed is not None and signed.count == 6 and set(signed.chains) == {"", "07"}
    assert signed.chains["07"].head == audit.head("07")["hash"]
    table = storage.table(AUDIT)
    for seq in (4, 5):  # entries cut from chain 07's end and its head moved back: the chain alone looks intact
        table.delete_entity(chain_partition("07"), f"{seq:012d}")
    head = dict(table.get_entity(chain_partition("07"), HEAD))
    head.update(seq=3, hash=lane_entity(storage, "07", 3)["hash"])
    table.update_entity(head, mode=UpdateMode.REPLACE)
    assert audit.verify().ok

    assert cli.verify_audit(storage, local_key) == 1
    out = capsys.readouterr().out
    assert "chain 07: entries 4 to 5 are missing" in out
    assert "chain 07: the head names entry 3 but checkpoint" in out
    with pytest.raises(AuditBrokenError, match="chain 07: the head names entry 3"):
        AuditCheckpoints(storage, local_key).write()


def test_a_deleted_chain_and_an_edited_lane_entry_are_named(storage, local_key):
    audit = AuditLog(storage.table(AUDIT))
    for key in keys_on("01", 3) + keys_on("02", 3):
        audit.append("ingest.accepted", {"key": key}, key=key)
    checkpoints = AuditCheckpoints(storage, local_key)
    checkpoints.write()
    table = storage.table(AUDIT)
    for row in list(table.query_entities(f"PartitionKey eq '{chain_partition('01')}'")):
        table.delete_entity(row["PartitionKey"], row["RowKey"])  # chain 01 gone: entries, head and key rows
    row = lane_entity(storage, "02", 2)
    row["details"] = json.dumps({"key": SECRET})
    row["hash"] = entry_hash(2, row["at"], row["action"], row["actor"], row["details"], row["prev_hash"])
    table.update_entity(row, mode=UpdateMode.REPLACE)
    problems = checkpoints.verify().problems
    assert any(p.startswith("chain 01: entries 1 to 3 are missing") for p in problems), problems
    assert any(p.startswith("chain 02: entry 3: does not link") for p in problems), problems
    assert any(p.startswith("chain 02: entry 2 is changed since checkpoint") for p in problems), problems
    assert not any(SECRET in p for p in problems)


def test_a_checkpoint_of_the_single_chain_format_still_anchors_the_main_chain(storage, local_key):
    """Checkpoints signed before the log had several chains (format 1: the main chain alone) stay valid."""
    audit = append(storage, 3)
    rows = audit.entry_rows()
    payload = {"kind": "fdp.audit.checkpoint", "format": 1, "alg": "ES256", "key": local_key.current_key_id(),
               "at": "2026-01-01T00:00:00.000000+00:00", "count": 3, "head": rows[-1]["hash"], "first": 1,
               "hashes": [row["hash"] for row in rows]}
    checkpoints = AuditCheckpoints(storage, local_key)
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).digest()
    signature = base64.urlsafe_b64encode(local_key.sign(payload["key"], digest)).rstrip(b"=").decode()
    checkpoints.store(f"{3:012d}-format1.json", json.dumps({"checkpoint": payload, "signature": signature}).encode())
    audit.append("ingest.accepted", {}, key="ingest:later")
    result = checkpoints.verify()
    assert result.ok and result.anchored == 3, result.problems
    assert result.notes == [f"chain {chain_for('ingest:later')}: 1 entry is not anchored yet (the next checkpoint "
                            "signs them)"]
    signed = checkpoints.write().checkpoint
    assert signed is not None and (signed.first, signed.count) == (4, 4)
    result = checkpoints.verify()
    assert result.ok and (result.checkpoints, result.anchored, result.notes) == (2, 4, []), result.problems
