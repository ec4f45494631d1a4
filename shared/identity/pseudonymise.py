"""Pseudonymisation exactly as the brief specifies.

    K_domain  = HMAC-SHA256(root, "fdp:domain:" + domain)
    pseudonym = first 16 bytes, lowercase hex, of HMAC-SHA256(K_domain, id_type + ":" + normalised_value)

The platform's own store uses domain `subject`; each research recipient gets `extract:<recipient>`, so their
pseudonyms cannot be joined to ours or to another recipient's. Check digits come from python-stdnum.

A whole column's pseudonyms are computed in one pass (`Pseudonymiser.pseudonyms`): HMAC composed exactly as RFC 2104
defines it, H((K ^ opad) || H((K ^ ipad) || m)), from the SHA-256 of Apache DataFusion, which hashes an Arrow column
in Rust with no Python call per value. No hashing is written here; tests hold it equal to `hmac.new`.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import re
import uuid
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datafusion import Expr, SessionConfig, SessionContext, col, lit
from datafusion import functions as sql
from stdnum.gb import nhs, upn

SUBJECT_DOMAIN = "subject"
BASE_TYPES = ("nhs_number", "upn", "partner_ref", "partner_pseudonym", "nhs_number_token")
PARTNER_SCOPED = ("partner_ref", "partner_pseudonym")
MAX_REFERENCE_LENGTH = 64
PSEUDONYM_BYTES = 16
FEW_MESSAGES = 1_000
"""Below this many values a column is hashed by hashlib one value at a time (about a microsecond each), above it by
DataFusion, whose fixed cost a small upload would otherwise pay for every column of keys."""

_NHS_SEPARATORS = re.compile(r"[\s-]")
_TOKEN = re.compile(r"^[0-9a-f]{32}$")
_PRINTABLE_REFERENCE = re.compile(r"^[\x21-\x7e\u00a0-\uffff](?:[\x20-\x7e\u00a0-\uffff]*[\x21-\x7e\u00a0-\uffff])?$")


class InvalidIdentifier(ValueError):
    """An identifier failed its rule. Carries the rule's name and a message; never the value."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


def scoped_type(base_type: str, partner: str) -> str:
    """The id_type that goes into the HMAC: partner references are scoped to the partner that issued them."""
    return f"{base_type}:{partner}" if base_type in PARTNER_SCOPED else base_type


def normalise(base_type: str, value: str) -> str:
    """Normalise an identifier of one of the brief's types, or raise InvalidIdentifier."""
    if base_type == "nhs_number":
        return _normalise_nhs_number(value)
    if base_type == "upn":
        return _normalise_upn(value)
    if base_type in PARTNER_SCOPED:
        return _normalise_reference(base_type, value)
    if base_type == "nhs_number_token":
        return _normalise_token(value)
    raise ValueError(f"unknown identifier type {base_type!r}")


def _normalise_nhs_number(value: str) -> str:
    digits = value if value.isdigit() else _NHS_SEPARATORS.sub("", value)
    if len(digits) != 10 or not digits.isdigit():
        raise InvalidIdentifier("nhs_number.format", "NHS number must be 10 digits (spaces and hyphens allowed)")
    if nhs.checksum(digits) != 0:  # python-stdnum's modulus 11 (its is_valid would clean the digits again)
        raise InvalidIdentifier("nhs_number.check_digit", "NHS number check digit (modulus 11) does not hold")
    return digits


def _normalise_upn(value: str) -> str:
    compact = "".join(value.split()).upper()
    if len(compact) != 13:
        raise InvalidIdentifier("upn.format", "UPN must be 13 characters")
    try:
        upn.validate(compact)
    except upn.InvalidChecksum:
        raise InvalidIdentifier("upn.check_letter", "UPN check letter does not hold") from None
    except upn.ValidationError:
        raise InvalidIdentifier(
            "upn.format", "UPN must be a check letter, a known LA number, 8 digits and a digit or letter"
        ) from None
    return compact


def _normalise_reference(base_type: str, value: str) -> str:
    trimmed = value.strip()
    if not trimmed:
        raise InvalidIdentifier(f"{base_type}.empty", "reference is blank")
    if len(trimmed) > MAX_REFERENCE_LENGTH or not _PRINTABLE_REFERENCE.match(trimmed):
        raise InvalidIdentifier(
            f"{base_type}.format", f"reference must be printable text of at most {MAX_REFERENCE_LENGTH} characters"
        )
    return trimmed


def _normalise_token(value: str) -> str:
    token = value.strip().lower()
    if not _TOKEN.match(token):
        raise InvalidIdentifier("nhs_number_token.format",
                                "NHS number token must be 32 hexadecimal characters, as the source tool writes it")
    return token


def domain_key(root_key: bytes, domain: str) -> bytes:
    return hmac.new(root_key, f"fdp:domain:{domain}".encode(), hashlib.sha256).digest()


