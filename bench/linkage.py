"""Linkage quality and cost: the person index against a synthetic population whose truth is known.

For each size a population of families is generated (`devtools/population.py`: twins and siblings, nicknames,
typos, swapped days and months, house moves, services without NHS numbers), observed by the programme's services
and turned into linkage records under a fixed key; the records are cached in bench/.data. A fresh process then
links them with `shared.identity.linkage.link` and no decisions, timed from the records in memory to the persons
out; its peak resident set size is the peak memory (the records table itself included).

Quality is pairwise, against the truth: precision is the share of record pairs put in one person that are one
child; recall the share of record pairs of one child that were put in one person. Twins merged counts twin pairs
with a record of each in one person (the target is none). The review queue is what the model was unsure of.

    python -m bench.linkage                        # about 10k, 100k and 1M records
    python -m bench.linkage --max 100000           # a quicker look (or FDP_BENCH_LINKAGE_MAX=100000)

From bench/run.py: `bench.linkage.section()` runs the sizes and returns the markdown section (also printed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import resource
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / ".data"
POLICY = ROOT / "policies" / "leap.yaml"
KEY = bytes(range(32))
SIZES = (10_000, 100_000, 1_000_000)
MAX_ENV = "FDP_BENCH_LINKAGE_MAX"
TARGETS = {"precision": 0.995, "recall": 0.95}
SEED = 1


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024**2


# The records ------------------------------------------------------------------------------------------------

def _fingerprint() -> str:
    """What the cached records depend on: the generator and the match keys."""
    sources = [ROOT / "devtools" / "population.py", ROOT / "devtools" / "synthetic.py",
               ROOT / "shared" / "identity" / "matchkeys.py"]
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in sources))
    return digest.hexdigest()[:10]


def prepare(records: int, seed: int = SEED) -> dict[str, Any]:
    """Generate (or find) the linkage records of a population of about `records` records."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from devtools import population
    from shared.policy.loader import load_policy

    path = DATA / f"linkage-{records}-{seed}-{_fingerprint()}.parquet"
    about = path.with_suffix(".json")
    if path.exists() and about.exists():
        return json.loads(about.read_text())
    DATA.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    people = population.population(load_policy(POLICY), population.families_for(records), seed=seed)
    noise: list[str] = []

    def noted(rows: Any) -> Any:
        for row in rows:
            noise.append(";".join(row["noise"]))
            yield row

    table = population.record_table(noted(population.observations(people)), KEY, with_truth=True)
    table = table.append_column("noise", pa.array(noise, pa.string()))
    partial = path.with_suffix(".partial")
    pq.write_table(table, partial)
    partial.rename(path)
    facts = {"path": str(path), "records": table.num_rows, "children": len(people.children),
             "families": len(people.families), "twins": people.twins,
             "generate_s": time.perf_counter() - started}
    about.write_text(json.dumps(facts))
    return facts


# Linking and scoring ----------------------------------------------------------------------------------------

def measure(path: Path) -> dict[str, Any]:
    """Link the records at `path` once, in this process, and score the persons against the truth."""
    import pyarrow.parquet as pq
    import splink

    from devtools.population import score
    from shared.identity import linkage

    assert splink.__version__  # imported before the clock starts, as a Functions host has it loaded
    twins = json.loads(path.with_suffix(".json").read_text())["twins"]
    table = pq.read_table(path)
    truth, noise = table.column("truth").to_pylist(), table.column("noise").to_pylist()
    records = table.drop_columns(["truth", "noise"])
    before = current_mb()
    started = time.perf_counter()
    result = linkage.link(records, linkage.Decisions(), KEY)
    seconds = time.perf_counter() - started
    persons = result.persons.column("person_key").to_pylist()
    return {"records": records.num_rows, "seconds": seconds, "peak_mb": peak_mb(), "before_mb": before,
            "table_mb": records.nbytes / 1024**2, **result.summary,
            **score(persons, truth, [(a, b) for a, b in twins]), "lost": lost_by_noise(persons, truth, noise)}


def lost_by_noise(persons: list[str], truth: list[str], noise: list[str]) -> dict[str, list[int]]:
    """Per kind of noise: records carrying it, and how many of those ended outside their child's main person
    (the one holding most of the child's records)."""
    main: dict[str, str] = {}
    for (child, person), _ in sorted(Counter(zip(truth, persons, strict=True)).items(), key=lambda kv: kv[1]):
        main[child] = person  # the most frequent person comes last
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for person, child, labels in zip(persons, truth, noise, strict=True):
        for label in labels.split(";") if labels else ["nothing wrong"]:
            counts[label][0] += 1
            counts[label][1] += person != main[child]
    return dict(counts)


# The run ----------------------------------------------------------------------------------------------------

def in_child(*args: str) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-m", "bench.linkage", "--child", *args], check=True,
                            capture_output=True, text=True, cwd=ROOT)
    return json.loads(result.stdout.strip().splitlines()[-1])


