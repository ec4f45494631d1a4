"""People's rights, end to end: from a request to the data, within the legal deadline.

A request names identifiers (or a name, date of birth and postcode); they are pseudonymised or turned into match
keys exactly as at ingest, and the person index resolves them to exactly one person and that person's records
(curated file and row), so the work grows with the person's data, not with the store, and a sibling who shares a
family reference is never touched. Access builds an Art 15 pack; erasure and withdrawal of consent rewrite only
the files that hold the person's rows (each replaced atomically) and put the person on the suppression register,
so later uploads of their rows are dropped; restriction keeps the data but excludes it from reports and extracts;
an objection restricts until it is decided, and an upheld objection erases; rectification corrects attribute
values, keeping the old value only as a keyed hash in the audit trail. Every step is audited without identities.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

from shared.identity.index import PersonIndex
from shared.identity.keys import KeySource
from shared.identity.matchkeys import MatchKeys, identity_from
from shared.identity.pseudonymise import (
    BASE_TYPES,
    PARTNER_SCOPED,
    InvalidIdentifier,
    Pseudonymiser,
    domain_key,
    normalise,
    scoped_type,
)
from shared.identity.register import RESTRICTED, SuppressionRegister
from shared.identity.source import TOKEN_TYPE, SourceTokens
from shared.ingest import curated
from shared.platform.audit import AuditLog
from shared.platform.auth import Problem
from shared.platform.paging import PageRequest, page_body, sorted_page
from shared.platform.storage import AUDIT, CURATED, EXPORTS, REGISTER, REQUESTS, RIGHTS_QUEUE, Storage
from shared.policy.contracts import parse_attribute, parse_date
from shared.policy.generalise import InvalidValue, full_postcode
from shared.policy.loader import Dataset, Policy
from shared.rights import access
from shared.rights.requests import (
    AWAITING_DECISION,
    COMPLETED,
    IN_PROGRESS,
    OPEN,
    TYPES,
    RequestRegister,
    RightsRequest,
)

log = logging.getLogger("fdp.rights")

ERASES = {
    "erasure": ("consent", "legitimate_interest", "public_task"),
    "withdraw-consent": ("consent",),
    "objection": ("legitimate_interest", "public_task"),
}
EXCEPTION_BASES = ("legal_obligation",)
"""Erasure of data held to comply with a legal obligation is an exception the DPO decides."""
LABELS = {"nhs_number": "the NHS number given", "upn": "the unique pupil number given",
          "partner_ref": "the reference given", "partner_pseudonym": "the partner's pseudonym given",
          "nhs_number_token": "the NHS number token given", "name": "the name and date of birth given",
          "postcode": "the postcode given"}
NAME_KEYS = ("name_dob",)
"""Exact name and date of birth: what a request made without an identifier is resolved by first."""
LOOSE_NAME_KEYS = ("forms_dob", "name_swapped_dob")
"""Tried where the exact key finds nobody: a nickname, or day and month swapped."""



class AmbiguousPerson(Exception):
    """The name, date of birth and postcode given fit more than one person: an identifier is needed."""
MAX_CONTEXT = 2000
PACK_DAYS = 30
"""An access pack is destroyed by the retention run this long after it was made (its link lasts a day)."""


@dataclass
class Person:
    keys: set[str]
    """Person keys from the index (one, unless a request's identifiers name two people the index keeps apart)."""
    entries: list[dict[str, Any]] = field(default_factory=list)
    """Records: one per stored row (record, ingest_id, row, partner, dataset, file, person_key)."""
    pseudonyms: set[str] = field(default_factory=set)
    """The person's identifier pseudonyms, as the access pack names them."""
    strong_keys: set[str] = field(default_factory=set)
    """Their strong match keys: with the pseudonyms, what the suppression register holds after an erasure."""

    @property
    def suppression_keys(self) -> set[str]:
        return self.pseudonyms | self.strong_keys

    def rows_in(self, file: str) -> list[int]:
        return sorted(entry["row"] for entry in self.entries if entry["file"] == file)


class RightsService:
    def __init__(self, policy: Policy, storage: Storage, keys: KeySource,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.policy, self.storage, self.keys, self.clock = policy, storage, keys, clock
        self.requests = RequestRegister(storage.table(REQUESTS))
        self.index = PersonIndex(storage, keys)
        self.register = SuppressionRegister(storage.table(REGISTER))
        self.audit = AuditLog(storage.table(AUDIT))

    # Requests ---------------------------------------------------------------------------------------------

    def submit(self, body: dict[str, Any], caller: str) -> RightsRequest:
        kind = body.get("type")
        if kind not in TYPES:
            raise _bad("type", "request.type", f"type must be one of: {', '.join(TYPES)}")
        context = body.get("context") or ""
        if not isinstance(context, str) or len(context) > MAX_CONTEXT:
            raise _bad("context", "context.format", f"context must be text of at most {MAX_CONTEXT} characters")
        request = RightsRequest(
            id=self.requests.new_id(), type=kind, status=IN_PROGRESS, received=self.clock().date(),
            created_by=caller, given=self._given(body.get("identifiers")), context=context,
            corrections=self._corrections(body.get("corrections")) if kind == "rectification" else [])
        request.note(self.clock(), caller, "received")
        if kind == "objection":
            self._restrict(self._person(request), request.id)
            request.status = AWAITING_DECISION
            request.note(self.clock(), "platform", "restricted until the objection is decided")
        self.requests.save(request)
        self._audit("rights.request.received", request, caller)
        if request.status == IN_PROGRESS:
            self.storage.queue(RIGHTS_QUEUE).send_message(json.dumps({"request_id": request.id}))
        return request

    def extend(self, request_id: str, reason: object, caller: str) -> RightsRequest:
        if not isinstance(reason, str) or not reason.strip():
            raise _bad("reason", "extension.reason", "an extension needs a reason")
        request = self.requests.get(request_id)
        if request.status not in OPEN:
            raise Problem(409, "Conflict", "The request is already completed.")
        if request.extended:
            raise Problem(409, "Conflict", "The request has already been extended by the two months allowed.")
        request.extended, request.extension_reason = True, reason.strip()
        request.note(self.clock(), caller, "extended by two months")
        self.requests.save(request)
        self._audit("rights.request.extended", request, caller)
        return request

    def decide(self, request_id: str, outcome: object, reasons: object, caller: str) -> RightsRequest:
        if outcome not in ("upheld", "refused"):
            raise _bad("outcome", "decision.outcome", "outcome must be upheld or refused")
        if not isinstance(reasons, str) or not reasons.strip():
            raise _bad("reasons", "decision.reasons", "a decision needs its reasons")
        request = self.requests.get(request_id)
        if request.status != AWAITING_DECISION:
            raise Problem(409, "Conflict", "The request is not awaiting a decision.")
        request.outcome, request.reasons = outcome, reasons.strip()
        person = self._person(request)
        if outcome == "upheld":
            bases = ERASES["objection"] if request.type == "objection" else EXCEPTION_BASES
            request.result["erased"] = self._erase(person, bases, request)
        if request.type == "objection":
            self._lift_restriction(person)
        request.status = COMPLETED
        request.note(self.clock(), caller, f"decided: {outcome}")
        self.requests.save(request)
        self._audit("rights.request.decided", request, caller, outcome=outcome)
        return request

    def listed(self, status: str, page: PageRequest) -> dict[str, Any]:
        """One page of requests by status (`open`: not yet completed; `completed`; `all`), the soonest due first,
        so overdue requests lead."""
        statuses = {"open": OPEN, "completed": (COMPLETED,), "all": (*OPEN, COMPLETED)}.get(status)
        if statuses is None:
            raise _bad("status", "requests.status", "status must be open, completed or all")
        today = self.clock().date()
        found = sorted(self.requests.with_status(statuses), key=_due_order)
        shown, following = sorted_page(found, _due_order, page)
        return page_body([request.public(today) for request in shown], following)

    def view(self, request_id: str) -> dict[str, Any]:
        return self.show(self.requests.get(request_id))

    def show(self, request: RightsRequest) -> dict[str, Any]:
        """What the API shows of a request today (no pseudonyms)."""
        return request.public(self.clock().date())

    # The work (queue-triggered: it may take a while for a person with a lot of data) ---------------------

    def work(self, request_id: str) -> None:
        try:
            request = self.requests.get(request_id)
        except Problem:
            log.warning("rights work: no request with the id queued; the message is dropped")
            return
        if request.status != IN_PROGRESS:
            return  # a redelivered message: the work is done
        try:
            person = self._person(request)
        except AmbiguousPerson:
            self._needs_identifier(request)
            return
        if request.type == "access":
            request.result = self._access(person, request)
        elif request.type == "restriction":
            self._restrict(person, request.id)
            request.result = {"restricted": True}
        elif request.type == "rectification":
            request.result = {"rectified": self._rectify(person, request)}
        else:
            request.result = {"erased": self._erase(person, ERASES[request.type], request)}
            held = self._held_under(person, EXCEPTION_BASES) if request.type == "erasure" else {}
            if held:
                request.result["needs_decision"] = {"reason": "held to comply with a legal obligation",
                                                    "datasets": sorted(held)}
                request.status = AWAITING_DECISION
        if request.status == IN_PROGRESS:
            request.status = COMPLETED
        request.note(self.clock(), "platform", f"work done: {request.status}")
        self.requests.save(request)
        self._audit(f"rights.{request.type}.done", request, "platform", result=_countable(request.result))

    # Finding the person -----------------------------------------------------------------------------------

    def _given(self, identifiers: object) -> list[dict[str, str]]:
        """Under the root key and every earlier version still read after a rotation: data stored before the
        rotation is found by a request made after it."""
        given: list[dict[str, str]] = []
        for key in (self.keys.root_key(), *self.keys.previous_keys()):
            given += given_identifiers(identifiers, self.policy, key.material)
        return given

    def _corrections(self, corrections: object) -> list[dict[str, Any]]:
        if not isinstance(corrections, list) or not corrections:
            raise _bad("corrections", "corrections.required", "a rectification lists its corrections")
        checked = []
        for index, item in enumerate(corrections):
            where = f"corrections[{index}]"
            dataset = self._dataset_named(item.get("dataset") if isinstance(item, dict) else None)
            if dataset is None:
                raise _bad(f"{where}.dataset", "correction.dataset", "name a dataset of the policy")
            column = dataset.contract.column(str(item.get("column")))
            if column is None or column.role != "attribute":
                raise _bad(f"{where}.column", "correction.column", "only attribute columns can be corrected")
            try:
                parse_attribute(column, str(item.get("value", "")).strip())
            except InvalidValue as invalid:
                raise _bad(f"{where}.value", invalid.rule, invalid.message) from None
            checked.append({"dataset": dataset.name, "column": column.name, "value": str(item["value"]).strip()})
        return checked

    def _dataset_named(self, name: object) -> Dataset | None:
        return next((d for p in self.policy.partners.values() for d in p.datasets.values() if d.name == name), None)

    def person_keys(self, identifiers: object) -> set[str]:
        """The person keys the index resolves these identifiers to (a split names its person this way)."""
        return self._resolve(self._given(identifiers)).keys

    def hold_keys(self, identifiers: object) -> set[str]:
        """What a legal hold on a person holds them by: their own identifiers and strong keys, as resolved now."""
        return self._resolve(self._given(identifiers)).suppression_keys

    def _person(self, request: RightsRequest) -> Person:
        return self._resolve(request.given)

    def _resolve(self, given: list[dict[str, str]]) -> Person:
        """Exactly the person the index resolves, with every record of theirs."""
        self.index.ensure_linked()
        by_kind: dict[str, set[str]] = {}
        for item in given:
            by_kind.setdefault(item.get("kind", "identifier"), set()).add(item["pseudonym"])
        keys = self.index.resolve(by_kind.get("identifier", set()))
        if not keys and "name_dob" in by_kind:
            keys = self._by_name(by_kind)
        records = self.index.records_of(keys)
        return Person(keys, records, *self.index.own_keys(records))

    def _needs_identifier(self, request: RightsRequest) -> None:
        request.status = AWAITING_DECISION
        request.result = {"needs_decision": {"reason": "the name, date of birth and postcode given fit more than one "
                                                       "person: ask the requester for an identifier"}}
        request.note(self.clock(), "platform", "more than one person fits: an identifier is needed")
        self.requests.save(request)
        self._audit("rights.request.ambiguous", request, "platform")

    def _by_name(self, by_kind: dict[str, set[str]]) -> set[str]:
        """A request made with name, date of birth and postcode: exact first, then loose; the postcode decides
        between two people; still two is a problem for the officer, never a guess."""
        keys = self.index.resolve(by_kind["name_dob"]) or self.index.resolve(by_kind.get("loose_name_dob", set()))
        if len(keys) > 1 and by_kind.get("postcode"):
            keys = {key for key in keys if self.index.postcode_tokens_of({key}) & by_kind["postcode"]}
        if len(keys) > 1:
            raise AmbiguousPerson
        return keys

    def _basis(self, entry: dict[str, Any]) -> str | None:
        partner = self.policy.partners.get(entry["partner"])
        dataset = partner.datasets.get(entry["dataset"]) if partner else None
        return dataset.basis if dataset else None

    def _held_under(self, person: Person, bases: tuple[str, ...]) -> dict[str, set[str]]:
        files: dict[str, set[str]] = {}
        for entry in person.entries:
            if self._basis(entry) in bases:
                files.setdefault(entry["dataset"], set()).add(entry["file"])
        return files

    def _rows(self, file: str, person: Person) -> tuple[pa.Table, pa.ChunkedArray, str] | None:
        found = self._rows_and_metadata(file, person)
        return found[:3] if found is not None else None

    def _rows_and_metadata(self, file: str, person: Person) -> tuple[pa.Table, pa.ChunkedArray, str,
                                                                     dict[str, str]] | None:
        """A curated file's rows, the person's rows in it, its ETag and its metadata (the row count and retention
        rule the purge plans by: every rewrite carries them over)."""
        found = curated.download(self.storage, file)
        if found is None:
            return None  # purged since it was indexed
        table, properties = found
        return (table, curated.row_mask(table, person.rows_in(file)), properties.etag,
                dict(properties.metadata or {}))

    # Access -----------------------------------------------------------------------------------------------

    def _access(self, person: Person, request: RightsRequest) -> dict[str, Any]:
        labels = {item["pseudonym"]: item["label"] for item in request.given}
        held: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for entry in _unique_files(person.entries):
            found = self._rows(entry["file"], person)
            if found is None:
                continue
            table, mask, _ = found
            rows = access.readable_rows(table.filter(mask).to_pylist(), labels, person.pseudonyms)
            held.setdefault((entry["partner"], entry["dataset"]), []).extend(rows)
        pack = access.build_pack(self.policy, held, request.labels)
        name = f"access/{request.id}.zip"
        expires = (self.clock() + timedelta(days=PACK_DAYS)).isoformat(timespec="seconds")
        self.storage.platform_blob(EXPORTS, name).upload_blob(pack, overwrite=True, metadata={"expires": expires})
        return {"pack": f"{EXPORTS}/{name}", "link": self.storage.platform_read_link(EXPORTS, name),
                "link_expires_in_hours": 24, "rows": sum(len(rows) for rows in held.values()),
                "datasets": sorted(dataset for _, dataset in held)}

    # Erasure and withdrawal -------------------------------------------------------------------------------

    def _erase(self, person: Person, bases: tuple[str, ...], request: RightsRequest) -> dict[str, int]:
        """Suppress first (so no upload brings them back meanwhile), then rewrite each file, then the index.
        The register gets the person's own identifiers and strong match keys, never a family reference."""
        for pseudonym in sorted(person.suppression_keys):
            for basis in bases:
                self.register.add(pseudonym, basis, f"{request.type} {request.id}")
        removed: dict[str, int] = {}
        targets = [e for e in person.entries if self._basis(e) in bases]
        for entry in _unique_files(targets):
            removed[entry["dataset"]] = removed.get(entry["dataset"], 0) + self._remove_rows(entry["file"], person)
        self.index.forget_records({entry["record"] for entry in targets})
        return removed

    def _remove_rows(self, file: str, person: Person) -> int:
        """Replace the file by itself without the person's rows, only if nobody changed it meanwhile, keeping its
        metadata (retention plans by it) with the new row count."""
        for _ in range(5):
            found = self._rows_and_metadata(file, person)
            if found is None:
                return 0
            table, mask, etag, metadata = found
            count = int(pc.sum(mask).as_py() or 0)
            blob = self.storage.platform_blob(CURATED, file)
            try:
                if count == len(table):
                    blob.delete_blob(etag=etag, match_condition=MatchConditions.IfNotModified)
                elif count:
                    kept = table.filter(pc.invert(mask))
                    blob.upload_blob(curated.to_bytes(kept), overwrite=True, etag=etag,
                                     match_condition=MatchConditions.IfNotModified,
                                     metadata={**metadata, "rows": str(len(kept))})
                return count
            except ResourceModifiedError:
                continue
        raise RuntimeError("a curated file kept changing while it was being rewritten")

    # Restriction ------------------------------------------------------------------------------------------

    def _restrict(self, person: Person, request_id: str) -> None:
        for pseudonym in sorted(person.pseudonyms):
            self.register.add(pseudonym, RESTRICTED, f"restriction {request_id}")

    def _lift_restriction(self, person: Person) -> None:
        for pseudonym in sorted(person.pseudonyms):
            with contextlib.suppress(ResourceNotFoundError):
                self.register.remove(pseudonym, RESTRICTED)

    # Rectification ----------------------------------------------------------------------------------------

    def _rectify(self, person: Person, request: RightsRequest) -> dict[str, int]:
        changed: dict[str, int] = {}
        hasher = hmac.new(domain_key(self.keys.root_key().material, "audit"), digestmod=hashlib.sha256)
        for correction in request.corrections:
            entries = [e for e in person.entries if e["dataset"] == correction["dataset"]]
            for entry in _unique_files(entries):
                changed[correction["dataset"]] = changed.get(correction["dataset"], 0) + self._correct(
                    entry["file"], person, correction, request, hasher)
        return changed

    def _correct(self, file: str, person: Person, correction: dict[str, Any], request: RightsRequest,
                 hasher: Any) -> int:
        column = correction["column"]
        dataset = self._dataset_named(correction["dataset"])
        assert dataset is not None
        spec = dataset.contract.column(column)
        assert spec is not None
        new_value = parse_attribute(spec, correction["value"])
        for _ in range(5):
            found = self._rows_and_metadata(file, person)
            if found is None:
                return 0
            table, mask, etag, metadata = found
            index = table.schema.get_field_index(column)
            old_values = table.column(column).filter(mask).to_pylist()
            replacement = pa.array([new_value] * len(table), type=table.schema.field(column).type)
            updated = table.set_column(index, table.schema.field(column), pc.if_else(mask, replacement,
                                                                                      table.column(column)))
            if column == dataset.retention.column and metadata.get("retention"):
                # The corrected date is the rows' retention anchor: the next retention run re-plans the file (it
                # differs from the current rule's fingerprint), moving the rows to their new purge months.
                metadata["retention"] = f"{metadata['retention']};rectified"
            try:
                self.storage.platform_blob(CURATED, file).upload_blob(
                    curated.to_bytes(updated), overwrite=True, etag=etag,
                    match_condition=MatchConditions.IfNotModified,
                    metadata={**metadata, "rows": str(len(updated))})
                break
            except ResourceModifiedError:
                continue
        else:
            raise RuntimeError("a curated file kept changing while it was being rectified")
        for old in sorted({str(v) for v in old_values}):
            digest = hasher.copy()
            digest.update(old.encode())
            self.audit.append("rights.rectification.value", {"request": request.id, "dataset": dataset.name,
                                                             "column": column, "old_value_hmac": digest.hexdigest()})
        return len(old_values)

    # Audit ------------------------------------------------------------------------------------------------

    def _audit(self, action: str, request: RightsRequest, actor: str, **details: Any) -> None:
        self.audit.append(action, {"request": request.id, "type": request.type, "status": request.status,
                                   "due": request.due.isoformat(), "identifiers": len(request.labels), **details},
                          actor=actor)


def given_identifiers(identifiers: object, policy: Policy, root_key: bytes) -> list[dict[str, str]]:
    """Pseudonymise the identifiers a request names under one root key: [{pseudonym, label, kind}]; a name, date
    of birth and postcode become match keys, never stored as typed; an NHS number also names the rows a trust sent
    as its source token. A malformed one is a 400 naming the field and the rule, never the value."""
    pseudonymiser, match_keys = Pseudonymiser(root_key), MatchKeys(root_key)
    if not isinstance(identifiers, list) or not identifiers:
        raise _bad("identifiers", "identifiers.required", "give at least one identifier")
    given = []
    for index, item in enumerate(identifiers):
        where = f"identifiers[{index}]"
        if isinstance(item, dict) and item.get("type") == "name":
            given += _name_keys(item, where, match_keys)
            continue
        if not isinstance(item, dict) or item.get("type") not in BASE_TYPES:
            raise _bad(f"{where}.type", "identifier.type", f"type must be one of: {', '.join((*BASE_TYPES, 'name'))}")
        base, partner = item["type"], item.get("partner")
        if base in PARTNER_SCOPED and partner not in policy.partners:
            raise _bad(f"{where}.partner", "identifier.partner", "name the partner in the policy that issued it")
        try:
            value = normalise(base, str(item.get("value", "")))
        except InvalidIdentifier as invalid:
            raise _bad(f"{where}.value", invalid.rule, invalid.message) from None
        label = LABELS[base] + (f" ({partner})" if base in PARTNER_SCOPED else "")
        pseudonym = pseudonymiser.pseudonym(scoped_type(base, partner or ""), value)
        given.append({"pseudonym": pseudonym, "label": label, "kind": "identifier"})
        if base == "nhs_number":
            token = SourceTokens.from_root_key(root_key).token(value)
            given.append({"pseudonym": pseudonymiser.pseudonym(TOKEN_TYPE, token), "label": label,
                          "kind": "identifier"})
    return given


def _name_keys(item: dict[str, Any], where: str, match_keys: MatchKeys) -> list[dict[str, str]]:
    """{type: name, name, date_of_birth, postcode}: the keys the index matches on, under their kinds."""
    name = item.get("name")
    if not isinstance(name, str) or len(name.split()) < 2 or len(name) > 200:
        raise _bad(f"{where}.name", "name.format", "give the first name and surname, as the services knew them")
    try:
        born = parse_date(str(item.get("date_of_birth", "")))
        postcode = full_postcode(str(item["postcode"])) if item.get("postcode") else None
    except InvalidValue as invalid:
        field_name = "postcode" if invalid.rule.startswith("postcode") else "date_of_birth"
        raise _bad(f"{where}.{field_name}", invalid.rule, invalid.message) from None
    identity = identity_from({"full_name": name, "date_of_birth": born, "postcode": postcode})
    keys = match_keys.keys(identity)
    given = [{"pseudonym": key, "label": LABELS["name"], "kind": kind}
             for kind, names in (("name_dob", NAME_KEYS), ("loose_name_dob", LOOSE_NAME_KEYS))
             for key_name in names for key in keys.get(key_name, [])]
    postcode_token = match_keys.tokens(identity)["postcode"]
    if postcode_token:
        given.append({"pseudonym": str(postcode_token), "label": LABELS["postcode"], "kind": "postcode"})
    return given


def _unique_files(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for entry in entries:
        seen.setdefault(entry["file"], entry)
    return list(seen.values())


def _countable(result: dict[str, Any]) -> dict[str, Any]:
    """What of a result may go into the audit log: counts and dataset names, never a link."""
    return {k: v for k, v in result.items() if k not in ("link", "pack")}


def _due_order(request: RightsRequest) -> tuple[str, str]:
    return (request.due.isoformat(), request.id)


def _bad(field_name: str, rule: str, message: str) -> Problem:
    return Problem(400, "Bad Request", message, field=field_name, rule=rule)
