"""The breach register (UK GDPR Articles 33 and 34): each incident, its 72-hour clock to tell the ICO, the decision
on telling the people affected, and every step with who took it and when.

A breach is opened with a category from a fixed list, a description and what it involves (partners, datasets,
uploads, a time window). The description is free text read by operators and kept for years, so it must hold no
personal data: it is refused when it carries something that looks like an email address, a phone number, an NHS
number, a UPN or a full postcode (names cannot be told apart from ordinary words; the procedure in
docs/breaches.md says to leave them out).

The clock runs from when the platform became aware (`aware_at`): the ICO must be told within 72 hours unless the
assessment finds a risk to people unlikely (Art 33(1)); a later report must say why it is late. A `high` risk
means the people affected must be told too (Art 34(1)). A breach cannot be closed while either is due.

Who is affected is worked out from the incident's scope through the ledger (which uploads) and the person index
(who those uploads' rows are about), and shown as counts per partner: never a pseudonym or a person key. See
`AffectedPeople`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode
from stdnum.gb import nhs, upn

from shared.identity.index import PersonIndex
from shared.ingest.ledger import ACCEPTED, REJECTED
from shared.platform.audit import AuditLog
from shared.platform.auth import Problem
from shared.platform.storage import AUDIT, BREACHES, INGESTS, Storage
from shared.policy.loader import Policy

CATEGORIES = {
    "upload_link_misuse": "an upload link used by someone it was not given to, or after it was revoked",
    "misdirected_upload": "a partner's file in the wrong drop zone or dataset, or data the agreement does not allow",
    "unauthorised_access": "platform data read or changed by someone not entitled to it",
    "export_disclosure": "an access pack, research extract or report that reached someone it should not have",
    "audit_tampering": "the audit log or its checkpoints changed, or failing verification",
    "key_compromise": "the pseudonymisation root key, a source key or the audit key exposed",
    "data_loss": "data lost, destroyed or unavailable without authority",
    "other": "anything else: the description says what",
}
RISKS = ("unlikely", "risk", "high")
"""Art 33(1): the ICO is told unless a risk to people is unlikely; Art 34(1): people are told when it is high."""
NOTICE_CHANNELS = ("via_partners", "direct", "public_communication")
"""How people were told: through the partners that know them, directly, or publicly (Art 34(3)(c))."""
OPEN, CLOSED = "open", "closed"
STATUSES = {"open": (OPEN,), "closed": (CLOSED,), "all": (OPEN, CLOSED)}
ICO_HOURS = 72
PARTITION = "breach"
MAX_TEXT = 2000
PAGE_SIZE = 50
CLOCK_SKEW = timedelta(minutes=5)
_JSON_FIELDS = ("scope", "history")
_TIMES = ("aware_at", "opened_at", "assessed_at", "ico_notified_at", "people_notified_at", "closed_at")


# What a description must not carry -------------------------------------------------------------------------------

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_POSTCODE = re.compile(r"\b[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][ABD-HJLNP-UW-Z]{2}\b", re.IGNORECASE)
_PHONE = re.compile(r"(?:\+44\s?|\b0)(?:\d[\s-]?){9,10}\b")
_DIGIT_RUN = re.compile(r"\b\d(?:[\s-]?\d){9}\b")
_WORD = re.compile(r"\b[A-Z0-9]{13}\b", re.IGNORECASE)


def personal_data_in(text: str) -> str | None:
    """The kind of personal data `text` appears to carry (for the error: never the value), or None."""
    if _EMAIL.search(text):
        return "an email address"
    if any(nhs.is_valid(match.group()) for match in _DIGIT_RUN.finditer(text)):
        return "an NHS number"
    if _PHONE.search(text):
        return "a phone number"
    if any(upn.is_valid(match.group()) for match in _WORD.finditer(text)):
        return "a UPN"
    if _POSTCODE.search(text):
        return "a full postcode"
    return None


# The register ------------------------------------------------------------------------------------------------------

@dataclass
class Breach:
    id: str
    category: str
    description: str
    aware_at: datetime
    opened_at: datetime
    opened_by: str
    scope: dict[str, Any]
    status: str = OPEN
    risk: str | None = None
    assessment: str | None = None
    assessed_at: datetime | None = None
    ico_reference: str | None = None
    ico_notified_at: datetime | None = None
    ico_delay_reason: str | None = None
    people_notified_at: datetime | None = None
    people_notified_how: str | None = None
    closed_at: datetime | None = None
    closed_by: str | None = None
    outcome: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    etag: str | None = None

    @property
    def ico_deadline(self) -> datetime:
        return self.aware_at + timedelta(hours=ICO_HOURS)

    @property
    def ico_report(self) -> str:
        """`due` until recorded, unless assessed `unlikely` (`not_required`); an unassessed breach counts as due."""
        if self.ico_notified_at is not None:
            return "recorded"
        return "not_required" if self.risk == "unlikely" else "due"

    @property
    def people_notice(self) -> str:
        if self.people_notified_at is not None:
            return "recorded"
        if self.risk is None:
            return "undecided"
        return "due" if self.risk == "high" else "not_required"

    def hours_left(self, now: datetime) -> float | None:
        """Hours to the ICO deadline (negative once past) while a report is due; None when none is."""
        if self.ico_report != "due":
            return None
        return round((self.ico_deadline - now).total_seconds() / 3600, 1)

    def overdue(self, now: datetime) -> bool:
        return self.ico_report == "due" and now > self.ico_deadline

    def note(self, at: datetime, by: str, step: str, **details: Any) -> None:
        self.history.append({"at": _iso(at), "by": by, "step": step, **details})

    def public(self, now: datetime, with_history: bool = True) -> dict[str, Any]:
        """What the API shows: the register's own fields, the clock as of `now`, and (in detail) every step."""
        view: dict[str, Any] = {
                "id": self.id, "status": self.status, "category": self.category, "description": self.description,
                "scope": self.scope, "aware_at": _iso(self.aware_at), "opened_at": _iso(self.opened_at),
                "opened_by": self.opened_by, "ico_deadline": _iso(self.ico_deadline),
                "hours_left": self.hours_left(now), "overdue": self.overdue(now),
                "risk": self.risk, "assessment": self.assessment, "assessed_at": _iso(self.assessed_at),
                "ico": {"report": self.ico_report, "reference": self.ico_reference,
                        "notified_at": _iso(self.ico_notified_at), "delay_reason": self.ico_delay_reason},
                "people": {"notice": self.people_notice, "notified_at": _iso(self.people_notified_at),
                           "how": self.people_notified_how},
                "closed_at": _iso(self.closed_at), "closed_by": self.closed_by, "outcome": self.outcome}
        if with_history:
            view["history"] = self.history
        return view


