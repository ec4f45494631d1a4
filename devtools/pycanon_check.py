"""Measure the extract's own k and l check (shared/publishing/anonymity.check) against pycanon on samples.

pycanon is not a dependency: its releases pin exact versions (1.3.6: numpy==2.0.2, scipy==1.15.3, pandas==2.3.3,
reportlab, pyreadstat, typer), so installing it would downgrade the platform's numpy and scipy. Its
`pycanon.anonymity` module itself imports and runs with the platform's numpy and pandas, so this script uses a copy
unpacked beside the project, never installed into the venv:

    .venv/bin/python -m pip download --no-deps pycanon==1.3.6 -d .pycanon
    (cd .pycanon && unzip -q -o pycanon-1.3.6-py3-none-any.whl)
    PYTHONPATH=.pycanon .venv/bin/python -m devtools.pycanon_check

For each sample (synthetic people, one to three rows each, as people sent in several files are) it anonymises the
rows as an extract would, then compares, on the published rows:
- k over distinct people (ours) with pycanon's k on one row per person and combination (pycanon counts rows);
- distinct l on the sensitive attribute (ours) with pycanon's l_diversity;
- pycanon's k on the rows as published, which overstates k wherever a person has several rows.
Suppressed values (None) are given to pycanon as "*": pandas' groupby, which pycanon uses, drops rows whose key
is missing, so pycanon would skip every row with a suppressed quasi-identifier.
"""

from __future__ import annotations

import random

import pandas as pd
from pycanon import anonymity  # type: ignore[import-not-found]

from shared.publishing.anonymity import anonymise, check

PERSON = "research_id"
QUASI = ["postcode_district", "date_of_birth_month", "gender", "ethnicity"]
SENSITIVE = ["social_care_status"]
DISTRICTS = ["M8", "M9", "M11", "M12", "M13", "M14", "M18", "M22", "M40"]
ETHNICITY = {"WBRI": 50, "WOTH": 5, "APKN": 12, "ABAN": 3, "BAFR": 8, "BCRB": 3, "MWBC": 4, "CHNE": 2, "OOTH": 3}
STATUSES = ["none", "early_help", "child_in_need", "child_protection", "looked_after"]


def sample(people: int, seed: int) -> list[dict]:
    rng = random.Random(seed)  # noqa: S311 - synthetic data
    rows = []
    for n in range(people):
        person = {PERSON: f"p{n}", "postcode_district": rng.choice(DISTRICTS),
                  "date_of_birth_month": f"{rng.randint(2009, 2026)}-{rng.randint(1, 12):02d}",
                  "gender": rng.choice(["female", "male"]),
                  "ethnicity": rng.choices(list(ETHNICITY), list(ETHNICITY.values()))[0]}
        for _ in range(rng.choice([1, 1, 2, 3])):
            rows.append({**person, "social_care_status": rng.choice(STATUSES)})
    return rows


def main() -> None:
    print("people  rows   k ours  k pycanon (per person)  k pycanon (rows)  l ours  l pycanon  agree")
    for people, seed in ((500, 1), (2000, 2), (5000, 3), (10000, 4)):
        published = anonymise(sample(people, seed), QUASI, 5, sensitive=SENSITIVE, l=2, max_suppressed_percent=2,
                              person=PERSON).rows
        ours = check(published, QUASI, SENSITIVE, PERSON)
        frame = pd.DataFrame(published).fillna("*")
        per_person = frame.drop_duplicates([PERSON, *QUASI])
        k_people = anonymity.k_anonymity(per_person, QUASI)
        k_rows = anonymity.k_anonymity(frame, QUASI)
        diversity = anonymity.l_diversity(frame, QUASI, SENSITIVE)
        agree = ours.k == k_people and ours.l == diversity
        print(f"{people:>6} {len(published):>6} {ours.k:>7} {k_people:>23} {k_rows:>17} {ours.l:>7} {diversity:>10}"
              f"  {'yes' if agree else 'NO'}")


if __name__ == "__main__":
    main()
