"""What the data protection officer does with the person index: the review queue, decisions, re-linking.

Every decision is audited with the reviewer, the pair's id and the decision, never values; a decided pair is kept
and obeyed by every later linkage run (`review.py`, `linkage.py`).
"""

from __future__ import annotations

from typing import Any

from shared.identity.index import PersonIndex
from shared.identity.review import DECISIONS, PENDING, AlreadyDecided, UnknownReview
from shared.platform.audit import AuditLog
from shared.platform.auth import Problem
from shared.platform.paging import PageRequest

STATUSES = (PENDING, "accepted", "rejected")


class IdentityService:
    def __init__(self, index: PersonIndex, audit: AuditLog) -> None:
        self.index, self.audit = index, audit

    def reviews(self, status: str, page: PageRequest) -> dict[str, Any]:
        """The queue as it stands after every upload and decision so far (the index is brought up to date)."""
        if status not in STATUSES:
            raise Problem(400, "Bad Request", f"status must be one of: {', '.join(STATUSES)}", field="status",
                          rule="review.status")
        self.index.ensure_linked()
        return self.index.reviews.listing(status, page)

    def decide(self, review_id: str, decision: object, actor: str) -> dict[str, Any]:
        if decision not in DECISIONS:
            raise Problem(400, "Bad Request", "decision must be accept or reject", field="decision",
                          rule="review.decision")
        try:
            decided = self.index.reviews.decide(review_id, str(decision), actor)
        except UnknownReview:
            raise Problem(404, "Not Found", "No review pair has that id.") from None
        except AlreadyDecided:
            raise Problem(409, "Conflict", "This pair has already been decided.") from None
        self.audit.append("identity.review.decided", {"review": review_id, "decision": decided["status"],
                                                      "kind": decided["kind"]}, actor=actor)
        summary = self.index.link()
        return {**decided, "linkage": summary}

    def split(self, person_keys: set[str], actor: str) -> dict[str, Any]:
        """Keep apart every group of records the person was joined from; audited, and obeyed by later runs."""
        if len(person_keys) != 1:
            raise Problem(409, "Conflict", "The identifiers given do not name exactly one person.")
        pairs = self.index.split(next(iter(person_keys)), actor)
        self.audit.append("identity.person.split", {"pairs_kept_apart": pairs}, actor=actor)
        return {"pairs_kept_apart": pairs, "linkage": self.index.link()}

    def link(self, actor: str) -> dict[str, Any]:
        summary = self.index.link()
        self.audit.append("identity.linked", summary, actor=actor)
        return summary