def sizes_to_run(max_records: int | None = None, sizes: tuple[int, ...] = SIZES) -> list[int]:
    cap = max_records or int(os.environ.get(MAX_ENV) or 0) or max(sizes)
    return [size for size in sizes if size <= cap] or [min(sizes)]


def run(max_records: int | None = None, sizes: tuple[int, ...] = SIZES, seed: int = SEED) -> list[dict[str, Any]]:
    """Each size: its records prepared in one fresh process, linked in another."""
    results = []
    for size in sizes_to_run(max_records, sizes):
        facts = in_child("prepare", str(size), str(seed))
        measured = in_child("measure", facts["path"])
        results.append({**{k: v for k, v in facts.items() if k != "twins"}, **measured, "nominal": size})
        print(f"linkage {measured['records']:>10,} records: {measured['seconds']:8.1f} s, peak "
              f"{measured['peak_mb']:,.0f} MB, precision {measured['precision']:.4f}, recall "
              f"{measured['recall']:.4f}, twins merged {measured['twins_merged']}/{measured['twin_pairs']}",
              file=sys.stderr, flush=True)
    return results


def section(max_records: int | None = None, sizes: tuple[int, ...] = SIZES, seed: int = SEED) -> str:
    """The markdown section for docs/performance.md: runs the sizes (up to `max_records`, or the environment's
    FDP_BENCH_LINKAGE_MAX), prints the section and returns it."""
    text = markdown(run(max_records, sizes, seed))
    print(text)
    return text


def markdown(results: list[dict[str, Any]]) -> str:
    largest = results[-1]
    lines = [
        "## Person linkage: quality and cost", "",
        "A synthetic population (`devtools/population.py`) in LEAP's area: families of one to three children, "
        f"{largest['twin_pairs'] / (largest['children'] - largest['twin_pairs']):.1%} of births twins (twice the "
        "UK's 1 in 65); five services see the children, health visiting (NHS number and names tokenised at "
        "source) nearly all of them, the others with or without NHS numbers and with nicknames, spelling "
        "variants, typos, middle names, double surnames, swapped days and months and house moves. Each size "
        "is linked once by `shared.identity.linkage.link` in a fresh process (DuckDB on both cores), with no "
        "review decisions; pairs are counted against the truth.", "",
        "| records | children | precision | recall | twins merged | review queue | conflicts | link time | "
        "peak memory | time growth |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    previous: dict[str, Any] | None = None
    for r in results:
        growth = "" if previous is None else (
            f"{r['seconds'] / previous['seconds']:.1f}x for {r['records'] / previous['records']:.1f}x records "
            f"(n^{math.log(r['seconds'] / previous['seconds']) / math.log(r['records'] / previous['records']):.2f})")
        lines.append(f"| {r['records']:,} | {r['children']:,} | {r['precision']:.2%} | {r['recall']:.2%} | "
                     f"{r['twins_merged']} of {r['twin_pairs']:,} | {r['review']:,} | {r['conflicts']:,} | "
                     f"{_duration(r['seconds'])} | {r['peak_mb']:,.0f} MB | {growth} |")
        previous = r
    met = {
        "precision": all(r["precision"] >= TARGETS["precision"] for r in results),
        "recall": all(r["recall"] >= TARGETS["recall"] for r in results),
        "twins": all(r["twins_merged"] == 0 for r in results),
    }
    million = next((r for r in results if r["nominal"] >= 1_000_000), None)
    lines += ["", "Targets (issue 13):", "",
              f"- precision at least {TARGETS['precision']:.1%} at every size: {_yes(met['precision'])} "
              f"(lowest {min(r['precision'] for r in results):.2%});",
              f"- recall at least {TARGETS['recall']:.0%}: {_yes(met['recall'])} "
              f"(lowest {min(r['recall'] for r in results):.2%});",
              f"- twins never merged: {_yes(met['twins'])} "
              f"({sum(r['twins_merged'] for r in results)} pairs merged across all sizes);",
              f"- 1M records linked in minutes: {_duration(million['seconds'])}." if million else
              "- 1M records were not linked in this run (capped by --max or FDP_BENCH_LINKAGE_MAX).",
              "", f"Peak memory includes the records table itself ({largest['table_mb']:,.0f} MB at "
              f"{largest['records']:,} records). Where recall is lost at {largest['records']:,} records: records "
              "outside their child's main person, by what was wrong with them (a record may carry several):", "",
              "| in the record | records | outside their child's person |", "| --- | ---: | ---: |"]
    for label, (count, lost) in sorted(largest["lost"].items(), key=lambda kv: -kv[1][1])[:10]:
        lines.append(f"| {label} | {count:,} | {lost:,} ({lost / count:.1%}) |")
    return "\n".join(lines) + "\n"


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _yes(met: bool) -> str:
    return "met" if met else "**not met**"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max", type=int, default=None, help=f"largest size to run (or {MAX_ENV})")
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        what, *rest = args.child
        result = (prepare(int(rest[0]), int(rest[1])) if what == "prepare" else
                  measure(Path(rest[0])))
        print(json.dumps(result))
        return 0
    section(args.max, tuple(int(s) for s in args.sizes.split(",") if s), args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
