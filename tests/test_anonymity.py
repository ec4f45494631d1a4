"""The extract's lattice search on its own (no storage): k counts people, l holds, the least lossy node wins."""

from __future__ import annotations

import itertools
import random

from shared.publishing.anonymity import Lattice, anonymise, check

PERSON = "research_id"
QUASI = ("postcode_district", "date_of_birth_month", "gender", "ethnicity")


def one_person_six_rows(postcode: str = "ZZ9") -> list[dict]:
    """One person sent in six monthly files with a combination nobody else has, and five people who share one."""
    alone = [{PERSON: "only-one", "postcode_district": postcode, "score": month} for month in range(6)]
    others = [{PERSON: f"p{n}", "postcode_district": "SW9", "score": n} for n in range(5)]
    return alone + others


def people_by_group(rows: list[dict], quasi: tuple[str, ...]) -> dict[tuple, set[str]]:
    found: dict[tuple, set[str]] = {}
    for row in rows:
        found.setdefault(tuple(row[q] for q in quasi), set()).add(row[PERSON])
    return found


def test_one_persons_six_rows_are_generalised_never_published_alone():
    """Six rows are one person: with no suppression allowed, the postcode is generalised until they are in a
    group of five people (here: suppressed, since ZZ and SW still differ)."""
    result = anonymise(one_person_six_rows(), ("postcode_district",), k=5, person=PERSON)
    published = people_by_group(result.rows, ("postcode_district",))
    group = next(people for people in published.values() if "only-one" in people)
    assert len(group) >= 5 and len(result.rows) == 11
    assert result.levels == {"postcode_district": "suppressed"}
    assert check(result.rows, ("postcode_district",), (), PERSON).k == 6


def test_one_persons_six_rows_are_suppressed_when_the_budget_allows():
    """With a budget of one person in six, their six rows go and everyone else keeps their district."""
    result = anonymise(one_person_six_rows(), ("postcode_district",), k=5, max_suppressed_percent=20, person=PERSON)
    assert {row[PERSON] for row in result.rows} == {f"p{n}" for n in range(5)}
    assert result.levels == {"postcode_district": "district"}
    assert (result.chosen.people_suppressed, result.chosen.rows_suppressed) == (1, 6)


def test_groups_without_l_distinct_sensitive_values_are_not_published():
    """Five people in M14 all on a child protection plan: k = 5 holds, but the group would tell a recipient
    every M14 child's status. With l = 2 the postcode is generalised to the area, where statuses mix."""
    rows = [{PERSON: f"a{n}", "postcode_district": "M14", "status": "child_protection"} for n in range(5)]
    rows += [{PERSON: f"b{n}", "postcode_district": "M8", "status": s} for n, s in enumerate(["none", "cin"] * 3)]
    assert anonymise(rows, ("postcode_district",), k=5, person=PERSON).levels == {"postcode_district": "district"}
    result = anonymise(rows, ("postcode_district",), k=5, sensitive=("status",), l=2, person=PERSON)
    assert result.levels == {"postcode_district": "area"}
    assert check(result.rows, ("postcode_district",), ("status",), PERSON).l == 3


def population(people: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for n in range(people):
        person = {PERSON: f"p{n}", "postcode_district": rng.choice(["M8", "M9", "M14", "SK4", "SK8"]),
                  "date_of_birth_month": f"{rng.randint(2015, 2022)}-{rng.randint(1, 12):02d}",
                  "gender": rng.choice(["female", "male"]),
                  "ethnicity": rng.choices(["WBRI", "WOTH", "APKN", "BAFR", "MWBC"], [10, 2, 3, 3, 1])[0]}
        for _ in range(rng.choice([1, 1, 2, 3])):
            rows.append({**person, "status": rng.choice(["none", "early_help", "child_in_need"])})
    return rows


def test_the_search_finds_the_least_lossy_acceptable_node_that_checking_every_node_finds():
    for seed, budget in ((1, 0), (2, 2), (3, 5)):
        rows = population(400, seed)
        result = anonymise(rows, QUASI, k=5, sensitive=("status",), l=2, max_suppressed_percent=budget,
                           person=PERSON)
        lattice = Lattice(rows, QUASI, ("status",), 5, 2, budget, PERSON)
        every = [lattice.evaluate(node) for node in itertools.product(*(range(h.height + 1)
                                                                          for h in lattice.hierarchies))]
        best = min(e.loss for e in every if e.acceptable)
        assert abs(result.chosen.loss - best) < 1e-12
        assert result.search["checked"] < len(every), "the bound spares most nodes a count"
        achieved = check(result.rows, QUASI, ("status",), PERSON)
        assert achieved.k >= 5 and (achieved.l or 0) >= 2 and achieved.risk_max <= 0.2
        assert result.chosen.people_suppressed <= 400 * budget // 100


def test_loss_is_the_share_of_detail_lost():
    """Districts M8, M9 and M14 all in area M: showing the area loses the whole column (LM = 1); keeping the
    district loses nothing; suppressing loses everything."""
    rows = [{PERSON: f"p{n}", "postcode_district": d} for n, d in enumerate(["M8", "M9", "M14"] * 5)]
    lattice = Lattice(rows, ("postcode_district",), (), 5, 1, 0, PERSON)
    assert [lattice.evaluate((level,)).loss for level in range(3)] == [0.0, 1.0, 1.0]
    mixed = rows + [{PERSON: f"q{n}", "postcode_district": "SK4"} for n in range(5)]
    lattice = Lattice(mixed, ("postcode_district",), (), 5, 1, 0, PERSON)
    assert lattice.evaluate((1,)).loss == (15 * 2 / 3) / 20, "three of four districts merged: 2/3 lost each"
