"""`make bench`: peak memory and throughput of the ingest pipeline's core as files grow.

The core (read, check, pseudonymise, generalise, write Parquet: `shared.ingest.transform`) runs in a fresh
process per file, so each peak resident set size is that file's alone. The promise is that memory does not grow
with file size: the figures are reported as ratios to the smallest file, measured in the same run.

    python -m bench.run                       # 20k, 100k and 400k rows
    python -m bench.run --sizes 20000,1000000
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / ".data"
REPORT = ROOT / "docs" / "performance.md"
POLICY = ROOT / "policies" / "leap.yaml"
PARTNER, DATASET = "family-support-charity", "sessions"


def generate(rows: int) -> Path:
    """A LEAP sessions file of `rows` rows, written in slices so generation itself stays small."""
    from shared import synthetic
    from shared.policy import load_policy

    path = DATA / f"{DATASET}-{rows}.csv"
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    policy = load_policy(POLICY)
    partial = path.with_suffix(".partial")
    with partial.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\r\n")
        for start in range(0, rows, 50_000):
            piece = synthetic.generate(policy, PARTNER, DATASET, rows=min(50_000, rows - start), seed=start,
                                       invalid_rate=0.01)
            if start == 0:
                writer.writerow(piece.header)
            writer.writerows([row[name] for name in piece.header] for row in piece.rows)
    partial.rename(path)
    return path


def measure(path: Path) -> dict[str, float]:
    """Run the core on one file in this process; returns rows, seconds and peak RSS in MB."""
    from shared.curated import CuratedWriter
    from shared.events import BlobCreated
    from shared.ingest import Upload, transform
    from shared.keys import RootKey
    from shared.policy import load_policy
    from shared.register import SuppressionSnapshot

    policy = load_policy(POLICY)
    dataset = policy.partners[PARTNER].datasets[DATASET]
    upload = Upload(BlobCreated(f"drop-{PARTNER}", f"{DATASET}/{path.name}"), PARTNER, "bench",
                    datetime(2026, 11, 1, tzinfo=UTC), dataset=dataset)
    writer = CuratedWriter(dataset.contract, {})
    started = time.perf_counter()
    with path.open("rb") as spooled:
        transform(spooled, policy, upload, "bench", RootKey(bytes(32), "bench"), SuppressionSnapshot({}), writer)
    seconds = time.perf_counter() - started
    writer.discard()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"rows": upload.counts.read, "stored": upload.counts.stored, "seconds": seconds, "peak_mb": peak_mb}


def in_child(*args: str) -> dict:
    output = subprocess.run([sys.executable, "-m", "bench.run", *args], check=True, capture_output=True,
                            text=True, cwd=ROOT).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="20000,100000,400000")
    parser.add_argument("--child-generate", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_generate:
        print(json.dumps({"path": str(generate(args.child_generate))}))
        return 0
    if args.child_measure:
        print(json.dumps(measure(Path(args.child_measure))))
        return 0
    results = []
    for rows in (int(size) for size in args.sizes.split(",")):
        path = Path(in_child("--child-generate", str(rows))["path"])
        result = in_child("--child-measure", str(path))
        result["mb"] = path.stat().st_size / 1024 / 1024
        results.append(result)
        print(f"{result['rows']:>9,} rows ({result['mb']:.0f} MB): {result['rows'] / result['seconds']:>9,.0f} rows/s, "
              f"peak {result['peak_mb']:.0f} MB")
    write_report(results)
    return 0


def write_report(results: list[dict]) -> None:
    base = results[0]
    lines = [
        "# Performance",
        "",
        "Written by `make bench` (`bench/run.py`); figures from one run on this project's 2-core machine.",
        "The ingest core (read, check, pseudonymise, generalise, write Parquet; no storage I/O) runs on LEAP",
        "`sessions` files (14 columns: two identifiers, names, an address, postcode, date of birth...), each in",
        "a fresh process. Ratios are to the smallest file, measured in the same run.",
        "",
        "| rows | file | rows/s | peak memory | memory ratio | size ratio |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(f"| {r['rows']:,} | {r['mb']:.0f} MB | {r['rows'] / r['seconds']:,.0f} | {r['peak_mb']:.0f} MB "
                     f"| {r['peak_mb'] / base['peak_mb']:.2f} | {r['rows'] / base['rows']:.0f} |")
    lines += ["", "Memory does not grow with the file: the download is spooled to disk, rows are read one at a",
              "time, Parquet is written in batches of 20,000 rows per purge month, and the subject index is",
              "written a window at a time.", ""]
    REPORT.write_text("\n".join(lines))
    print(f"wrote {REPORT.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
