"""Signed checkpoints: the audit chains anchored outside their table.

A checkpoint records, for every chain of the log (audit.py), how many entries it had at a moment, its head's
hash, and the hash of every entry since the previous checkpoint, and is signed (ES256: ECDSA P-256 over the
SHA-256 of its canonical JSON) with a key that can sign but never be read. In Azure that is a Key Vault key
(EC-HSM P-256, key operations sign and verify only, not exportable), used through azure-keyvault-keys: the app
sends the digest to the vault and gets the signature back; it holds Key Vault Crypto User on that one key,
nothing that exports it. Each checkpoint is a new blob in the `audit-checkpoints` container, uploaded with
overwrite=False; in Azure the container's time-based immutability policy also stops anyone, the app included,
from overwriting or deleting one during its retention.

What that adds to the chain's own checks (audit.check_chain), for every entry up to the last checkpoint:
- entries cut from the end of any chain, its head moved back, or a whole chain deleted: a checkpoint recorded
  more entries (named: "entries 4 to 5", prefixed "chain 07: " for a chain other than the main one);
- an entry edited and every later hash and the head recomputed: the checkpoint recorded each entry's hash, so
  the edited entry is named, and the entries after it are reported as relinked, not as edited;
- a forged or altered checkpoint: its signature does not verify with the platform's key, and it anchors nothing.
What it cannot show: a change to entries appended after the last checkpoint, made before the next one is signed
(the timer's schedule sets that window), and checkpoints that were never written (verify-audit says how many
entries are not anchored yet). Checkpoints hold entry numbers and hashes only, never an entry's content.

Locally there is no Key Vault and Azurite has no immutability policies: a PEM key file named by
FDP_LOCAL_AUDIT_KEY_FILE signs instead (the app refuses that setting in Azure, as it refuses a local root key),
and only overwrite=False stops a second write of the same checkpoint name.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import secrets
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from azure.core.exceptions import HttpResponseError

from shared.platform.audit import GENESIS, AuditLog, Verification, check_chain, in_chain, row_hash
from shared.platform.settings import ConfigurationError, Settings
from shared.platform.storage import AUDIT, AUDIT_CHECKPOINTS, Storage

ALGORITHM = "ES256"
KIND = "fdp.audit.checkpoint"
FORMAT = 2
"""2: every chain's count, head and new hashes under `chains`. 1 (the main chain alone) is still read."""
_HASH = re.compile(r"^[0-9a-f]{64}$")
_DOWNLOADS = 8
VERIFY_FAILED_EVENT = "fdp.audit.verify_failed"
"""The stable log event an alert rule watches: the chain or its checkpoints failed a check (counts only)."""
log = logging.getLogger("fdp.audit")


class AuditKey(Protocol):
    """Signs checkpoints, and checks that a checkpoint was signed by the platform's audit key."""

    def current_key_id(self) -> str:
        """The id of the key version the next signature is made with (recorded in, and signed with, the payload)."""
        ...

    def sign(self, key_id: str, digest: bytes) -> bytes: ...

    def check(self, key_id: str, digest: bytes, signature: bytes) -> str | None:
        """None when `signature` is the platform audit key's over `digest`; otherwise why not."""
        ...