SOURCE_DOMAIN = "source"


def source_key(root_key: bytes) -> bytes:
    """The programme source key (`source.py`): one-way from the root key, so holding it reveals nothing of it."""
    return domain_key(root_key, SOURCE_DOMAIN)


class Pseudonymiser:
    """Turns normalised identifiers into pseudonyms under one domain key."""

    def __init__(self, root_key: bytes, domain: str = SUBJECT_DOMAIN) -> None:
        if len(root_key) < 32:
            raise ValueError("the root key must be at least 32 bytes")
        self._use_key(domain_key(root_key, domain), domain)

    @classmethod
    def from_domain_key(cls, key: bytes, domain: str) -> Pseudonymiser:
        """Pseudonyms under a domain key held on its own (a trust holds only the programme source key)."""
        pseudonymiser = cls.__new__(cls)
        pseudonymiser._use_key(key, domain)
        return pseudonymiser

    def _use_key(self, key: bytes, domain: str) -> None:
        self.domain = domain
        # HMAC's key schedule is done once; each pseudonym then costs two SHA-256 compressions on a copy.
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)
        # The padded keys of RFC 2104, for the column path: HMAC = H((K ^ opad) || H((K ^ ipad) || m)).
        block = hashlib.sha256().block_size
        padded = (hashlib.sha256(key).digest() if len(key) > block else key).ljust(block, b"\0")
        self._ipad = bytes(b ^ 0x36 for b in padded)
        self._opad = bytes(b ^ 0x5C for b in padded)

    def pseudonym(self, id_type: str, normalised_value: str) -> str:
        return self._mac(f"{id_type}:{normalised_value}".encode())

    def _mac(self, message: bytes) -> str:
        mac = self._keyed.copy()
        mac.update(message)
        return mac.digest()[:PSEUDONYM_BYTES].hex()

    def pseudonyms(self, messages: pa.Array) -> pa.StringArray:
        """The pseudonyms of many `id_type:normalised_value` messages (binary or string, no nulls), in order: the
        same as `pseudonym` gives one at a time, at a fraction of the cost per value."""
        if messages.null_count:
            raise ValueError("messages must not be null")
        count = len(messages)
        if count < FEW_MESSAGES:  # a DataFusion query costs about a millisecond however few values it hashes
            return pa.array([self._mac(message) for message in messages.cast(pa.binary()).to_pylist()], pa.string())
        inner = sql.sha256(sql.concat(lit(pa.scalar(self._ipad, pa.binary())), col("m")))
        outer = sql.sha256(sql.concat(lit(pa.scalar(self._opad, pa.binary())), inner))
        macs = _select(pa.table({"m": messages.cast(pa.binary())}), outer.alias("mac"))
        truncated = _fixed_width_bytes(macs, hashlib.sha256().digest_size)[:, :PSEUDONYM_BYTES]
        hexed = binascii.hexlify(truncated.tobytes())
        offsets = np.arange(0, 2 * PSEUDONYM_BYTES * (count + 1), 2 * PSEUDONYM_BYTES, dtype=np.int32)
        return pa.StringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(hexed))


    def pseudonyms_of(self, id_type: str, values: pa.Array, *, repeating: bool = True) -> pa.StringArray:
        """`pseudonym(id_type, value)` for a column of values, nulls kept null: each distinct value hashed once
        where values repeat, every value straight through where they seldom do."""
        if repeating:
            encoded = values.dictionary_encode()
            return self.pseudonyms_of(id_type, encoded.dictionary, repeating=False).take(encoded.indices)
        messages = pc.binary_join_element_wise(pa.scalar(f"{id_type}:"), values.drop_null(), "")
        hashed = self.pseudonyms(messages)
        if not values.null_count:
            return hashed
        present = np.asarray(pc.is_valid(values), bool)
        return hashed.take(pa.array(np.cumsum(present) - 1, mask=~present))


@cache
def _engine() -> SessionContext:
    """One DataFusion session per process, on one partition: a batch is hashed where the ingest runs."""
    return SessionContext(SessionConfig().with_target_partitions(1))


def _select(table: pa.Table, expression: Expr) -> pa.Array:
    """One expression over an Arrow table, by DataFusion; the table is registered only for the call."""
    engine, name = _engine(), f"m{uuid.uuid4().hex}"
    try:
        result = engine.from_arrow(table, name=name).select(expression).to_arrow_table()
    finally:
        engine.deregister_table(name)
    return result.column(0).combine_chunks()


def _fixed_width_bytes(values: pa.Array, width: int) -> np.ndarray:
    """A binary array whose values all have `width` bytes, as a (rows, width) view of its data."""
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32)[values.offset:values.offset + len(values) + 1]
    if not np.all(np.diff(offsets) == width):
        raise ValueError(f"expected {width}-byte values")
    data = np.frombuffer(values.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]]
    return data.reshape(len(values), width)
