"""Who is the same person: exact identifiers first, then a Fellegi-Sunter model over match-key tokens (Splink).

The input is every record the index holds (one per stored row): its person identifiers (`kind=pseudonym`), and
the tokens `matchkeys.py` made from its names, date of birth and postcode. Linking runs in four steps:

1. Exact: records sharing a person identifier are one entity (union-find). Group identifiers (a family
   reference) never take part. An entity whose records give two dates of birth is flagged as a conflict.
2. Scoring: Splink (DuckDB) scores candidate pairs of entities by how their tokens agree: names exactly, by
   formal form (Bob and Robert) or by sound; the date of birth exactly, with day and month swapped, or by month;
   the postcode, its sector or its district. The m probabilities are set from what is known about keying errors
   and house moves (`M_PROBABILITIES`). The u probabilities (chance agreement) start from figures for a local
   child population (`U_PROBABILITIES`) and, once the store is large enough to tell (`LEARN_FROM`), are estimated
   from random pairs of the data itself, as is the prior from pairs that agree on full name and date of birth.
3. Decisions first: a pair a person accepted is linked, a pair a person rejected (or a split) is kept apart,
   whatever the model says on this run or any later one.
4. Thresholds: pairs at or above `upper` link, unless linking would put two different identifiers of one kind
   (two NHS numbers) in one person, which is a conflict for review, or two different first names or dates of
   birth, which means two people (twins share everything else). A record that scores high against two entities
   that cannot be one person links to neither: it goes to review. Pairs between `lower` and `upper` go to review.

Each person gets a key in the platform's `subject` domain: the HMAC of their smallest identifier pseudonym (or
of their first record where they have none), so a person keeps their key while nothing about them changes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from shared.identity.matchkeys import LIST_COLUMNS, TOKEN_COLUMNS
from shared.identity.pseudonymise import Pseudonymiser

log = logging.getLogger("fdp.identity")

UPPER = 0.99
LOWER = 0.6
KIND_SEPARATOR = "="
"""Person identifiers are held as `<kind>=<pseudonym>`: two different values of one kind are two people."""

M_PROBABILITIES = {
    "first_name": {"exact": 0.88, "formal form": 0.04, "sound": 0.05, "different": 0.03},
    "surname": {"exact": 0.88, "one part": 0.04, "sound": 0.03, "different": 0.05},
    "date_of_birth": {"exact": 0.95, "day and month swapped": 0.015, "same month": 0.02, "different": 0.015},
    "postcode": {"exact": 0.72, "sector": 0.08, "district": 0.07, "different": 0.13},
}
"""What share of true matches fall in each level: keying errors are rare, nicknames and house moves are not."""
U_PROBABILITIES = {
    "first_name": {"exact": 0.01, "formal form": 0.015, "sound": 0.02, "different": 0.955},
    "surname": {"exact": 0.005, "one part": 0.002, "sound": 0.008, "different": 0.985},
    "date_of_birth": {"exact": 0.0006, "day and month swapped": 0.0005, "same month": 0.016, "different": 0.9829},
    "postcode": {"exact": 0.002, "sector": 0.03, "district": 0.12, "different": 0.848},
}
"""What share of two different children agree by chance: common names are about 1 in 100, a birth date in a
0-5 cohort about 1 in 1,800, a full postcode in a programme's few districts about 1 in 500."""
LEARN_FROM = 5_000
"""Records from which chance agreement and the prior are estimated from the data instead of the figures above."""


KIND_NAMES = {"nhs_number": "NHS numbers", "nhs_number_token": "NHS numbers", "upn": "unique pupil numbers",
              "partner_ref": "references from one partner", "partner_pseudonym": "pseudonyms from one partner"}
APART = "kept apart by a decision"
TWO_PEOPLE = ("first names differ", "dates of birth differ", APART)
"""Clashes that mean two people: no review needed (twins and siblings agree on everything else)."""


@dataclass
class Candidate:
    """A pair for a person to review, shown as an agreement pattern, never values."""

    first: str
    second: str
    """Record ids (`<ingest>:<row>`), the smaller first."""
    probability: float
    pattern: dict[str, str]
    kind: str
    """`review` (the model is unsure) or `conflict` (linking would break a rule)."""
    reason: str


@dataclass
class Decisions:
    accepted: set[tuple[str, str]] = field(default_factory=set)
    rejected: set[tuple[str, str]] = field(default_factory=set)