class KeyVaultAuditKey:
    """The Key Vault key, through the real SDK: KeyClient finds its newest version (so a rotation needs no
    restart), CryptographyClient has the vault sign a digest, and verifies with the version's public key."""

    def __init__(self, vault_url: str, key_name: str, credential: Any, **client_options: Any) -> None:
        from azure.keyvault.keys import KeyClient

        self._vault_url = vault_url.rstrip("/")
        self._name = key_name
        self._credential = credential
        self._options = client_options
        self._keys = KeyClient(self._vault_url, credential, **client_options)
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def current_key_id(self) -> str:
        from azure.keyvault.keys.crypto import CryptographyClient

        key = self._keys.get_key(self._name)
        if not key.id:
            raise RuntimeError(f"Key Vault returned key {self._name} without its id")
        with self._lock:
            self._clients[key.id] = CryptographyClient(key, self._credential, **self._options)
        return key.id

    def sign(self, key_id: str, digest: bytes) -> bytes:
        from azure.keyvault.keys.crypto import SignatureAlgorithm

        return self._client(key_id).sign(SignatureAlgorithm.es256, digest).signature

    def check(self, key_id: str, digest: bytes, signature: bytes) -> str | None:
        from azure.keyvault.keys.crypto import SignatureAlgorithm

        prefix = f"{self._vault_url}/keys/{self._name}/".lower()
        if not key_id.lower().startswith(prefix) or "/" in key_id[len(prefix):] or len(key_id) == len(prefix):
            return "it names a key other than the platform's audit key"
        try:
            valid = self._client(key_id).verify(SignatureAlgorithm.es256, digest, signature).is_valid
        except HttpResponseError as error:
            return f"its key version could not be read from Key Vault (HTTP {error.status_code})"
        except ValueError:
            return "its signature is malformed"
        return None if valid else "its signature does not verify (forged, or altered after signing)"

    def _client(self, key_id: str) -> Any:
        from azure.keyvault.keys.crypto import CryptographyClient

        with self._lock:
            if key_id not in self._clients:
                self._clients[key_id] = CryptographyClient(key_id, self._credential, **self._options)
            return self._clients[key_id]

    def __repr__(self) -> str:
        return f"KeyVaultAuditKey({self._vault_url}/keys/{self._name})"


