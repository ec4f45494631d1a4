"""Generalisation of quasi-identifiers: postcodes to district or sector, dates of birth to a month or an age."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

# Outward code: area letters, district digits (and optional letter); inward code: sector digit and unit letters
# (the unit letters never use C, I, K, M, O or V).
_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?)\s*([0-9])([ABD-HJLNP-UW-Z]{2})$")


class InvalidValue(ValueError):
    """A value failed a rule; carries the rule's name and a message, never the value."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


def _postcode_parts(value: str) -> tuple[str, str]:
    match = _POSTCODE.match(value.strip().upper())
    if not match:
        raise InvalidValue("postcode.format", "not a full UK postcode (for example SW9 8AB)")
    return match.group(1), match.group(2)


def full_postcode(value: str) -> str:
    """`sw98ab` -> `SW9 8AB`: the whole postcode, normalised, for match keys only (never stored)."""
    match = _POSTCODE.match(value.strip().upper())
    if not match:
        raise InvalidValue("postcode.format", "not a full UK postcode (for example SW9 8AB)")
    return f"{match.group(1)} {match.group(2)}{match.group(3)}"


def postcode_district(value: str) -> str:
    """`SW9 8AB` -> `SW9`."""
    return _postcode_parts(value)[0]


def postcode_sector(value: str) -> str:
    """`SW9 8AB` -> `SW9 8`."""
    outward, sector = _postcode_parts(value)
    return f"{outward} {sector}"


def birth_month(value: date) -> str:
    return f"{value.year:04d}-{value.month:02d}"


def age_in_months(born: date, at: date) -> int:
    """Completed months of age on the event date."""
    months = (at.year - born.year) * 12 + at.month - born.month - (at.day < born.day)
    if months < 0:
        raise InvalidValue("age.before_birth", "the event date is before the date of birth")
    return months


# Hierarchies for research extracts ---------------------------------------------------------------------------
# Each quasi-identifier, as stored, can be shown less precisely, one level at a time, up to suppressed (blank).
# The extract's lattice search (shared/publishing/anonymity.py) picks one level per quasi-identifier.


@dataclass(frozen=True)
class Hierarchy:
    """A stored quasi-identifier's generalisation levels: level 0 is the stored value, the last is suppressed."""

    levels: tuple[str, ...]
    """What each level shows, for the extract's manifest (for example district, area, suppressed)."""
    step: Callable[[Any, int], Any]
    """The value at a level between 1 and height - 1 (both ends are handled by `apply`)."""

    @property
    def height(self) -> int:
        return len(self.levels) - 1

    def apply(self, value: Any, level: int) -> Any:
        if value is None or level == 0:
            return value
        return None if level >= self.height else self.step(value, level)


def _postcode_step(value: Any, level: int, sector: bool) -> Any:
    outward = str(value).split()[0]  # SW9 8 -> SW9
    area = re.match(r"[A-Z]*", outward)  # SW9 -> SW; `*` always matches
    steps = ([outward] if sector else []) + [area.group(0) if area else ""]
    return steps[level - 1]


def _month_step(value: Any, level: int) -> Any:
    """2021-06 -> 2021-Q2 -> 2021 -> 2020-2024."""
    text = str(value)
    if not re.fullmatch(r"\d{4}-\d{2}", text):
        return None
    year, month = int(text[:4]), int(text[5:])
    if level == 1:
        return f"{year}-Q{(month - 1) // 3 + 1}"
    if level == 2:
        return str(year)
    return f"{year // 5 * 5}-{year // 5 * 5 + 4}"


_AGE_BANDS = (6, 12, 24, 60)  # months


def _age_step(value: Any, level: int) -> Any:
    """17 months -> 12-17 -> 12-23 -> 0-23 -> 0-59."""
    band = _AGE_BANDS[level - 1]
    start = int(value) // band * band
    return f"{start}-{start + band - 1}"


def _ethnicity_step(value: Any, level: int) -> Any:
    """DfE codes to their major group: WBRI -> W (White), BAFR -> B (Black), and so on."""
    return str(value)[:1]


def hierarchy(column: str) -> Hierarchy:
    """The hierarchy of a stored column, by the name ingest gave it (see Column.output_name)."""
    if column.endswith("_sector"):
        return Hierarchy(("sector", "district", "area", "suppressed"), lambda v, n: _postcode_step(v, n, True))
    if column.endswith("_district"):
        return Hierarchy(("district", "area", "suppressed"), lambda v, n: _postcode_step(v, n, False))
    if column.endswith("_month"):
        return Hierarchy(("month", "quarter", "year", "5 years", "suppressed"), _month_step)
    if column.endswith("_age_months"):
        return Hierarchy(("month", "6 months", "year", "2 years", "5 years", "suppressed"), _age_step)
    if column == "ethnicity":
        return Hierarchy(("code", "major group", "suppressed"), _ethnicity_step)
    return Hierarchy(("value", "suppressed"), lambda v, n: None)
