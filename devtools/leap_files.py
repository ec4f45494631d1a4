"""LEAP's three partners' files about one synthetic population, as `make demo` drops them.

The NHS trust, the family support charity and the nursery see the same children (devtools/population.py), each
in its own way: the trust sends the child's NHS number and name tokenised on its own machine with the programme's
source key (`python -m shared.identity.source`), a postcode and a date of birth; the charity sends a family reference,
the child's name and sometimes the NHS number; the nursery its own child reference and the name. Names carry
nicknames, typos and swapped dates; families move house. The platform must find the same children across all
three, which is what LEAP's question, "which services, or combination of services, have the greatest impact",
needs. Every value not about identity (visit types, ASQ-3 scores, sessions) comes from devtools/synthetic.py.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from devtools import population, synthetic
from shared.identity.matchkeys import SourceNames, identity_from
from shared.identity.source import SourceTokens, source_key
from shared.policy.loader import Policy

TRUST, CHARITY, NURSERY = "nhs-community-health", "family-support-charity", "early-years-setting"
SERVICES = (
    population.Service("health-visiting", 0.9, (1, 3), 1.0, "tokens", False),
    population.Service("family-support-charity", 0.5, (2, 5), 0.4, "full", False),
    population.Service("early-years-setting", 0.6, (2, 3), 0.3, "full", True),
)
DATASETS = {"health-visiting": (TRUST, "health-visits"), "family-support-charity": (CHARITY, "sessions"),
            "early-years-setting": (NURSERY, "asq-assessments")}
CHARITY_SERVICES = ("baby_steps", "parent_infant_relationship", "family_nurse")


def partner_files(policy: Policy, root_key: bytes, *, families: int = 900, seed: int = 11,
                  today: date = date(2026, 11, 1)) -> list[synthetic.SyntheticFile]:
    """One file per partner about one population; the trust's NHS numbers tokenised with the source key."""
    people = population.population(policy, families, seed=seed, today=today)
    by_service: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for seen in population.observations(people, services=SERVICES):
        by_service[seen["service"]].append(seen)
    tokens = SourceTokens(source_key(root_key))
    names = SourceNames(source_key(root_key))
    rng = random.Random(seed)  # noqa: S311 - synthetic data
    files = []
    for service, rows in by_service.items():
        partner, dataset = DATASETS[service]
        spec = policy.partners[partner].datasets[dataset]
        generator = synthetic._Generator(policy, spec, seed, today)
        records = [_row(generator.row(), seen, (tokens, names), rng, today) for seen in rows]
        header = [column.name for column in spec.contract.columns]
        files.append(synthetic.SyntheticFile(partner, dataset, f"{dataset}-autumn.csv",
                                             synthetic._csv(header, records), header, records))
    return files


def _row(values: dict[str, str], seen: dict[str, Any], source: tuple[SourceTokens, SourceNames],
         rng: random.Random, today: date) -> dict[str, str]:
    """The generated row with the child's identity as this service wrote it; events after the birth."""
    born: date | None = seen["date_of_birth"]
    event = (born or today - timedelta(days=700)) + timedelta(days=rng.randint(60, 1400))
    event = min(event, today - timedelta(days=1))
    for name in ("visit_date", "session_date", "assessment_date"):
        if name in values:
            values[name] = event.isoformat()
    values.update({"date_of_birth": born.isoformat() if born else "", "child_postcode": seen["postcode"] or ""})
    tokens, names = source
    if "nhs_pseudonym" in values:
        values["nhs_pseudonym"] = tokens.token(seen["nhs_number"]) if seen["nhs_number"] else ""
    if "name_tokens" in values:
        named = identity_from({"first_name": seen["first"], "surname": seen["surname"]})
        values["name_tokens"] = names.text(named.first, named.surname, born)
    if "nhs_number" in values:
        values["nhs_number"] = seen["nhs_number"] or ""
    if "child_name" in values:
        values["child_name"] = seen["full_name"] or f"{seen['first']} {seen['surname']}"
    if "family_ref" in values:
        values["family_ref"] = seen["family_ref"]
        usual = CHARITY_SERVICES[int(seen["truth"].lstrip("c")) % len(CHARITY_SERVICES)]  # each child's own
        values["service"] = usual if rng.random() < 0.8 else rng.choice(CHARITY_SERVICES)
    if "child_ref" in values:
        values["child_ref"] = seen["child_ref"]
    if "consent" in values:
        values["consent"] = "Y" if rng.random() < 0.95 else "N"
    return values