PERSONS_SCHEMA = pa.schema([("record", pa.string()), ("entity", pa.string()), ("person_key", pa.string())])


@dataclass
class Result:
    persons: pa.Table
    """record, entity (the record its exact identifiers gathered it under), person_key."""
    candidates: list[Candidate]
    summary: dict[str, int]


def pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, node: str) -> str:
        parent = self.parent
        root = parent.setdefault(node, node)
        while root != parent[root]:
            root = parent[root]
        while node != root:
            parent[node], node = root, parent[node]
        return root

    def union(self, a: str, b: str) -> str:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            ra, rb = min(ra, rb), max(ra, rb)
            self.parent[rb] = ra
        return ra


@dataclass
class _Profile:
    """What must agree for two entities to be one person."""

    ids: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    first: set[str] = field(default_factory=set)
    """First-name tokens: exact, formal forms and sound: any overlap means the names may be one."""
    born: set[str] = field(default_factory=set)
    """Date-of-birth tokens, swapped ones included."""
    months: set[str] = field(default_factory=set)
    """Birth-month tokens: two dates in one month are a keying error (twins share a day, siblings are months
    apart), so only dates in different months mean two people."""
    entities: set[str] = field(default_factory=set)
    apart: set[str] = field(default_factory=set)
    """Entities a person decided this one is not (a rejected pair, a split)."""

    def merge(self, other: _Profile) -> None:
        for kind, values in other.ids.items():
            self.ids[kind] |= values
        self.first |= other.first
        self.born |= other.born
        self.months |= other.months
        self.entities |= other.entities
        self.apart |= other.apart

    def clash(self, other: _Profile) -> str | None:
        """Why the two cannot be one person, or None."""
        if self.entities & other.apart or other.entities & self.apart:
            return APART
        if self.first and other.first and not self.first & other.first:
            return "first names differ"
        if self.born and other.born and not self.born & other.born and not self.months & other.months:
            return "dates of birth differ"
        for kind in sorted(self.ids.keys() & other.ids.keys()):
            if self.ids[kind] != other.ids[kind]:
                return f"two different {KIND_NAMES.get(kind.split(':')[0], 'identifiers of one kind')}"
        return None


def link(records: pa.Table, decisions: Decisions, root_key: bytes, *, upper: float = UPPER,
         lower: float = LOWER) -> Result:
    """Persons and review candidates for every record; pure: no storage, the same input gives the same result."""
    ids = records.column("ids").to_pylist()
    names = records.column("record").to_pylist()
    entities = _exact(names, ids)
    entity_of = [entities.find(name) for name in names]
    records = records.append_column("entity", pa.array(entity_of, pa.string()))
    profiles = _profiles(records)
    candidates = _dob_conflicts(records)
    scored = _score(records, lower)
    persons = _UnionFind()
    known = entities.parent
    for a, b in decisions.rejected:
        if a in known and b in known:
            ea, eb = entities.find(a), entities.find(b)
            profiles[ea].apart.add(eb)
            profiles[eb].apart.add(ea)
    for a, b in decisions.accepted:
        if a in known and b in known:
            _join(persons, profiles, entities.find(a), entities.find(b))
    candidates += _threshold(scored, persons, profiles, upper)
    person_of = [persons.find(entity) for entity in entity_of]
    keys = _person_keys(names, ids, person_of, root_key)
    summary = {"records": len(names), "entities": len(set(entity_of)), "persons": len(set(person_of)),
               "scored_pairs": len(scored), "review": sum(c.kind == "review" for c in candidates),
               "conflicts": sum(c.kind == "conflict" for c in candidates)}
    log.info("linkage: %s", summary)
    persons_table = pa.table({"record": names, "entity": entity_of, "person_key": keys}, schema=PERSONS_SCHEMA)
    return Result(persons_table, candidates, summary)


def _person_keys(names: list[str], ids: list[list[str] | None], person_of: list[str], root_key: bytes) -> list[str]:
    """A person's key is the HMAC of their smallest identifier pseudonym, or of their first record if none."""
    anchors: dict[str, tuple[int, str]] = {}
    for name, record_ids, person in zip(names, ids, person_of, strict=True):
        values = [value.split(KIND_SEPARATOR, 1)[1] for value in record_ids or []]
        anchor = (0, min(values)) if values else (1, f"record:{name}")
        anchors[person] = min(anchors.get(person, anchor), anchor)
    keyed = Pseudonymiser(root_key)
    keys = {person: keyed.pseudonym("person", anchor) for person, (_, anchor) in anchors.items()}
    return [keys[person] for person in person_of]


