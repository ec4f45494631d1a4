"""Data contracts: the data sharing agreement as code, and the checks every header and row must pass.

A contract names each column a partner may send and its role:
- `identifier` (with its type) is pseudonymised;
- `direct` (names, addresses, phone numbers, emails) is accepted and dropped before anything is stored;
- `quasi` is generalised (postcode to district or sector, date of birth to a month or an age in months);
- `attribute` is kept, checked against its type and allowed values or range;
- `consent` is the row's opt-in flag, used and then dropped.
An identifier says what it identifies: one `person` (an NHS number, a UPN, a child's reference) or a `group` (a
family or household reference), which never joins two people. A direct or quasi column may say what it holds for
matching (`match`: a name, the date of birth, the postcode): the person index computes keyed match keys from it
before it is dropped or generalised (`shared/identity/matchkeys.py`).
Errors name the row, the column and the rule; they never carry the value.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property

from shared.identity.matchkeys import FIELDS as MATCH_FIELDS
from shared.identity.matchkeys import parse_name_tokens
from shared.identity.pseudonymise import InvalidIdentifier, normalise
from shared.policy import generalise
from shared.policy.generalise import InvalidValue

ROLES = ("identifier", "direct", "quasi", "attribute", "consent")
IDENTIFIES = ("person", "group")
MATCHES = MATCH_FIELDS
GENERALISATIONS = ("postcode_district", "postcode_sector", "birth_month", "age_in_months")
ATTRIBUTE_TYPES = ("string", "integer", "number", "date", "boolean")
UNEXPECTED_COLUMN_ACTIONS = ("reject_file", "drop")
INVALID_ROW_ACTIONS = ("drop_row", "reject_file")
DEFAULT_MAX_LENGTH = 200
_TRUE = frozenset({"y", "yes", "true", "1"})
_FALSE = frozenset({"n", "no", "false", "0"})
def words_of(text: str) -> frozenset[str]:
    return frozenset(text.split())


_HEADER_CHARACTERS = re.compile(r"^[A-Za-z0-9 _.\-()/#&]{1,64}$")
_HEADER_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
COLUMN_WORDS = words_of("""
    id ids ref refs reference number num no code key pseudonym pseudonymised token nhs upn uln urn case pupil
    child children parent parents carer guardian family household person client patient member mother father baby
    infant sibling first given middle last surname forename forenames full name names initial initials title
    preferred known date birth born age months month year years week weeks time start end from to until since
    due expected actual address line road city county postcode post zip area district sector region country
    email phone telephone mobile contact gender sex ethnicity ethnic origin language religion nationality
    disability disabled sen send ehcp fsm eal premium free school meals looked after lac cin cp plan status need
    needs support level type category reason outcome result score scores total count attended attendance sessions
    session visit visits review reviews assessment assessments service services programme program referral
    referred source episode consent consented opt flag notes note comment comments description other unit team
    worker provider setting nursery trust council gp practice surgery hospital health visitor asq sdq eyfs
    communication personal social gross motor fine problem solving domain stage rating grade attainment progress
    value amount hours minutes duration frequency of and the at on by for per with in out
