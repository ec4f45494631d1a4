"""One shape for every list the HTTP API answers: `?limit=&page=<opaque token>` gives
`{"items": [...], "next": <token or null>}`; the next page is asked for with `page=<next>`.

Two kinds of token hide behind the same opaque string:

- where a list is in its table's own key order, the token is the Azure Tables continuation token
  (`table_page`): the service pages, and nothing is read twice;
- where a list promises an order the keys do not give (soonest due first, newest first, conflicts first), the
  set is read, sorted, and the token is the sort key of the last item shown (`sorted_page`): a later page starts
  after it, so an item added or removed meanwhile neither repeats nor shifts the pages.

A token names the list it belongs to, so one list's token given to another is a clear 400, as is a token that is
not one of ours. A token carries keys (ids, dates), never personal data.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from azure.data.tables import TableClient

from shared.platform.auth import Problem

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
Item = TypeVar("Item")


@dataclass(frozen=True)
class PageRequest:
    """What the caller asked for: how many items at most, and after which token (None: the first page)."""

    list_name: str
    limit: int = DEFAULT_LIMIT
    token: str | None = None

    @classmethod
    def from_params(cls, list_name: str, params: Mapping[str, str]) -> PageRequest:
        raw_limit = params.get("limit")
        limit = DEFAULT_LIMIT
        if raw_limit is not None:
            if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
                raise Problem(400, "Bad Request", f"limit must be a whole number from 1 to {MAX_LIMIT}.",
                              field="limit", rule="page.limit")
            limit = int(raw_limit)
        return cls(list_name, limit, params.get("page") or None)

    def position(self, kind: str) -> Any:
        """The token's content for this list, or None on the first page; a 400 if it is not this list's."""
        if self.token is None:
            return None
        try:
            decoded = json.loads(base64.urlsafe_b64decode(self.token.encode("ascii") + b"=="))
        except (UnicodeEncodeError, binascii.Error, ValueError):
            decoded = None
        if not isinstance(decoded, dict) or decoded.get("list") != self.list_name or kind not in decoded:
            raise Problem(400, "Bad Request", "page must be the `next` token of an earlier page of this list.",
                          field="page", rule="page.token")
        return decoded[kind]

    def token_for(self, kind: str, position: Any) -> str:
        text = json.dumps({"list": self.list_name, kind: position}, separators=(",", ":"))
        return base64.urlsafe_b64encode(text.encode()).decode("ascii").rstrip("=")


def page_body(items: Sequence[Any], next_token: str | None) -> dict[str, Any]:
    return {"items": list(items), "next": next_token}


def sorted_page(items: Sequence[Item], key: Callable[[Item], tuple[str, ...]], request: PageRequest, *,
                descending: bool = False) -> tuple[list[Item], str | None]:
    """One page of `items` (already in order by `key`, ascending or `descending`), after the token's key, and
    the next token."""
    after = request.position("after")
    if after is not None:
        if not isinstance(after, list) or not all(isinstance(part, str) for part in after):
            raise Problem(400, "Bad Request", "page must be the `next` token of an earlier page of this list.",
                          field="page", rule="page.token")
        last = tuple(after)
        items = [item for item in items if (key(item) < last if descending else key(item) > last)]
    shown = list(items[:request.limit])
    more = len(items) > request.limit
    return shown, request.token_for("after", list(key(shown[-1]))) if more and shown else None


def table_page(table: TableClient, query: str, request: PageRequest,
               parameters: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a table query in the table's key order, through the service's continuation token."""
    continuation = request.position("table")
    if continuation is not None and not (isinstance(continuation, dict) and set(continuation) <= {
            "PartitionKey", "RowKey"}):
        raise Problem(400, "Bad Request", "page must be the `next` token of an earlier page of this list.",
                      field="page", rule="page.token")
    pages = table.query_entities(query, parameters=parameters, results_per_page=request.limit).by_page(
        continuation_token=continuation)  # type: ignore[arg-type]  # Tables continues from a dict
    rows = [dict(row) for row in next(pages, [])]
    following = pages.continuation_token  # type: ignore[attr-defined]
    return rows, request.token_for("table", following) if following else None
