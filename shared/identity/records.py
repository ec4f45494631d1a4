"""What one stored row tells the person index: its identifiers by kind, its groups and its match keys.

Both ingest paths use this module, so a row's record is the same whichever path read it:
- person identifiers are held as `<kind>=<pseudonym>` (kind: `nhs_number`, `upn`, `partner_ref:<partner>`, ...);
  a raw NHS number also yields the pseudonym of its source token (kind `nhs_number_token`), which is how a trust's
  pre-pseudonymised rows meet other partners' rows about the same child;
- group identifiers (a family reference) are kept apart: they never link two people;
- names, the birth date and the full postcode become match-key tokens and strong keys (`matchkeys.py`).
The suppression register is checked against a row's person identifiers and strong keys, never its groups.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from shared.identity.linkage import KIND_SEPARATOR
from shared.identity.matchcolumns import drop_nulls, empty_lists
from shared.identity.matchkeys import LIST_COLUMNS, STRONG_KEYS, TOKEN_COLUMNS, MatchKeys, identity_from
from shared.identity.pseudonymise import Pseudonymiser, scoped_type
from shared.identity.source import TOKEN_TYPE, SourceTokens


@dataclass
class RowRecord:
    ids: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    strong_keys: list[str] = field(default_factory=list)
    tokens: dict[str, object] = field(default_factory=dict)

    @property
    def suppression_keys(self) -> list[str]:
        """What the suppression register is checked against: person pseudonyms and strong match keys."""
        return [value.split(KIND_SEPARATOR, 1)[1] for value in self.ids] + self.strong_keys

    def columns(self, prefix: str, tokens: bool = True) -> dict[str, object]:
        """The record's linkage columns as the curated writer carries them (the tokens only where the contract
        sends anything to match on)."""
        out: dict[str, object] = {f"{prefix}ids": self.ids, f"{prefix}groups": self.groups,
                                  f"{prefix}strong_keys": self.strong_keys}
        if not tokens:
            return out
        out.update({f"{prefix}{name}": self.tokens.get(name) for name in TOKEN_COLUMNS})
        out.update({f"{prefix}{name}": self.tokens.get(name) or [] for name in LIST_COLUMNS})
        return out


class RecordMaker:
    """Builds each row's record under the root key: one per upload."""

    def __init__(self, root_key: bytes, pseudonymiser: Pseudonymiser, partner: str,
                 previous_keys: Sequence[bytes] = ()) -> None:
        self.partner = partner
        self.pseudonymiser = pseudonymiser
        self.sources = SourceTokens.from_root_key(root_key)
        self.match_keys = MatchKeys(root_key)
        self.previous = [RecordMaker(key, Pseudonymiser(key), partner) for key in previous_keys]
        """After a rotation, each earlier key's maker: a row also carries its identifiers' pseudonyms under them, so
        it meets rows stored before the rotation and the register's earlier entries still drop it."""

    def kind(self, id_type: str) -> str:
        return scoped_type(id_type, self.partner)

    def token_pseudonym(self, nhs_number: str) -> str:
        """The platform pseudonym of a raw NHS number's source token: what a trust's token is re-keyed to."""
        return self.pseudonymiser.pseudonym(TOKEN_TYPE, self.sources.token(nhs_number))

    def person_ids(self, id_type: str, value: str, pseudonym: str) -> list[str]:
        """`<kind>=<pseudonym>` of one person identifier, and of its source token where it is an NHS number."""
        ids = [f"{self.kind(id_type)}{KIND_SEPARATOR}{pseudonym}"]
        if id_type == "nhs_number":
            ids.append(f"{TOKEN_TYPE}{KIND_SEPARATOR}{self.token_pseudonym(value)}")
        return ids

    def record(self, identifiers: Iterable[tuple[str, bool, str, str]], match: Mapping[str, object]) -> RowRecord:
        """identifiers: (id_type, names a person, normalised value, pseudonym); match: the contract's match values."""
        record = RowRecord()
        for id_type, person, value, pseudonym in identifiers:
            if not person:
                record.groups.append(pseudonym)
                continue
            record.ids += self.person_ids(id_type, value, pseudonym)
            for earlier in self.previous:
                scoped = self.kind(id_type)
                record.ids += earlier.person_ids(id_type, value, earlier.pseudonymiser.pseudonym(scoped, value))
        if match:
            identity = identity_from(match)
            if not identity.empty:
                record.tokens = self.match_keys.tokens(identity)
                keys = self.match_keys.keys(identity)
                record.strong_keys = [key for name in STRONG_KEYS for key in keys.get(name, [])]
        return record


def id_lists(columns: Sequence[tuple[str | None, pa.Array]], rows: int) -> pa.ListArray:
    """Per row, the list of `<kind>=<pseudonym>` (just the pseudonym where the kind is None) of the given pseudonym
    columns, nulls dropped: the columnar path's `ids` and `groups`."""
    import pyarrow.compute as pc

    if not columns:
        return empty_lists(rows)
    prefixed = [values if kind is None else
                pc.binary_join_element_wise(pa.scalar(f"{kind}{KIND_SEPARATOR}"), values, "")
                for kind, values in columns]
    width = len(prefixed)
    order = (np.arange(rows)[:, None] + np.arange(width)[None, :] * rows).ravel()
    values = pa.concat_arrays([_flat(array) for array in prefixed]).take(pa.array(order))
    offsets = pa.array(np.arange(0, rows * width + 1, width, dtype=np.int32))
    lists = pa.ListArray.from_arrays(offsets, values)
    return drop_nulls(lists)


def _flat(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