class BreachRegister:
    """The `breaches` table: one row per breach. Every write is conditional on the row as it was read, so two
    officers acting on one breach at once cannot overwrite each other's step."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def add(self, breach: Breach) -> None:
        written = self._table.create_entity(_entity(breach))
        breach.etag = written.get("etag")

    def save(self, breach: Breach) -> None:
        try:
            written = self._table.update_entity(_entity(breach), mode=UpdateMode.REPLACE, etag=breach.etag,
                                                match_condition=MatchConditions.IfNotModified)
        except ResourceModifiedError:
            raise Problem(409, "Conflict", "The breach changed while this step was being recorded: read it again.",
                          rule="breach.changed") from None
        breach.etag = written.get("etag")

    def get(self, breach_id: str) -> Breach:
        try:
            row = self._table.get_entity(PARTITION, breach_id)
        except ResourceNotFoundError:
            raise Problem(404, "Not Found", "No breach has that id.") from None
        return _from_row(row)

    def all(self) -> list[Breach]:
        return [_from_row(row) for row in self._table.query_entities(f"PartitionKey eq '{PARTITION}'")]


def _entity(breach: Breach) -> dict[str, Any]:
    entity: dict[str, Any] = {"PartitionKey": PARTITION, "RowKey": breach.id}
    for name, value in asdict(breach).items():
        if name in ("id", "etag") or value is None:
            continue
        entity[name] = json.dumps(value) if name in _JSON_FIELDS else _iso(value) if name in _TIMES else value
    return entity


def _from_row(row: Any) -> Breach:
    values = {k: v for k, v in row.items() if k not in ("PartitionKey", "RowKey")}
    for name in _JSON_FIELDS:
        values[name] = json.loads(values.get(name) or ("{}" if name == "scope" else "[]"))
    for name in _TIMES:
        if values.get(name):
            values[name] = datetime.fromisoformat(values[name])
    return Breach(id=row["RowKey"], etag=row.metadata.get("etag"), **values)


# The steps ---------------------------------------------------------------------------------------------------------

class BreachService:
    """Open, assess, record the notices, close: each step checked, kept in the breach's history, and saved."""

    def __init__(self, policy: Policy, storage: Storage, index: PersonIndex,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.policy = policy
        self.register = BreachRegister(storage.table(BREACHES))
        self.audit = AuditLog(storage.table(AUDIT))
        self.affected_people = AffectedPeople(policy, storage, index)
        self.clock = clock

    def open(self, body: dict[str, Any], caller: str) -> dict[str, Any]:
        now = self.clock()
        category = body.get("category")
        if not isinstance(category, str) or category not in CATEGORIES:
            raise _bad("category", "breach.category", f"category must be one of {', '.join(CATEGORIES)}")
        aware_at = _time(body, "aware_at", now, not_after=now)
        breach = Breach(uuid.uuid4().hex, category, _text(body, "description"), aware_at, now, caller,
                        _scope(body.get("scope"), self.policy))
        breach.note(now, caller, "opened", category=breach.category)
        self.register.add(breach)
        return breach.public(now)

    def listed(self, status: str, after: str | None = None, limit: int = PAGE_SIZE) -> dict[str, Any]:
        """`{"items", "next"}`: open breaches whose ICO report is due, nearest deadline first; then the other open
        ones, then closed ones, newest first. `next` is an opaque token for the following page, or None."""
        statuses = STATUSES.get(status)
        if statuses is None:
            raise _bad("status", "breaches.status", "status must be open, closed or all")
        now = self.clock()
        ordered = sorted(((_order(b), b) for b in self.register.all() if b.status in statuses),
                         key=lambda pair: pair[0])
        if after is not None:
            cursor = _cursor(after)
            ordered = [pair for pair in ordered if pair[0] > cursor]
        page = ordered[:limit]
        more = len(ordered) > limit
        return {"items": [breach.public(now, with_history=False) for _, breach in page],
                "next": _token(page[-1][0]) if more else None}

    def view(self, breach_id: str) -> dict[str, Any]:
        return self.register.get(breach_id).public(self.clock())

    def assess(self, breach_id: str, body: dict[str, Any], caller: str) -> dict[str, Any]:
        breach, now = self._open_breach(breach_id)
        risk = body.get("risk")
        if not isinstance(risk, str) or risk not in RISKS:
            raise _bad("risk", "breach.risk", f"risk must be one of {', '.join(RISKS)}")
        breach.risk, breach.assessment, breach.assessed_at = risk, _text(body, "reason"), now
        breach.note(now, caller, "assessed", risk=breach.risk, ico_report=breach.ico_report,
                    people_notice=breach.people_notice)
        return self._saved(breach, now)

    def ico_notified(self, breach_id: str, body: dict[str, Any], caller: str) -> dict[str, Any]:
        breach, now = self._open_breach(breach_id)
        reference = body.get("reference")
        if not isinstance(reference, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9/_.-]{0,63}", reference):
            raise _bad("reference", "breach.ico.reference",
                       "reference must be the ICO's case reference: letters, digits, / _ . -, at most 64")
        at = _time(body, "at", now, not_after=now, not_before=breach.aware_at)
        late = at > breach.ico_deadline
        if late:  # Art 33(1): a report after 72 hours comes with the reasons for the delay
            breach.ico_delay_reason = _text(body, "delay_reason", rule="breach.ico.delay_reason")
        breach.ico_reference, breach.ico_notified_at = reference, at
        breach.note(now, caller, "ico_notified", notified_at=_iso(at), late=late)
        return self._saved(breach, now)

    def people_notified(self, breach_id: str, body: dict[str, Any], caller: str) -> dict[str, Any]:
        breach, now = self._open_breach(breach_id)
        how = body.get("how")
        if not isinstance(how, str) or how not in NOTICE_CHANNELS:
            raise _bad("how", "breach.people.how", f"how must be one of {', '.join(NOTICE_CHANNELS)}")
        at = _time(body, "at", now, not_after=now, not_before=breach.aware_at)
        breach.people_notified_at, breach.people_notified_how = at, how
        breach.note(now, caller, "people_notified", notified_at=_iso(at), how=breach.people_notified_how)
        return self._saved(breach, now)

    def close(self, breach_id: str, body: dict[str, Any], caller: str) -> dict[str, Any]:
        breach, now = self._open_breach(breach_id)
        if breach.risk is None:
            raise _refused("breach.close.not_assessed", "Assess the breach before closing it: the register must "
                                                        "record the decision on risk (Art 33(5)).")
        if breach.ico_report == "due":
            raise _refused("breach.close.ico_report_due", "The ICO must be told of this breach: record the report "
                                                          "(POST .../ico-notified) before closing it.")
        if breach.people_notice == "due":
            raise _refused("breach.close.people_notice_due", "The risk is high, so the people affected must be "
                                                             "told: record it (POST .../people-notified) first.")
        breach.outcome = _text(body, "outcome")
        breach.status, breach.closed_at, breach.closed_by = CLOSED, now, caller
        breach.note(now, caller, "closed")
        return self._saved(breach, now)

    def affected(self, breach_id: str) -> dict[str, Any]:
        return self.affected_people.summary(self.register.get(breach_id))

    def affected_rows(self, breach_id: str, partner: str, caller: str) -> dict[str, Any]:
        """A partner's own row references, for the officer to pass on: the release is audited with the partner
        and how many rows (never which)."""
        released = self.affected_people.rows_for(self.register.get(breach_id), partner)
        rows = sum(len(item["rows"]) for item in released["uploads"])
        self.audit.append("breach.affected.rows", {"breach": breach_id, "partner": partner, "rows": rows},
                          actor=caller)
        return released

    def _open_breach(self, breach_id: str) -> tuple[Breach, datetime]:
        breach = self.register.get(breach_id)
        if breach.status == CLOSED:
            raise _refused("breach.closed", "This breach is closed: open a new one for anything found since.")
        return breach, self.clock()

    def _saved(self, breach: Breach, now: datetime) -> dict[str, Any]:
        self.register.save(breach)
        return breach.public(now)


def _order(breach: Breach) -> tuple[int, float, str]:
    """Sort key: open with an ICO report due (deadline ascending), other open, closed (newest first)."""
    if breach.status == OPEN and breach.ico_report == "due":
        return (0, breach.ico_deadline.timestamp(), breach.id)
    return (1 if breach.status == OPEN else 2, -breach.opened_at.timestamp(), breach.id)


def _token(key: tuple[int, float, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def _cursor(token: str) -> tuple[int, float, str]:
    try:
        group, stamp, breach_id = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return int(group), float(stamp), str(breach_id)
    except (binascii.Error, ValueError, TypeError):
        raise _bad("next", "breaches.next", "next must be a token from an earlier page") from None


# Input -------------------------------------------------------------------------------------------------------------

def _text(body: dict[str, Any], name: str, rule: str | None = None) -> str:
    """Free text an operator writes: present, not too long, and carrying no personal data."""
    value = body.get(name)
    rule = rule or f"breach.{name}"
    if not isinstance(value, str) or not value.strip():
        raise _bad(name, rule, f"{name} is required: a short account in words, with no personal data")
    if len(value) > MAX_TEXT:
        raise _bad(name, f"{rule}.length", f"{name} must be at most {MAX_TEXT} characters")
    found = personal_data_in(value)
    if found:
        raise _bad(name, "breach.personal_data", f"{name} appears to contain {found}: describe the incident without "
                                                 "personal data (counts, partners, upload ids, times)")
    return value.strip()


def _time(body: dict[str, Any], name: str, default: datetime, *, not_after: datetime,
          not_before: datetime | None = None) -> datetime:
    value = body.get(name)
    if value is None:
        return default
    try:
        at = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise _bad(name, "breach.time", f"{name} must be an ISO 8601 time with its offset, e.g. 2026-03-02T09:30Z")
    if at > not_after + CLOCK_SKEW:
        raise _bad(name, "breach.time.future", f"{name} cannot be in the future")
    if not_before is not None and at < not_before:
        raise _bad(name, "breach.time.before_aware", f"{name} cannot be before the platform became aware")
    return at.astimezone(UTC)


def _scope(value: object, policy: Policy) -> dict[str, Any]:
    """Which partners, datasets, uploads and time window the incident involves (each optional)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad("scope", "breach.scope", "scope must be an object: partners, datasets, uploads, window")
    unknown = sorted(set(value) - {"partners", "datasets", "uploads", "window"})
    if unknown:
        raise _bad("scope", "breach.scope.field", "scope takes only partners, datasets, uploads and window")
    datasets = {d for partner in policy.partners.values() for d in partner.datasets}
    checks: dict[str, tuple[Callable[[str], bool], str]] = {
        "partners": (lambda item: item in policy.partners, "a partner in the programme policy"),
        "datasets": (lambda item: item in datasets, "a dataset in the programme policy"),
        "uploads": (lambda item: re.fullmatch(r"[0-9a-f]{32}", item) is not None, "an upload (ingest) id"),
    }
    scope: dict[str, Any] = {}
    for name, (ok, what) in checks.items():
        items = value.get(name, [])
        if not isinstance(items, list):
            raise _bad(f"scope.{name}", f"breach.scope.{name}", f"scope.{name} must be a list")
        for i, item in enumerate(items):
            if not isinstance(item, str) or not ok(item):
                raise _bad(f"scope.{name}[{i}]", f"breach.scope.{name}", f"scope.{name}[{i}] is not {what}")
        if items:
            scope[name] = sorted(set(items))
    if value.get("window") is not None:
        scope["window"] = _window(value["window"])
    return scope


def _window(value: object) -> dict[str, str]:
    if not isinstance(value, dict) or set(value) != {"from", "to"} or None in value.values():
        raise _bad("scope.window", "breach.scope.window", "scope.window must be {\"from\": time, \"to\": time}")
    far = datetime.max.replace(tzinfo=UTC) - CLOCK_SKEW
    start = _time(value, "from", far, not_after=far)
    end = _time(value, "to", far, not_after=far)
    if end < start:
        raise _bad("scope.window", "breach.scope.window", "scope.window ends before it starts")
    return {"from": start.isoformat(timespec="seconds"), "to": end.isoformat(timespec="seconds")}


def _bad(field_name: str, rule: str, message: str) -> Problem:
    return Problem(400, "Bad Request", message, field=field_name, rule=rule)


def _refused(rule: str, message: str) -> Problem:
    return Problem(409, "Conflict", message, rule=rule)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="seconds") if value is not None else None


# Who is affected ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Upload:
    partner: str
    ingest_id: str
    dataset: str | None
    status: str
    received_at: datetime | None


class AffectedPeople:
    """The people an incident's scope touches, counted through the person index, and the partners who can reach
    them: counts per partner, never a pseudonym or a person key.

    A person is affected when a stored row of theirs came in an upload in scope. Each partner that has sent rows
    about an affected person is listed with how many of them it knows, so the officer can ask it to tell them
    (the platform cannot: it holds no names or addresses). `rows_for` gives one partner the upload ids and row
    numbers of its OWN files that hold those people: personal data in that partner's hands (it can look the
    rows up in its files), meaningless to anyone without them. It is given to the data protection officer only,
    one partner at a time, to pass to that partner; the summary an administrator sees holds counts alone.
    """

    def __init__(self, policy: Policy, storage: Storage, index: PersonIndex) -> None:
        self.policy = policy
        self.ledger = storage.table(INGESTS)
        self.audit = AuditLog(storage.table(AUDIT))
        self.index = index

    def summary(self, breach: Breach) -> dict[str, Any]:
        ledger = self._ledger()
        uploads = _in_scope(ledger, breach.scope)
        people, records = self._people(uploads)
        in_scope = {u.ingest_id for u in uploads if u.status == ACCEPTED}
        partners = self._by_partner(ledger, people, records, in_scope)
        result = {"breach": breach.id, "scope": breach.scope, "people": len(people),
                  "rows_in_scope": sum(1 for record in records if record[0] in in_scope),
                  "uploads": {"accepted": len(in_scope),
                              "rejected": sum(1 for u in uploads if u.status == REJECTED)},
                  "partners": partners}
        if "window" in breach.scope:
            result["activity"] = self._activity(breach.scope["window"])
        if not breach.scope:
            result["note"] = "the breach names no partner, dataset, upload or window: nothing to count"
        return result

    def rows_for(self, breach: Breach, partner: str) -> dict[str, Any]:
        """This partner's own references to the affected people: upload id and row number, as its receipts name
        them. Every row it sent about each affected person, not only the rows in scope."""
        if partner not in self.policy.partners:
            raise _bad("partner", "breach.affected.partner", "partner is not a partner in the programme policy")
        ledger = self._ledger()
        _, records = self._people(_in_scope(ledger, breach.scope))
        mine = {u.ingest_id for u in ledger if u.partner == partner}
        rows: dict[str, list[int]] = {}
        for ingest_id, row, _ in records:
            if ingest_id in mine:
                rows.setdefault(ingest_id, []).append(row)
        return {"breach": breach.id, "partner": partner,
                "uploads": [{"upload": ingest_id, "rows": sorted(found)} for ingest_id, found in sorted(rows.items())]}

    def _ledger(self) -> list[Upload]:
        uploads = []
        for row in self.ledger.list_entities():
            received = row.get("received_at")
            uploads.append(Upload(row["PartitionKey"], row["RowKey"], row.get("dataset"), row["status"],
                                  datetime.fromisoformat(received) if received else None))
        return uploads

    def _people(self, uploads: list[Upload]) -> tuple[set[str], list[tuple[str, int, str]]]:
        """The affected person keys, and every record of theirs as (ingest id, row, person key). Kept inside this
        class: nothing it returns to a caller carries a person key."""
        in_scope = {u.ingest_id for u in uploads if u.status == ACCEPTED}
        if not in_scope:
            return set(), []
        self.index.ensure_linked()
        records = [(*_record(record), person) for record, person in self.index.person_map().items()]
        people = {person for ingest_id, _, person in records if ingest_id in in_scope}
        return people, [record for record in records if record[2] in people]

    def _by_partner(self, ledger: list[Upload], people: set[str], records: list[tuple[str, int, str]],
                    in_scope: set[str]) -> list[dict[str, Any]]:
        partner_of = {u.ingest_id: u.partner for u in ledger}
        known: dict[str, set[str]] = {}
        rows: Counter[str] = Counter()
        uploads: dict[str, set[str]] = {}
        for ingest_id, _, person in records:
            partner = partner_of.get(ingest_id, "unknown")
            known.setdefault(partner, set()).add(person)
            if ingest_id in in_scope:
                rows[partner] += 1
                uploads.setdefault(partner, set()).add(ingest_id)
        return [{"partner": partner, "name": self._name(partner), "people_known": len(known[partner]),
                 "rows_in_scope": rows[partner], "uploads_in_scope": sorted(uploads.get(partner, set()))}
                for partner in sorted(known, key=lambda p: (-len(known[p]), p))]

    def _name(self, partner: str) -> str:
        found = self.policy.partners.get(partner)
        return found.name if found else partner

    def _activity(self, window: dict[str, str]) -> dict[str, int]:
        """Audit entries in the window, counted by action: what was read, exported or changed while it lasted."""
        entries = self.audit.entries_between(window["from"], window["to"])
        return dict(sorted(Counter(entry.action for entry in entries).items()))


def _in_scope(ledger: list[Upload], scope: dict[str, Any]) -> list[Upload]:
    """The uploads meeting every condition the scope gives (none when it gives none)."""
    if not scope:
        return []
    window = scope.get("window")
    bounds = (datetime.fromisoformat(window["from"]), datetime.fromisoformat(window["to"])) if window else None

    def in_window(received: datetime | None) -> bool:
        return bounds is None or (received is not None and bounds[0] <= received <= bounds[1])

    def wanted(upload: Upload) -> bool:
        return ((not scope.get("partners") or upload.partner in scope["partners"])
                and (not scope.get("datasets") or upload.dataset in scope["datasets"])
                and (not scope.get("uploads") or upload.ingest_id in scope["uploads"])
                and in_window(upload.received_at))

    return [upload for upload in ledger if wanted(upload)]


def _record(record: str) -> tuple[str, int]:
    ingest_id, _, row = record.partition(":")
    return ingest_id, int(row)
