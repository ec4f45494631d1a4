"""When a rights request is due: one calendar month from receipt, on a working day in England.

One calendar month is the same date next month, or that month's last day when it has no such date; a due date
on a weekend or an English bank holiday moves to the next working day. An extension adds two further months.
"""

from __future__ import annotations

from datetime import date, timedelta

import holidays

from shared.policy.retention_rules import Offset, add_offset

RESPONSE_TIME = Offset(months=1)
EXTENDED_RESPONSE_TIME = Offset(months=3)


def next_working_day(day: date) -> date:
    bank_holidays = holidays.country_holidays("GB", subdiv="ENG", years=range(day.year, day.year + 2))
    while day.weekday() >= 5 or day in bank_holidays:
        day += timedelta(days=1)
    return day


def due_date(received: date, *, extended: bool = False) -> date:
    return next_working_day(add_offset(received, EXTENDED_RESPONSE_TIME if extended else RESPONSE_TIME))
