"""Retention rules and the purge month every stored row carries.

A purge month is the month at whose end a row becomes due for deletion. It is computed from the rule's anchor
plus the rule's offset, capped where the rule says so, and rounded up to the month end, so that the stored
month reveals no more than the generalised data does (a birth month, never a birth date).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date

ANCHORS = ("received", "date_of_birth", "programme_end", "column")


@dataclass(frozen=True)
class Offset:
    years: int = 0
    months: int = 0


@dataclass(frozen=True)
class RetentionRule:
    anchor: str
    offset: Offset
    column: str | None = None
    """The date column the anchor reads, for `date_of_birth` and `column` anchors."""
    cap: Offset | None = None
    """At most this long after programme end, whatever the anchor says (LEAP: no longer than 25 years)."""

    @property
    def reads_column(self) -> bool:
        return self.anchor in ("date_of_birth", "column")


def fingerprint(rule: RetentionRule) -> str:
    """A short, stable description of a rule: stored with each curated file, so a changed rule is noticed."""
    anchor = f"{rule.anchor}:{rule.column}" if rule.column else rule.anchor
    cap = f";cap+{rule.cap.years}y{rule.cap.months}m" if rule.cap else ""
    return f"{anchor}+{rule.offset.years}y{rule.offset.months}m{cap}"


def describe(rule: RetentionRule) -> str:
    anchor = {"received": "the date received", "date_of_birth": "the date of birth",
              "programme_end": "the programme's end", "column": f"the date in {rule.column}"}[rule.anchor]
    text = f"{rule.offset.years} years {rule.offset.months} months after {anchor}, to the month end"
    return text + (f", at most {rule.cap.years} years {rule.cap.months} months after programme end" if rule.cap else "")


def due(purge_month_text: str, on: date) -> bool:
    """A row is due on the first day after its purge month ends, and not a day before."""
    year, month = map(int, purge_month_text.split("-"))
    return on > date(year, month, calendar.monthrange(year, month)[1])


def add_offset(day: date, offset: Offset) -> date:
    """Calendar arithmetic: 29 February plus whole years lands on 28 February."""
    months = day.month - 1 + offset.months + 12 * offset.years
    year, month = day.year + months // 12, months % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def month_end(day: date) -> date:
    return date(day.year, day.month, calendar.monthrange(day.year, day.month)[1])


def purge_month(rule: RetentionRule, *, received: date, programme_end: date | None, anchor_value: date | None) -> str:
    """The purge month (YYYY-MM) of one row; `anchor_value` is the row's anchor date where the rule reads one."""
    if rule.anchor == "received":
        anchor = received
    elif rule.anchor == "programme_end":
        anchor = _require(programme_end, "programme_end")
    else:
        anchor = _require(anchor_value, rule.column or rule.anchor)
    due = add_offset(anchor, rule.offset)
    if rule.cap is not None:
        due = min(due, add_offset(_require(programme_end, "programme_end"), rule.cap))
    return month_end(due).strftime("%Y-%m")


def _require(value: date | None, what: str) -> date:
    if value is None:
        raise ValueError(f"retention anchor {what} has no date")
    return value