def _exact(names: list[str], ids: list[list[str] | None]) -> _UnionFind:
    entities = _UnionFind()
    first_seen: dict[str, str] = {}
    for name, record_ids in zip(names, ids, strict=True):
        entities.find(name)
        for value in record_ids or []:
            seen = first_seen.setdefault(value, name)
            if seen != name:
                entities.union(seen, name)
    return entities


def _profiles(records: pa.Table) -> dict[str, _Profile]:
    profiles: dict[str, _Profile] = defaultdict(_Profile)
    columns = {name: records.column(name).to_pylist() for name in
               ("entity", "ids", "first_name", "first_sound", "first_forms", "date_of_birth", "dob_swapped",
                "birth_month")}
    for i, entity in enumerate(columns["entity"]):
        profile = profiles[entity]
        profile.entities.add(entity)
        for value in columns["ids"][i] or []:
            kind, pseudonym = value.split(KIND_SEPARATOR, 1)
            profile.ids[kind].add(pseudonym)
        if columns["first_name"][i]:
            profile.first |= {columns["first_name"][i], columns["first_sound"][i], *(columns["first_forms"][i] or [])}
        if columns["date_of_birth"][i]:
            profile.born |= {columns["date_of_birth"][i]} | ({columns["dob_swapped"][i]} - {None})
            profile.months.add(columns["birth_month"][i])
    return profiles


def _dob_conflicts(records: pa.Table) -> list[Candidate]:
    """An identifier seen with two dates of birth (neither a day-month swap of the other) is flagged."""
    seen: dict[str, tuple[str, str, str | None]] = {}
    flagged: list[Candidate] = []
    columns = [records.column(name).to_pylist() for name in ("record", "entity", "date_of_birth", "dob_swapped")]
    for name, entity, born, swapped in zip(*columns, strict=True):
        if not born:
            continue
        earlier = seen.setdefault(entity, (name, born, swapped))
        if earlier[1] != born and earlier[2] != born and earlier[0] != name:
            flagged.append(Candidate(*pair(earlier[0], name), 1.0, {"date_of_birth": "different"}, "conflict",
                                     "one identifier with two dates of birth"))
            seen[entity] = (name, born, swapped)  # flag each further date once more, not every record
    return flagged


def _join(persons: _UnionFind, profiles: dict[str, _Profile], a: str, b: str) -> None:
    ra, rb = persons.find(a), persons.find(b)
    if ra != rb:
        root = persons.union(ra, rb)
        other = rb if root == ra else ra
        profiles[root].merge(profiles[other])


Scored = tuple[str, str, str, str, float, dict[str, str]]
"""Two records, their entities, the match probability and the agreement pattern."""


NAMED = ("exact", "formal form", "sound")
"""First-name levels that say the names may be one."""


def _threshold(scored: list[Scored], persons: _UnionFind, profiles: dict[str, _Profile],
               upper: float) -> list[Candidate]:
    """Pairs with first names on both sides are judged first; then pairs without names (a trust's rows), with
    ambiguity judged per person as linked so far. Ties are broken by record ids, so a run is repeatable."""
    ordered = sorted(scored, key=lambda item: (-item[4], item[0], item[1]))
    named = [item for item in ordered if item[5]["first_name"] != "missing"]
    nameless = [item for item in ordered if item[5]["first_name"] == "missing"]
    pending: dict[tuple[str, str], tuple[Candidate, str, str]] = {}
    _decide(named, _ambiguous(named, persons, profiles, upper), persons, profiles, upper, pending)
    _decide(nameless, _ambiguous_people(nameless, persons, profiles, upper), persons, profiles, upper, pending)
    return [candidate for candidate, ea, eb in pending.values() if persons.find(ea) != persons.find(eb)]


def _decide(scored: list[Scored], ambiguous: set[str], persons: _UnionFind, profiles: dict[str, _Profile],
            upper: float, pending: dict[tuple[str, str], tuple[Candidate, str, str]]) -> None:
    for a, b, ea, eb, probability, pattern in scored:
        ra, rb = persons.find(ea), persons.find(eb)
        if ra == rb:
            continue
        clash = profiles[ra].clash(profiles[rb])
        if probability >= upper and clash is None and a not in ambiguous and b not in ambiguous:
            _join(persons, profiles, ra, rb)
            continue
        if clash in TWO_PEOPLE or (clash and pattern["first_name"] in ("missing", "different")):
            continue  # two people; two identifiers with no name in common are neighbours or twins, not a conflict
        kind = "conflict" if clash else "review"
        reason = clash or ("scores high against two people" if probability >= upper else "the model is unsure")
        pending.setdefault(pair(ra, rb), (Candidate(*pair(a, b), round(probability, 6), pattern, kind, reason),
                                          ea, eb))


