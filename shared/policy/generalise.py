"""Generalisation of quasi-identifiers: postcodes to district or sector, dates of birth to a month or an age."""

from __future__ import annotations

import re
from datetime import date

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