""")
"""Words a column header may be made of and still be shown in a receipt although the agreement does not know it.
None is a given name or a common surname (tests check them against the nicknames package's names and the synthetic
generator's): a header of other words, however harmless it looks, is shown as `column N`."""


@dataclass(frozen=True)
class Column:
    name: str
    role: str
    required: bool = True
    id_type: str | None = None
    generalise: str | None = None
    at: str | None = None
    """For `age_in_months`: the date column the age is measured at."""
    type: str | None = None
    values: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    step: int | None = None
    max_length: int = DEFAULT_MAX_LENGTH
    identifies: str = "person"
    """For identifiers: one `person`, or a `group` of people (a family reference), which never links two."""
    match: str | None = None
    """For direct and quasi columns: what the value is to the person index (first_name, full_name, ...)."""
    label: str | None = None
    """What people call the column in reports, charts and the data dictionary (`SEN provision`)."""
    description: str = ""
    """What the column means, for the data dictionary."""
    value_labels: tuple[tuple[str, str], ...] = ()
    """Code -> label for coded values (`K` -> `SEN support`), shown in reports and the data dictionary."""

    @property
    def title(self) -> str:
        """The column's label, or its name made readable."""
        return self.label or self.name.replace("_", " ").capitalize()

    def value_label(self, value: object) -> str:
        """A stored value as people read it: its label from the policy, booleans as Yes/No, else as stored."""
        text = str(value)
        labels = dict(self.value_labels)
        if text in labels:
            return labels[text]
        if isinstance(value, bool):
            return "Yes" if value else "No"
        return text

    @property
    def names_a_person(self) -> bool:
        return self.role == "identifier" and self.identifies == "person"

    @cached_property
    def output_name(self) -> str | None:
        """The stored column's name, or None for columns that are never stored."""
        if self.role == "identifier":
            return f"{self.name}_pseudonym"
        if self.role == "quasi":
            suffix = {"postcode_district": "district", "postcode_sector": "sector",
                      "birth_month": "month", "age_in_months": "age_months"}[self.generalise or ""]
            return f"{self.name}_{suffix}"
        if self.role == "attribute":
            return self.name
        return None


@dataclass(frozen=True)
class Contract:
    columns: tuple[Column, ...]
    unexpected_columns: str = "reject_file"
    invalid_rows: str = "drop_row"

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def identifiers(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.role == "identifier")

    @cached_property
    def words(self) -> frozenset[str]:
        """The words of the agreement's own column names (`visit_type`: visit, type): a header made of them is
        safe to show."""
        return frozenset(word for c in self.columns for word in c.name.split("_") if word.isalpha())

    @property
    def matches(self) -> bool:
        """The contract sends names, a full date of birth or a postcode the person index matches on."""
        return any(c.match for c in self.columns)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file or a row: where, which rule, and what to fix. Never the value."""

    rule: str
    message: str
    row: int | None = None
    column: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"row": self.row, "column": self.column, "rule": self.rule, "message": self.message}


class FileRejected(Exception):
    """The whole file is refused; nothing from it is stored."""

    def __init__(self, problems: list[Problem] | Problem) -> None:
        self.problems = problems if isinstance(problems, list) else [problems]
        super().__init__("; ".join(f"{p.rule}: {p.message}" for p in self.problems))


@dataclass
class CheckedRow:
    """A row that passed its contract: typed, generalised values and normalised identifiers."""

    row: int
    values: dict[str, object]
    identifiers: list[tuple[Column, str]]
    consent: bool | None
    dates: dict[str, date] = field(default_factory=dict)
    match: dict[str, object] = field(default_factory=dict)
    """Values the person index matches on (a name, the birth date, the full postcode): in memory only."""


def describe_header(name: str, position: int, contract: Contract | None = None) -> str:
    """How a receipt names a header cell: by a name the agreement knows, or as `column N`.

    A file without a header row has data where its header should be (an NHS number, a child's name, a postcode), so
    a cell the contract does not know is shown only when it cannot be personal data by a strict rule: at most 64
    characters, made only of words of the agreement's own column names or of COLUMN_WORDS (split at spaces,
    punctuation and capitals: `DateOfBirth`, `child_name`), with at least one such word and numbers of at most two
    digits (`address line 2`). A name, a date, an identifier or a postcode never passes."""
    known = contract.column(name.strip().lower()) if contract is not None else None
    if known is not None:
        return known.name
    return name if header_is_safe(name, contract) else f"column {position}"


def header_is_safe(name: str, contract: Contract | None = None) -> bool:
    if not _HEADER_CHARACTERS.match(name):
        return False
    words = _HEADER_WORDS.findall(name)
    vocabulary = COLUMN_WORDS | (contract.words if contract is not None else frozenset())
    letters = [word.lower() for word in words if not word.isdigit()]
    return bool(letters) and all(word in vocabulary for word in letters) and all(
        len(word) <= 2 for word in words if word.isdigit())


class BoundContract:
    """A contract matched to one file's header: positions resolved, ready to check rows."""

    def __init__(self, contract: Contract, header: list[str]) -> None:
        self.contract = contract
        self.positions: dict[str, int] = {}
        problems: list[Problem] = []
        seen: dict[str, int] = {}
        for position, raw in enumerate(header, start=1):
            key = raw.strip().lower()
            shown = describe_header(raw.strip(), position, contract)
            if not key:
                problems.append(Problem("header.blank", f"column {position} has no name", row=1))
                continue
            if key in seen:
                problems.append(Problem("header.duplicate", "column appears more than once", row=1, column=shown))
                continue
            seen[key] = position
            column = contract.column(key)
            if column is None:
                if contract.unexpected_columns == "reject_file":
                    problems.append(Problem(
                        "header.not_in_contract",
                        "column is not in the data sharing agreement: remove it and upload again", row=1, column=shown))
                continue
            self.positions[column.name] = position - 1
        for column in contract.columns:
            if column.required and column.name not in self.positions:
                problems.append(Problem("header.missing", "required column is missing", row=1, column=column.name))
        if problems:
            raise FileRejected(problems)
        self.width = len(header)
        self.present: list[tuple[Column, int, str]] = [
            (c, self.positions[c.name], kind_of(c)) for c in contract.columns if c.name in self.positions]
        # Most columns repeat a few values (codes, dates, counts): each distinct value is checked once per file.
        # Identifiers are nearly all distinct, so they are not remembered.
        self._memo: dict[str, dict[str, object]] = {c.name: {} for c, _, kind in self.present
                                                    if kind not in ("identifier", "direct")}

    def check(self, row: int, cells: list[str], received: date) -> tuple[CheckedRow | None, list[Problem]]:
        if len(cells) != self.width:
            return None, [Problem("row.field_count", f"row has {len(cells)} fields, the header has {self.width}", row)]
        problems: list[Problem] = []
        checked = CheckedRow(row=row, values={}, identifiers=[], consent=None)
        for column, position, kind in self.present:
            if kind == "direct":  # never checked, never stored: only read for match keys where it is one
                if column.match:
                    problems += _keep_for_matching(checked, column, cells[position].strip())
                continue
            text = cells[position].strip()
            if not text:
                if column.required:
                    problems.append(Problem("value.required", "a value is required", row, column.name))
                continue
            if len(text) > column.max_length:
                problems.append(
                    Problem("value.too_long", f"longer than {column.max_length} characters", row, column.name))
                continue
            try:
                value = self.value(column, kind, text, received)
            except (InvalidValue, InvalidIdentifier) as failure:
                problems.append(Problem(failure.rule, failure.message, row, column.name))
                continue
            if column.match:
                checked.match[column.match] = generalise.full_postcode(text) if kind == "postcode" else value
            if kind == "identifier":
                checked.identifiers.append((column, value))  # type: ignore[arg-type]
            elif kind == "consent":
                checked.consent = value  # type: ignore[assignment]
            elif kind == "postcode":
                checked.values[column.output_name or ""] = value
            else:
                if isinstance(value, date):
                    checked.dates[column.name] = value
                if kind == "attribute":
                    checked.values[column.name] = value
        if not problems:
            self._finish(checked, problems)
        return (None if problems else checked), problems

    def value(self, column: Column, kind: str, text: str, received: date) -> object:
        """One stripped, non-blank cell's checked value, or InvalidValue / InvalidIdentifier naming the rule."""
        memo = self._memo.get(column.name)
        if memo is not None and text in memo:
            known = memo[text]
            if isinstance(known, _Failure):
                raise InvalidValue(known.rule, known.message)
            return known
        try:
            value = _convert(column, kind, text, received)
        except (InvalidValue, InvalidIdentifier) as failure:
            if memo is not None and len(memo) < MEMO_LIMIT:
                memo[text] = _Failure(failure.rule, failure.message)
            raise
        if memo is not None and len(memo) < MEMO_LIMIT:
            memo[text] = value
        return value

    def _finish(self, checked: CheckedRow, problems: list[Problem]) -> None:
        """Row-level rules that need several cells: an identifier present, ages measured at event dates."""
        if self.contract.identifiers and not checked.identifiers:
            problems.append(Problem("identifier.missing", "the row has no identifier", checked.row))
        for column in self.contract.columns:
            born = checked.dates.get(column.name)
            if column.role != "quasi" or born is None:
                continue
            if column.generalise == "birth_month":
                checked.values[column.output_name or ""] = generalise.birth_month(born)
                continue
            event = checked.dates.get(column.at or "")
            if event is None:
                checked.values[column.output_name or ""] = None
                continue
            try:
                checked.values[column.output_name or ""] = generalise.age_in_months(born, event)
            except InvalidValue as failure:
                problems.append(Problem(failure.rule, failure.message, checked.row, column.at))


def _keep_for_matching(checked: CheckedRow, column: Column, text: str) -> list[Problem]:
    if column.match == "name_tokens":
        return _keep_name_tokens(checked, column, text)
    if text and len(text) <= column.max_length:
        checked.match[column.match or ""] = text
    return []


def _keep_name_tokens(checked: CheckedRow, column: Column, text: str) -> list[Problem]:
    """A name the source tool tokenised: kept only in the form the tool writes, so a trust that sent the name
    itself by mistake is told (by row and column) rather than having it keyed as if it were tokens."""
    if not text:
        return []
    try:
        parse_name_tokens(text)
    except ValueError:
        return [Problem("match.name_tokens", "not name tokens as `python -m shared.identity.source` writes them",
                        checked.row, column.name)]
    checked.match["name_tokens"] = text
    return []


MEMO_LIMIT = 10_000
"""Distinct values remembered per column and file: enough for codes and dates, small whatever the file."""


@dataclass(frozen=True)
class _Failure:
    rule: str
    message: str


def kind_of(column: Column) -> str:
    """How a column's cells are checked: identifier, direct, postcode, birth_date, attribute or consent."""
    if column.role == "quasi":
        return "postcode" if column.generalise in ("postcode_district", "postcode_sector") else "birth_date"
    return column.role


def _convert(column: Column, kind: str, text: str, received: date) -> object:
    """One cell's checked value, or InvalidValue / InvalidIdentifier naming the rule it breaks."""
    if kind == "identifier":
        return normalise(column.id_type or "", text)
    if kind == "consent":
        return parse_bool(text)
    if kind == "postcode":
        return getattr(generalise, column.generalise or "")(text)
    if kind == "birth_date":
        born = parse_date(text)
        if born > received or born < received - timedelta(days=366 * 120):
            raise InvalidValue("date_of_birth.range", "date of birth is in the future or over 120 years ago")
        return born
    return parse_attribute(column, text)


def parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InvalidValue("boolean.format", "must be Y or N (yes/no, true/false and 1/0 also accepted)")


def parse_date(text: str) -> date:
    """ISO dates (2024-03-31, also with a time from Excel) or UK dates (31/03/2024)."""
    try:
        if "/" in text:
            day, month, year = text.split("/")
            if len(year) != 4:
                raise ValueError
            return date(int(year), int(month), int(day))
        return date.fromisoformat(text[:10])
    except ValueError:
        raise InvalidValue("date.format", "not a date: use YYYY-MM-DD or DD/MM/YYYY") from None


def parse_attribute(column: Column, text: str) -> object:
    kind = column.type or "string"
    if kind == "string":
        if column.values is not None and text not in column.values:
            raise InvalidValue("value.not_allowed", "not one of the values the agreement allows")
        return text
    if kind == "boolean":
        return parse_bool(text)
    if kind == "date":
        return parse_date(text)
    return _parse_number(column, kind, text)


def _parse_number(column: Column, kind: str, text: str) -> int | float:
    try:
        number: int | float = int(text) if kind == "integer" else float(text)
        if not math.isfinite(number):
            raise ValueError
    except ValueError:
        rule = "integer.format" if kind == "integer" else "number.format"
        raise InvalidValue(rule, f"must be {'a whole number' if kind == 'integer' else 'a number'}") from None
    if (column.minimum is not None and number < column.minimum) or (
        column.maximum is not None and number > column.maximum
    ):
        raise InvalidValue("value.range", f"must be between {column.minimum:g} and {column.maximum:g}")
    if column.step and int(number) % column.step:
        raise InvalidValue("value.step", f"must be a multiple of {column.step}")
    return number