def _ambiguous(scored: list[Scored], persons: _UnionFind, profiles: dict[str, _Profile], upper: float) -> set[str]:
    """Records that score high against two people who cannot be one: they link to neither. Only partners the
    record could itself join count, where one of them agrees with it on the first name (a typo in one piece of a
    child must not block the record from the child)."""
    partners: dict[str, dict[str, dict[str, str]]] = defaultdict(dict)
    own: dict[str, str] = {}
    for a, b, ea, eb, probability, pattern in scored:
        if probability >= upper:
            for record, mine, other in ((a, ea, eb), (b, eb, ea)):
                own[record] = persons.find(mine)
                partners[record][persons.find(other)] = pattern
    ambiguous = set()
    for record, others in partners.items():
        candidates = sorted(others)
        joinable = [other for other in candidates if profiles[own[record]].clash(profiles[other]) is None]
        if any(others[other]["first_name"] in NAMED for other in joinable):
            candidates = joinable
        if _any_clash(candidates, profiles):
            ambiguous.add(record)
    return ambiguous


def _ambiguous_people(scored: list[Scored], persons: _UnionFind, profiles: dict[str, _Profile],
                      upper: float) -> set[str]:
    """Records whose person, as linked so far, scores high against two people who cannot be one."""
    partners: dict[str, set[str]] = defaultdict(set)
    for _, _, ea, eb, probability, _ in scored:
        if probability >= upper:
            partners[persons.find(ea)].add(persons.find(eb))
            partners[persons.find(eb)].add(persons.find(ea))
    torn = {person for person, others in partners.items() if _any_clash(sorted(others), profiles)}
    return {record for a, b, ea, eb, _, _ in scored for record, entity in ((a, ea), (b, eb))
            if persons.find(entity) in torn}


def _any_clash(people: list[str], profiles: dict[str, _Profile]) -> bool:
    return any(profiles[x].clash(profiles[y]) for i, x in enumerate(people) for y in people[i + 1:])


# Scoring ---------------------------------------------------------------------------------------------------

def _score(records: pa.Table, lower: float) -> list[Scored]:
    """Scored pairs of entity representatives (records with names, a date of birth or a postcode)."""
    people = _representatives(records)
    if people.num_rows < 2:
        return []
    predictions = _predict(people, lower)
    entity_of = dict(zip(people.column("unique_id").to_pylist(), people.column("entity").to_pylist(), strict=True))
    scored = []
    for row in predictions:
        a, b = row["unique_id_l"], row["unique_id_r"]
        if entity_of[a] == entity_of[b]:
            continue
        pattern = {name: _LEVELS[name][row[f"gamma_{name}"]] for name in _LEVELS}
        scored.append((a, b, entity_of[a], entity_of[b], float(row["match_probability"]), pattern))
    return scored


def _representatives(records: pa.Table) -> pa.Table:
    """One record per entity and distinct token pattern: a person sent monthly is scored once, not twelve times."""
    import pyarrow.compute as pc

    table = records.select(["record", *TOKEN_COLUMNS, *LIST_COLUMNS, "entity"])
    has_tokens = pc.or_(pc.is_valid(table.column("date_of_birth")),
                        pc.or_(pc.is_valid(table.column("first_name")), pc.is_valid(table.column("postcode"))))
    table = table.filter(has_tokens)
    entity = table.column("entity").to_pylist()
    signature = [f"{e}|{r}" for e, r in zip(entity, _token_signature(table), strict=True)]
    first_index: dict[str, int] = {}
    for index, key in enumerate(signature):
        first_index.setdefault(key, index)
    table = table.take(pa.array(sorted(first_index.values()), pa.int64()))
    return table.rename_columns(["unique_id" if name == "record" else name for name in table.column_names])


def _token_signature(table: pa.Table) -> list[str]:
    parts = [table.column(name).to_pylist() for name in TOKEN_COLUMNS]
    return ["|".join(str(value) for value in values) for values in zip(*parts, strict=True)]


