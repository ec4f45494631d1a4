"""Disclosure rules as the policy declares them: which counts are hidden and how the rest are rounded.

A value type only; protecting a table by these rules is publishing's work (`shared.publishing.disclosure`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

RULES = ("threshold", "hospital", "ons-10-5")


@dataclass(frozen=True)
class Rule:
    """`threshold`: counts from 1 to threshold-1 hidden (default 10). `hospital`: 1 to 7 hidden, the rest rounded
    to the nearest 5 (NHS hospital statistics). `ons-10-5`: 1 to 9 hidden, the rest rounded to the nearest 5."""

    kind: str = "threshold"
    threshold: int = 10

    def __post_init__(self) -> None:
        if self.kind not in RULES:
            raise ValueError(f"rule must be one of {RULES}")

    @property
    def smallest_published(self) -> int:
        return {"threshold": self.threshold, "hospital": 8, "ons-10-5": 10}[self.kind]

    @property
    def rounds(self) -> bool:
        return self.kind != "threshold"

    def hides(self, count: int) -> bool:
        return 0 < count < self.smallest_published

    def publish(self, count: int) -> int:
        return 5 * math.floor(count / 5 + 0.5) if self.rounds else count

    def bounds(self, published: int) -> tuple[float, float]:
        """What a published value tells an attacker about the true count."""
        return (max(0.0, published - 2.0), published + 2.0) if self.rounds else (float(published), float(published))