class LocalAuditKey:
    """Local development only: an EC P-256 private key from a PEM file. Its id is `local:` and a fingerprint of
    its public key."""

    def __init__(self, private_key: Any) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        if not isinstance(private_key, ec.EllipticCurvePrivateKey) or private_key.curve.name != "secp256r1":
            raise ConfigurationError("FDP_LOCAL_AUDIT_KEY_FILE must hold an EC P-256 private key")
        self._private = private_key
        public = private_key.public_key().public_bytes(serialization.Encoding.DER,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo)
        self._key_id = f"local:{hashlib.sha256(public).hexdigest()[:32]}"

    @classmethod
    def from_file(cls, path: str) -> LocalAuditKey:
        from cryptography.hazmat.primitives import serialization

        try:
            material = Path(path).read_bytes()
        except OSError:
            raise ConfigurationError("FDP_LOCAL_AUDIT_KEY_FILE names a file that cannot be read (create one: "
                                     "openssl ecparam -name prime256v1 -genkey -noout -out FILE)") from None
        try:
            key = serialization.load_pem_private_key(material, password=None)
        except (ValueError, TypeError):
            raise ConfigurationError("FDP_LOCAL_AUDIT_KEY_FILE is not an unencrypted PEM private key") from None
        return cls(key)

    def current_key_id(self) -> str:
        return self._key_id

    def sign(self, key_id: str, digest: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, utils

        if key_id != self._key_id:
            raise ValueError("asked to sign with a key other than the local audit key")
        r, s = utils.decode_dss_signature(self._private.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()))))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def check(self, key_id: str, digest: bytes, signature: bytes) -> str | None:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, utils

        if key_id != self._key_id:
            return "it names a key other than the platform's audit key"
        if len(signature) != 64:
            return "its signature is malformed"
        der = utils.encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        try:
            self._private.public_key().verify(der, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        except InvalidSignature:
            return "its signature does not verify (forged, or altered after signing)"
        return None

    def __repr__(self) -> str:  # the key must never reach a log through a repr
        return f"LocalAuditKey({self._key_id})"


def audit_key_from_settings(settings: Settings) -> AuditKey | None:
    """The Key Vault key wherever a vault is configured; a local key file in local development only; None when
    neither is set locally (checkpoints are then neither written nor checked)."""
    if settings.in_azure and settings.local_audit_key_file:
        raise ConfigurationError("FDP_LOCAL_AUDIT_KEY_FILE is set in Azure: remove it; audit checkpoints are "
                                 "signed with the Key Vault key")
    if settings.key_vault_url:
        from azure.identity import DefaultAzureCredential

        return KeyVaultAuditKey(settings.key_vault_url, settings.audit_key_name, DefaultAzureCredential())
    if settings.in_azure:
        raise ConfigurationError("FDP_KEY_VAULT_URL is not set: in Azure audit checkpoints must be signed with "
                                 "the Key Vault key")
    if settings.local_audit_key_file:
        return LocalAuditKey.from_file(settings.local_audit_key_file)
    return None


@dataclass(frozen=True)
class ChainMark:
    """What a checkpoint records of one chain."""

    count: int
    """The chain had this many entries (entry `count` was its head)."""
    head: str
    first: int
    """The first entry whose hash is recorded; `hashes` runs from it to entry `count` (none: nothing new)."""
    hashes: tuple[str, ...]


@dataclass(frozen=True)
class Checkpoint:
    name: str
    chains: dict[str, ChainMark]
    """By chain ("" is the main chain)."""
    at: str
    key_id: str

    @property
    def count(self) -> int:
        """Entries over every chain at the time (the number its name starts with)."""
        return sum(mark.count for mark in self.chains.values())

    @property
    def first(self) -> int:
        """Counting every chain's entries together: this checkpoint signs the hashes of entries first to count."""
        return sum(mark.first - 1 for mark in self.chains.values()) + 1


@dataclass(frozen=True)
class Written:
    checkpoint: Checkpoint | None
    """The new checkpoint, or None when nothing was appended since the last one."""
    problems: list[str]
    """What is wrong with the entries it signs. They are anchored as they are, which keeps the evidence."""


class AuditBrokenError(RuntimeError):
    """The chain lost entries a checkpoint must record: no checkpoint is signed over it."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class AuditCheckpoints:
    def __init__(self, storage: Storage, key: AuditKey | None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._log = AuditLog(storage.table(AUDIT))
        self._container = storage.platform_container(AUDIT_CHECKPOINTS)
        self._key = key
        self._clock = clock

    def write(self) -> Written:
        """Sign the chain's head, and the hash of every entry since the last valid checkpoint. A broken chain is
        logged as VERIFY_FAILED_EVENT, whether it stops the checkpoint or is signed as found."""
        try:
            written = self._write()
        except AuditBrokenError as error:
            _report_failure("checkpoint", len(error.problems))
            raise
        if written.problems:
            _report_failure("checkpoint", len(written.problems))
        return written

    def _write(self) -> Written:
        if self._key is None:
            raise ConfigurationError("no audit key is configured: set FDP_KEY_VAULT_URL (the key "
                                     "FDP_AUDIT_KEY_NAME), or FDP_LOCAL_AUDIT_KEY_FILE for local development")
        latest = self._latest_valid()
        before = latest.chains if latest else {}
        heads = self._log.heads()
        marks: dict[str, ChainMark] = {}
        broken: list[str] = []
        problems: list[str] = []
        for chain in sorted(set(heads) | set(before)):
            mark, found = self._mark(chain, heads.get(chain), before.get(chain), latest)
            if isinstance(mark, ChainMark):
                marks[chain] = mark
                problems += in_chain(chain, found)
            else:
                broken += in_chain(chain, found)
        if broken:
            raise AuditBrokenError(broken)
        if all(mark.first > mark.count for mark in marks.values()):
            return Written(None, [])
        key_id = self._key.current_key_id()
        at = self._clock()
        payload = {"kind": KIND, "format": FORMAT, "alg": ALGORITHM, "key": key_id,
                   "at": at.isoformat(timespec="microseconds"), "count": sum(m.count for m in marks.values()),
                   "chains": {chain: {"count": mark.count, "head": mark.head, "first": mark.first,
                                      "hashes": list(mark.hashes)} for chain, mark in marks.items()}}
        signature = self._key.sign(key_id, _digest(payload))
        name = f"{payload['count']:012d}-{at.strftime('%Y%m%dT%H%M%S%fZ')}-{secrets.token_hex(4)}.json"
        self.store(name, json.dumps({"checkpoint": payload, "signature": _b64url(signature)},
                                    sort_keys=True, separators=(",", ":")).encode())
        return Written(_checkpoint(name, payload), problems)

    def _mark(self, chain: str, head: Any, before: ChainMark | None,
              latest: Checkpoint | None) -> tuple[ChainMark | None, list[str]]:
        """One chain's mark for the next checkpoint and the problems signed as found; or None and why the chain
        must not be signed (entries cut from its end, or missing from the new range)."""
        after, prev_hash = (before.count, before.head) if before else (0, GENESIS)
        count = head["seq"] if head else 0
        if count < after:
            return None, [f"the head names entry {count} but checkpoint {_name(latest)} recorded {after} entries: "
                          "entries were cut from the end; no checkpoint is signed over that"]
        if count == after:
            return ChainMark(count, prev_hash, count + 1, ()), []
        rows = self._log.entry_rows(after=after, up_to=count, chain=chain)
        absent = sorted(set(range(after + 1, count + 1)) - {_seq(row) for row in rows})
        if absent:
            return None, [f"entries {_ranges(absent)} are missing from the table: no checkpoint is signed over them"]
        return (ChainMark(count, head["hash"], after + 1, tuple(row["hash"] for row in rows)),
                check_chain(rows, head, after, prev_hash))

    def store(self, name: str, body: bytes) -> None:
        """Write one checkpoint blob. A name that exists is refused (ResourceExistsError), never overwritten."""
        self._container.upload_blob(name, body, overwrite=False)

    def names(self) -> list[str]:
        return sorted(blob.name for blob in self._container.list_blobs())

    def load(self, names: Iterable[str] | None = None) -> list[tuple[str, Checkpoint | None, str | None]]:
        """Every checkpoint as (name, checkpoint, None) when its signature verifies, else (name, None, why)."""
        wanted = self.names() if names is None else list(names)
        with ThreadPoolExecutor(max_workers=_DOWNLOADS) as pool:
            bodies = list(pool.map(lambda name: self._container.download_blob(name).readall(), wanted))
        return [self._checked(name, body) for name, body in zip(wanted, bodies, strict=True)]

    def _latest_valid(self) -> Checkpoint | None:
        for name in reversed(self.names()):
            _, checkpoint, _ = self.load([name])[0]
            if checkpoint is not None:
                return checkpoint
        return None

    def _checked(self, name: str, body: bytes) -> tuple[str, Checkpoint | None, str | None]:
        if self._key is None:
            return name, None, "no audit key is configured to check its signature"
        try:
            document = json.loads(body)
            payload, signature = document["checkpoint"], _unb64url(document["signature"])
            checkpoint = _checkpoint(name, payload)
        except (ValueError, KeyError, TypeError):
            return name, None, "it is not a well-formed checkpoint"
        if not name.startswith(f"{checkpoint.count:012d}-"):
            return name, None, f"its name does not match the entry count it records ({checkpoint.count})"
        reason = self._key.check(checkpoint.key_id, _digest(payload), signature)
        return (name, checkpoint, None) if reason is None else (name, None, reason)

    def verify(self) -> Verification:
        """The chain's own checks, then every entry up to the last checkpoint against what checkpoints recorded.
        A failure is logged as VERIFY_FAILED_EVENT."""
        result = self._verify()
        if not result.ok:
            _report_failure("verify", len(result.problems))
        return result

    def _verify(self) -> Verification:
        rows, heads = self._log.chains()
        entries = sum(len(found) for found in rows.values())
        problems = [problem for chain, found in rows.items()
                    for problem in in_chain(chain, check_chain(found, heads.get(chain)))]
        loaded = self.load()
        if loaded and self._key is None:
            problems.append(f"{len(loaded)} checkpoints are stored but no audit key is configured to check their "
                            "signatures (set FDP_KEY_VAULT_URL, or FDP_LOCAL_AUDIT_KEY_FILE locally)")
            return Verification(False, entries, problems)
        valid = [checkpoint for _, checkpoint, _ in loaded if checkpoint is not None]
        problems += [f"checkpoint {name}: {reason}; it anchors nothing" for name, _, reason in loaded if reason]
        if not valid:
            alone = ["no signed checkpoint yet: the chain was checked on its own, which cannot show entries cut "
                     "from the end or an entry edited with every later hash recomputed"] if entries else []
            return Verification(not problems, entries, problems, notes=alone)
        recorded: dict[str, dict[int, tuple[str, str]]] = {}
        for checkpoint in valid:
            for chain, mark in checkpoint.chains.items():
                for seq, digest in zip(range(mark.first, mark.count + 1), mark.hashes, strict=True):
                    earlier = recorded.setdefault(chain, {}).setdefault(seq, (digest, checkpoint.name))
                    if earlier[0] != digest:
                        problems += in_chain(chain, [f"entry {seq}: checkpoints {earlier[1]} and {checkpoint.name} "
                                                     "record different hashes for it"])
        last = max(valid, key=lambda checkpoint: (checkpoint.count, checkpoint.name))
        notes: list[str] = []
        for chain in sorted(set(rows) | set(last.chains)):
            found, ours = _anchor(rows.get(chain, []), heads.get(chain), recorded.get(chain, {}), last, chain)
            problems += in_chain(chain, found)
            notes += in_chain(chain, ours)
        return Verification(not problems, entries, problems, len(valid), last.count, notes)


def _anchor(rows: list[Any], head: Any, recorded: dict[int, tuple[str, str]], last: Checkpoint,
            chain: str) -> tuple[list[str], list[str]]:
    """One chain against what the checkpoints recorded of it: its problems, and the note on entries not yet
    anchored."""
    mark = last.chains.get(chain)
    anchored = mark.count if mark else 0
    problems = []
    unrecorded = [seq for seq in range(1, anchored + 1) if seq not in recorded]
    if unrecorded:
        problems.append(f"no checkpoint records entries {_ranges(unrecorded)} (a checkpoint is missing)")
    if mark is not None:
        problems += _compare(rows, head, recorded, last, mark)
    beyond = sum(1 for row in rows if _seq(row) > anchored)
    if not beyond:
        return problems, []
    entries = "1 entry" if beyond == 1 else f"{beyond} entries"
    where = f" after entry {anchored}" if anchored else ""
    return problems, [f"{entries}{where} {'is' if beyond == 1 else 'are'} not anchored yet (the next checkpoint "
                      "signs them)"]


def _report_failure(stage: str, problems: int) -> None:
    """One value-free line for the alert rule: which check failed and how many problems it found."""
    log.error("%s stage=%s problems=%d", VERIFY_FAILED_EVENT, stage, problems)


def _compare(rows: list[Any], head: Any, recorded: dict[int, tuple[str, str]], last: Checkpoint,
             mark: ChainMark) -> list[str]:
    """A chain's entries up to the last checkpoint against the hashes checkpoints recorded: missing, changed,
    relinked."""
    by_seq = {_seq(row): row for row in rows}
    missing: list[int] = []
    changed: dict[str, list[int]] = {}
    relinked: list[int] = []
    for seq in range(1, mark.count + 1):
        if seq not in recorded:
            continue
        want, where = recorded[seq]
        row = by_seq.get(seq)
        if row is None:
            missing.append(seq)
        elif row.get("hash") != want:
            before = GENESIS if seq == 1 else recorded.get(seq - 1, ("", ""))[0]
            if _relinked(row, seq, before, want):
                relinked.append(seq)
            else:
                changed.setdefault(where, []).append(seq)
    problems = []
    if missing:
        problems.append(f"{_entries(missing)} missing: checkpoint {last.name} (signed {last.at}) recorded "
                        f"{mark.count} entries")
    head_seq = head["seq"] if head is not None else 0
    if head_seq < mark.count:
        problems.append(f"the head names entry {head_seq} but checkpoint {last.name} recorded {mark.count} entries: "
                        "entries were cut from the end and the head moved back")
    for where, seqs in changed.items():
        problems.append(f"{_entries(seqs)} changed since checkpoint {where} recorded "
                        f"{'it' if len(seqs) == 1 else 'them'} (the hash differs from the signed one)")
    if relinked:
        problems.append(f"{_entries(relinked)} rewritten to follow a changed entry: content as recorded, links and "
                        "hashes recomputed")
    return problems


def _relinked(row: Any, seq: int, before: str, want: str) -> bool:
    """The row's content is what the checkpoint signed, and only its link (and so its hash) was recomputed."""
    try:
        return bool(before) and row["seq"] == seq and row_hash(row, before) == want
    except (KeyError, TypeError):
        return False


def _checkpoint(name: str, payload: dict[str, Any]) -> Checkpoint:
    if payload.get("kind") != KIND or payload.get("alg") != ALGORITHM or payload.get("format") not in (1, FORMAT):
        raise ValueError("not a checkpoint of this format")
    if not isinstance(payload["key"], str) or not isinstance(payload["at"], str):
        raise ValueError("bad key or time")
    if payload["format"] == 1:  # the main chain alone, its mark at the top level
        chains = {"": _mark(payload, allow_empty=False)}
    else:
        given = payload["chains"]
        if not isinstance(given, dict) or not given or not all(isinstance(chain, str) for chain in given):
            raise ValueError("bad chains")
        chains = {chain: _mark(mark, allow_empty=True) for chain, mark in given.items()}
        if payload["count"] != sum(mark.count for mark in chains.values()):
            raise ValueError("bad count")
    return Checkpoint(name, chains, payload["at"], payload["key"])


def _mark(given: dict[str, Any], allow_empty: bool) -> ChainMark:
    count, first, hashes, head = given["count"], given["first"], given["hashes"], given["head"]
    if not (isinstance(count, int) and isinstance(first, int) and isinstance(hashes, list)):
        raise ValueError("bad range")
    if not 1 <= first <= count + (1 if allow_empty else 0):
        raise ValueError("bad range")
    if len(hashes) != count - first + 1 or not all(isinstance(h, str) and _HASH.match(h) for h in [*hashes, head]):
        raise ValueError("bad hashes")
    if hashes and head != hashes[-1]:
        raise ValueError("bad head")
    return ChainMark(count, head, first, tuple(hashes))


def _digest(payload: dict[str, Any]) -> bytes:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).digest()


def _seq(row: Any) -> int:
    key = row["RowKey"]
    return int(key) if key.isdigit() else -1


def _name(checkpoint: Checkpoint | None) -> str:
    return checkpoint.name if checkpoint else "(none)"


def _entries(seqs: list[int]) -> str:
    return f"entry {seqs[0]} is" if len(seqs) == 1 else f"entries {_ranges(seqs)} are"


def _ranges(seqs: list[int]) -> str:
    """[3, 4, 5, 9] -> "3 to 5, 9"."""
    runs: list[list[int]] = []
    for seq in sorted(seqs):
        if runs and seq == runs[-1][1] + 1:
            runs[-1][1] = seq
        else:
            runs.append([seq, seq])
    return ", ".join(str(start) if start == end else f"{start} to {end}" for start, end in runs)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