def _level(sql: str, label: str) -> Any:
    import splink.comparison_level_library as cll

    return cll.CustomLevel(sql, label_for_charts=label)


def _comparisons() -> list[Any]:
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    def comparison(name: str, null_column: str, levels: list[tuple[str, str]]) -> Any:
        m, u = M_PROBABILITIES[name], U_PROBABILITIES[name]
        built: list[Any] = [cll.NullLevel(null_column)]
        built += [_level(sql, label).configure(m_probability=m[label], u_probability=u[label])
                  for sql, label in levels]
        built.append(cll.ElseLevel().configure(m_probability=m["different"], u_probability=u["different"]))
        return cl.CustomComparison(built, output_column_name=name)

    return [
        comparison("first_name", "first_name", [
            ("first_name_l = first_name_r", "exact"),
            ("len(list_intersect(first_forms_l, first_forms_r)) > 0", "formal form"),
            ("first_sound_l = first_sound_r", "sound")]),
        comparison("surname", "surname", [
            ("surname_l = surname_r", "exact"),
            ("len(list_intersect(surname_parts_l, surname_parts_r)) > 0", "one part"),
            ("surname_sound_l = surname_sound_r", "sound")]),
        comparison("date_of_birth", "date_of_birth", [
            ("date_of_birth_l = date_of_birth_r", "exact"),
            ("date_of_birth_l = dob_swapped_r OR dob_swapped_l = date_of_birth_r", "day and month swapped"),
            ("birth_month_l = birth_month_r", "same month")]),
        comparison("postcode", "postcode", [
            ("postcode_l = postcode_r", "exact"),
            ("sector_l = sector_r", "sector"),
            ("district_l = district_r", "district")]),
    ]


_LEVELS = {name: {-1: "missing", **{len(levels) - 1 - i: label for i, label in enumerate(levels)}}
           for name, levels in {
               "first_name": ["exact", "formal form", "sound", "different"],
               "surname": ["exact", "one part", "sound", "different"],
               "date_of_birth": ["exact", "day and month swapped", "same month", "different"],
               "postcode": ["exact", "sector", "district", "different"]}.items()}
"""Splink's gamma values: the else level (different) is 0, exact the highest, a missing value -1."""


def _predict(people: pa.Table, lower: float) -> list[dict[str, Any]]:
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    blocking: list[Any] = [block_on("date_of_birth"), block_on("first_sound", "surname_sound"),
                block_on("postcode", "birth_month"),
                "l.date_of_birth = r.dob_swapped"]
    settings = SettingsCreator(link_type="dedupe_only", comparisons=_comparisons(),
                               blocking_rules_to_generate_predictions=blocking,
                               retain_matching_columns=True, retain_intermediate_calculation_columns=False)
    import duckdb

    # DuckDB takes 80% of the machine by default; a linkage run shares it with the Functions host, so it spills.
    spill = Path(tempfile.gettempdir()) / "fdp-linkage"
    database = DuckDBAPI(duckdb.connect(config={"memory_limit": os.environ.get("FDP_LINKAGE_MEMORY", "2GB"),
                                                 "temp_directory": str(spill)}))
    linker = Linker(database.register(people), settings, log_level=None)
    _train(linker, people.num_rows)
    predictions = linker.inference.predict(threshold_match_probability=lower)
    table = predictions.as_duckdbpyrelation().to_arrow_table()
    return table.select(["unique_id_l", "unique_id_r", "match_probability",
                         *(f"gamma_{name}" for name in _LEVELS)]).to_pylist()


def _train(linker: Any, rows: int) -> None:
    """A small store keeps the population figures and a prior of one match per record; a large one learns chance
    agreement from random pairs and the prior from pairs that agree on full name and date of birth."""
    from splink import block_on

    settings = linker._settings_obj
    prior = min(0.5, 1.5 / max(rows, 2))
    settings._probability_two_random_records_match = prior
    if rows < LEARN_FROM:
        return
    linker.training.estimate_u_using_random_sampling(max_pairs=min(5e6, rows * 20.0), seed=7)
    with contextlib.suppress(Exception):  # too few agreeing pairs to estimate from: the prior above stands
        linker.training.estimate_probability_two_random_records_match(
            [block_on("first_name", "surname", "date_of_birth")], recall=0.8)
    if not 0 < settings._probability_two_random_records_match < 1:  # no names at all: nothing to estimate from
        settings._probability_two_random_records_match = prior
