"""Disclosure rules as the policy declares them: which counts are hidden, how the rest are rounded, and when a sum
or mean is dominated by a few people.

A value type only; protecting a table by these rules is publishing's work (`shared.publishing.disclosure`).

The defaults follow ACRO, the output checker of UK trusted research environments (its `default.yaml`): counts
below 10 are hidden (`safe_threshold: 10`); a sum or mean fails if its two largest contributors make up more than
90% of it (`safe_nk_n: 2`, `safe_nk_k: 0.90`) or if what the others contribute is less than 10% of the largest
(`safe_pratio_p: 0.10`: the second largest could then estimate the largest to within 10%); a cell of fewer than
two contributors, or with nothing to share out, fails too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

RULES = ("threshold", "hospital", "ons-10-5")
DEFAULT_THRESHOLD = 10
SPECIAL_CATEGORY_THRESHOLD = 20
"""The smallest count published from special-category data (UK GDPR Art 9: health, ethnicity, religion,
safeguarding) unless the policy states its own threshold: twice ACRO's default of 10, which a research
environment is expected to raise for more sensitive data. The figure is this platform's choice."""


@dataclass(frozen=True)
class Dominance:
    """The (n,k) rule and the p% rule for sums and means (ACRO's `nk-rule` and `p-ratio`)."""

    n: int = 2
    k: float = 0.90
    """The n largest contributions may make up at most this share of the cell."""
    p: float = 0.10
    """What the others contribute must be at least this share of the largest."""

    def failure(self, contributions: Sequence[float]) -> str | None:
        """Which rule a cell of these per-person contributions breaks, or None. Contributions are taken by
        size (a large loss reveals as much as a large gain)."""
        sizes = sorted((abs(float(c)) for c in contributions), reverse=True)
        total = sum(sizes)
        if len(sizes) < 2 or total <= 0:
            return "fewer than two contributors"
        if sum(sizes[:self.n]) > self.k * total:
            return f"{self.n} contributors make up more than {self.k:.0%}"
        if (total - sizes[0] - sizes[1]) < self.p * sizes[0]:
            return f"the others make up less than {self.p:.0%} of the largest"
        return None


@dataclass(frozen=True)
class Rule:
    """`threshold`: counts from 1 to threshold-1 hidden. `hospital`: 1 to 7 hidden, the rest rounded to the
    nearest 5 (NHS hospital statistics). `ons-10-5`: 1 to 9 hidden, the rest rounded to the nearest 5.

    Where the report reads special-category data, the smallest count published is SPECIAL_CATEGORY_THRESHOLD
    for every kind unless the policy states a threshold of its own (kind `threshold` with `threshold:`); without
    special-category data and a stated threshold it is DEFAULT_THRESHOLD."""

    kind: str = "threshold"
    threshold: int | None = None
    special_category: bool = False
    dominance: Dominance = field(default_factory=Dominance)

    def __post_init__(self) -> None:
        if self.kind not in RULES:
            raise ValueError(f"rule must be one of {RULES}")

    @property
    def smallest_published(self) -> int:
        if self.kind == "threshold" and self.threshold is not None:
            return self.threshold
        floor = SPECIAL_CATEGORY_THRESHOLD if self.special_category else 0
        return max(floor, {"threshold": DEFAULT_THRESHOLD, "hospital": 8, "ons-10-5": 10}[self.kind])

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
