"""`make bench`: the ingest core against its baselines and in every file shape; upload to receipt through the
real handler; small uploads; the person index as the store grows (bench/endtoend.py); person linkage
(bench/linkage.py); disclosure control (bench/disclosure.py). One run, written to docs/performance.md with the
command, the machine's load average at its start and end, and the time each section took; progress goes to
stderr.

Every implementation runs in a fresh process on the same generated file (12 columns, bench/policy.yaml), so each
peak resident set size is its own. The core is timed `--repeats` times (3) on each file and shape and the median
kept, as this machine's speed wanders by a tenth or so from one run to the next; the baselines, which carry no
target of their own, `--baseline-repeats` times (1). Throughput is reported as rows per second and as ratios to
the baselines measured in the same run; memory as a ratio to the smallest file.

- core: this platform's `shared.ingest.transform` (parse, validate, pseudonymise, generalise, write Parquet),
  by whichever path it takes (it reports columnar or rows);
- core-rows: the same core made to take its row path, for comparison;
- core-openpyxl: the core reading an Excel file with openpyxl instead of calamine (the xlsx target's baseline);
- pandas: a straightforward implementation (pandas.read_csv, a row-wise apply of HMAC for each identifier,
  string slicing for the generalisations, to_parquet), no validation;
- presidio: Microsoft Presidio's presidio-structured with hash (identifiers) and redact (names, addresses), up to
  `--presidio-max` rows (100,000; it takes minutes on 1,000,000).

The file shapes (bench/shapes.py) are the 1,000,000-row file with LF line ends, quoted addresses, a byte-order
mark, accented names in UTF-8 and in Windows-1252, and a `--xlsx-rows` (100,000) Excel workbook.

    python -m bench.run                                  # the default run: about 25 minutes on a quiet machine
    python -m bench.run --memory-sizes 5000000           # also the core's memory on a 5,000,000-row file
    python -m bench.run --sizes 10000 --upload-sizes 10000 --store-sizes 10,100 --linkage-max 10000 \\
        --small-workers 1 --milp-limit 5 --xlsx-rows 10000    # a quick look (a few minutes)
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import disclosure, endtoend, linkage, shapes

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / ".data"
REPORT = ROOT / "docs" / "performance.md"
POLICY = ROOT / "bench" / "policy.yaml"
PARTNER, DATASET = "bench-partner", "sessions"
KEY = bytes(range(32))
IMPLEMENTATIONS = ("core", "core-rows", "pandas", "presidio")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# The file ---------------------------------------------------------------------------------------------------

def generate(rows: int) -> Path:
    """The benchmark file, written 50,000 rows at a time so generating it stays small too."""
    from devtools import synthetic
    from shared.policy.loader import load_policy

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


# The implementations -------------------------------------------------------------------------------------

def run_core_rows(path: Path, out: Path) -> int:
    from shared.ingest import columnar

    columnar.can_read = lambda *args: False
    return run_core(path, out)


def run_core_openpyxl(path: Path, out: Path) -> int:
    """The core reading an Excel file with openpyxl, as it did before calamine (and still does for workbooks too
    large to hold in memory): the baseline of the xlsx target."""
    from shared.ingest import formats

    formats.XLSX_IN_MEMORY_BYTES = -1
    return run_core(path, out)


OBSERVED: dict[str, str] = {}
"""What the core's run reported about itself: which path read the rows, and which library read a workbook."""


def observe_workbook_reader() -> None:
    """Note which reader opens a workbook, by wrapping the two the core chooses between."""
    from shared.ingest import formats

    for name, reader in (("_calamine_rows", "calamine"), ("_openpyxl_rows", "openpyxl")):
        original = getattr(formats, name, None)
        if original is None:
            continue

        def noted(fh: Any, _original: Any = original, _reader: str = reader) -> Any:
            OBSERVED["workbook_reader"] = _reader
            return _original(fh)
        setattr(formats, name, noted)


def run_core(path: Path, out: Path) -> int:
    from shared.identity.keys import RootKey
    from shared.identity.register import SuppressionSnapshot
    from shared.ingest.curated import CuratedWriter
    from shared.ingest.events import BlobCreated
    from shared.ingest.pipeline import Upload, transform
    from shared.policy.loader import load_policy

    policy = load_policy(POLICY)
    dataset = policy.partners[PARTNER].datasets[DATASET]
    upload = Upload(BlobCreated(f"drop-{PARTNER}", f"{DATASET}/{path.name}"), PARTNER, "bench",
                    datetime(2026, 11, 1, tzinfo=UTC), dataset=dataset)
    writer = CuratedWriter(dataset.contract, {})
    with path.open("rb") as spooled:
        transform(spooled, policy, upload, "bench", RootKey(KEY, "bench"), SuppressionSnapshot({}), writer)
    writer.discard()
    OBSERVED["reader"] = str(upload.reader)
    return upload.counts.read


def run_pandas(path: Path, out: Path) -> int:
    import hashlib
    import hmac

    import pandas as pd

    domain = hmac.new(KEY, b"fdp:domain:subject", hashlib.sha256).digest()

    def pseudonym(id_type: str, value: object) -> object:
        if not isinstance(value, str) or not value.strip():
            return None
        message = f"{id_type}:{value.replace(' ', '').strip()}".encode()
        return hmac.new(domain, message, hashlib.sha256).digest()[:16].hex()

    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame["nhs_number_pseudonym"] = frame["nhs_number"].apply(lambda v: pseudonym("nhs_number", v))
    frame["family_ref_pseudonym"] = frame["family_ref"].apply(lambda v: pseudonym(f"partner_ref:{PARTNER}", v))
    frame["postcode_sector"] = frame["postcode"].str.slice(0, -2)
    frame["date_of_birth_month"] = frame["date_of_birth"].str.slice(0, 7)
    frame = frame[frame["consent"] == "Y"].drop(columns=["nhs_number", "family_ref", "child_name", "address",
                                                        "postcode", "date_of_birth", "consent"])
    frame.to_parquet(out)
    return len(frame)


def run_presidio(path: Path, out: Path) -> int:
    import pandas as pd
    from presidio_anonymizer.entities import OperatorConfig
    from presidio_structured import PandasDataProcessor, StructuredAnalysis, StructuredEngine

    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    analysis = StructuredAnalysis(entity_mapping={"nhs_number": "UK_NHS", "family_ref": "ID", "child_name": "PERSON",
                                                  "address": "LOCATION", "postcode": "LOCATION",
                                                  "date_of_birth": "DATE_TIME"})
    operators = {"UK_NHS": OperatorConfig("hash", {"hash_type": "sha256"}),
                 "ID": OperatorConfig("hash", {"hash_type": "sha256"}),
                 "PERSON": OperatorConfig("redact", {}), "LOCATION": OperatorConfig("redact", {}),
                 "DATE_TIME": OperatorConfig("redact", {})}
    anonymised = StructuredEngine(data_processor=PandasDataProcessor()).anonymize(frame, analysis, operators)
    anonymised.to_parquet(out)
    return len(anonymised)


def profile_core(path: Path) -> dict[str, float]:
    """Where the core's time goes on one file: each stage timed by a wrapper around the function doing it."""
    import functools

    from shared.ingest import columnar, curated
    from shared.ingest import pipeline as ingest

    spent: dict[str, float] = {}

    def timed(owner: Any, name: str, stage: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent[stage] = spent.get(stage, 0.0) + time.perf_counter() - started
        setattr(owner, name, wrapper)

    def timed_batches(*args: Any) -> Any:
        batches = original_batches(*args)
        while True:
            started = time.perf_counter()
            batch = next(batches, None)
            spent["parse"] = spent.get("parse", 0.0) + time.perf_counter() - started
            if batch is None:
                return
            yield batch

    original_batches = columnar._batches
    columnar._batches = timed_batches
    timed(ingest, "read_table", "scan")
    timed(columnar, "_hash", "hash")
    timed(columnar._Batch, "_row_path", "odd rows")
    timed(curated.CuratedWriter, "_flush", "parquet")
    timed(curated.CuratedWriter, "finish", "parquet")
    warm_up("core")
    started = time.perf_counter()
    run_core(path, path)
    spent["total"] = time.perf_counter() - started
    return spent


RUNNERS = {"core": run_core, "core-rows": run_core_rows, "core-openpyxl": run_core_openpyxl, "pandas": run_pandas,
           "presidio": run_presidio}


def warm_up(implementation: str) -> None:
    """Imports are done before the clock starts, as they are once per process in a Functions host."""
    core = ["shared.ingest.pipeline", "shared.ingest.curated", "python_calamine", "openpyxl"]
    modules = {"core": core, "core-rows": core, "core-openpyxl": core, "pandas": ["pandas", "pyarrow.parquet"],
               "presidio": ["pandas", "presidio_structured", "presidio_anonymizer", "pyarrow.parquet"]}
    for module in modules[implementation]:
        __import__(module)
    import pyarrow as pa

    pa.array([0])  # pyarrow's first value from Python imports its pandas layer, and pandas where installed


def measure(implementation: str, path: Path) -> dict[str, Any]:
    """Time one implementation on one file."""
    warm_up(implementation)
    observe_workbook_reader()
    out = DATA / f"{implementation}-{path.stem}.parquet"
    started = time.perf_counter()
    rows = RUNNERS[implementation](path, out)
    seconds = time.perf_counter() - started
    out.unlink(missing_ok=True)
    return {"implementation": implementation, "rows": rows, "seconds": seconds, "peak_mb": peak_mb(), **OBSERVED}


# Storage I/O, index and lookup (against Azurite) ---------------------------------------------------------------

def storage_figures(path: Path) -> dict[str, Any]:
    from shared.ingest.formats import spool
    from shared.platform.settings import Settings
    from shared.platform.storage import Storage

    server = endtoend.start_azurite()
    try:
        env = {"FDP_POLICY_PATH": str(POLICY), "FDP_INGEST_STORAGE": server.connection_string,
               "FDP_PLATFORM_STORAGE": server.connection_string}
        storage = Storage.from_settings(Settings.from_env({**os.environ, **env}))
        storage.provision()
        storage.ingest_blobs.create_container("drop-bench")
        blob = storage.raw_blob("drop-bench", "sessions/file.csv")
        with path.open("rb") as data:
            blob.upload_blob(data)
        started = time.perf_counter()
        with spool(blob.download_blob().chunks(), 4 * 1024**3):
            download = time.perf_counter() - started
        started = time.perf_counter()
        with path.open("rb") as data:
            storage.platform_blob("curated", "bench/file.bin").upload_blob(data, overwrite=True, max_concurrency=2)
        upload = time.perf_counter() - started
        size_mb = path.stat().st_size / 1024**2

        return {"file_mb": size_mb, "download_s": download, "upload_s": upload}
    finally:
        server.stop()


# The run --------------------------------------------------------------------------------------------------

def in_child(*args: str) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-m", "bench.run", "--child", *args], check=True,
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    return json.loads(result.stdout.strip().splitlines()[-1])


def median_of(repeats: int, implementation: str, path: str) -> dict[str, Any]:
    """The median time of several fresh runs, with the largest peak memory any of them reached."""
    runs = sorted((in_child(implementation, path) for _ in range(max(repeats, 1))), key=lambda r: r["seconds"])
    return {**runs[len(runs) // 2], "peak_mb": max(r["peak_mb"] for r in runs), "runs": len(runs)}


class Sections:
    """The run's sections, each timed, with progress on stderr (stdout carries the children's results)."""

    def __init__(self) -> None:
        self.spent: list[tuple[str, float]] = []
        self.started = time.perf_counter()

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        progress(f"{name} ...")
        started = time.perf_counter()
        try:
            yield
        finally:
            self.spent.append((name, time.perf_counter() - started))
            progress(f"{name}: {self.spent[-1][1]:,.0f} s (run so far {time.perf_counter() - self.started:,.0f} s)")


def progress(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--memory-sizes", default="", help="sizes run by the core only, for memory (e.g. 5000000)")
    parser.add_argument("--presidio-max", type=int, default=100_000,
                        help="the largest file presidio-structured is run on (it takes minutes at 1,000,000 rows)")
    parser.add_argument("--xlsx-rows", type=int, default=100_000,
                        help="rows of the Excel file; the core reads workbooks whose cells take up to "
                             "shared.ingest.formats.XLSX_IN_MEMORY_BYTES (about 130,000 such rows) with calamine")
    parser.add_argument("--store-sizes", default="100,1000,10000", help="uploads in the person index")
    parser.add_argument("--store-rows", type=int, default=20, help="rows (people) in each upload of the store")
    parser.add_argument("--linkage-max", type=int, default=None,
                        help="the largest population the person linkage is measured on (default 1,000,000)")
    parser.add_argument("--upload-sizes", default="10000,100000,1000000",
                        help="upload to receipt through the real handler (above 100,000 rows, the charity's "
                             "sessions only: the trust's file passes LEAP's 200 MB limit)")
    parser.add_argument("--small-workers", default="1,2,4",
                        help="worker processes that twenty small uploads are delivered to at once")
    parser.add_argument("--milp-limit", type=float, default=disclosure.MILP_LIMIT,
                        help="seconds the exact disclosure optimum may take per table")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of the core on each file and shape; the median is kept")
    parser.add_argument("--baseline-repeats", type=int, default=1,
                        help="runs of each baseline (core-rows, pandas, presidio, core-openpyxl)")
    parser.add_argument("--child", nargs=2, metavar=("WHAT", "ARG"), help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> int:
    args = arguments()
    if args.child:
        what, arg = args.child
        result = ({"path": str(generate(int(arg)))} if what == "generate" else
                  profile_core(Path(arg)) if what == "profile" else measure(what, Path(arg)))
        print(json.dumps(result))
        return 0
    run = {"command": " ".join(["python -m bench.run", *sys.argv[1:]]), "default": len(sys.argv) == 1,
           "date": datetime.now(UTC),
           "load_start": load_average()}
    section = Sections()
    sizes, memory_sizes = _sizes(args.sizes), _sizes(args.memory_sizes)
    largest = max(sizes)
    with section("core and baselines"):
        results = core_and_baselines(args, sizes, memory_sizes)
    with section("file shapes"):
        shaped = file_shapes(args, results, largest)
    with section("core profile"):
        profile = in_child("profile", str(DATA / f"{DATASET}-{largest}.csv"))
    with section("storage I/O"):
        storage = storage_figures(DATA / f"{DATASET}-{largest}.csv")
    uploads = []
    with section("upload to receipt"):
        for rows in _sizes(args.upload_sizes):
            for dataset in endtoend.datasets_for(rows):
                uploads.append(endtoend_child("upload", dataset, str(rows)))
                progress(f"upload to receipt {dataset:>13} {rows:>10,} rows ({uploads[-1]['path']}): "
                         f"{uploads[-1]['status']} in {uploads[-1]['seconds']:.1f} s, "
                         f"peak {uploads[-1]['peak_mb']:,.0f} MB")
    with section("small uploads"):
        small = endtoend_child("small", args.small_workers)
    with section("person index growth"):
        growth = endtoend_child("growth", args.store_sizes, str(args.store_rows))["growth"]
    with section("person linkage"):
        quality = linkage.section(args.linkage_max).splitlines()
    with section("disclosure control"):
        quality += disclosure.section(milp_limit=args.milp_limit).splitlines()
    run["load_end"] = load_average()
    write_report(results, storage, largest, profile, [
        *issue_14_targets(results, shaped, uploads, small, growth), *shapes_report(shaped),
        *endtoend.report(uploads, growth), *endtoend.small_report(small), *quality], run_facts(run, section))
    return 0


def core_and_baselines(args: argparse.Namespace, sizes: list[int], memory_sizes: list[int]) -> list[dict[str, Any]]:
    """Each implementation on each file size; the core alone on the memory sizes."""
    results: list[dict[str, Any]] = []
    for rows in sizes + memory_sizes:
        path = Path(in_child("generate", str(rows))["path"])
        for implementation in IMPLEMENTATIONS if rows in sizes else ("core",):
            if implementation == "presidio" and rows > args.presidio_max:
                continue
            repeats = args.repeats if implementation == "core" else args.baseline_repeats
            result = {**median_of(repeats, implementation, str(path)), "file_rows": rows,
                      "file_mb": path.stat().st_size / 1024**2}
            results.append(result)
            progress(f"{implementation:>9} {rows:>10,} rows: {rows / result['seconds']:>10,.0f} rows/s, "
                     f"peak {result['peak_mb']:,.0f} MB")
    return results


def file_shapes(args: argparse.Namespace, results: list[dict[str, Any]], largest: int) -> list[dict[str, Any]]:
    """The core on each shape of the largest file (the plain one measured already), and on the Excel file with
    calamine and with openpyxl; the plain file of the Excel file's size beside it."""
    def core_on(rows: int) -> dict[str, Any] | None:
        return next((r for r in results if r["implementation"] == "core" and r["file_rows"] == rows), None)

    xlsx_rows = min(args.xlsx_rows, largest)
    plain_small = core_on(xlsx_rows)
    if plain_small is None:
        plain_small = measure_shape("plain", Path(in_child("generate", str(xlsx_rows))["path"]), xlsx_rows,
                                    "core", args.repeats)
    shaped = [{**(core_on(largest) or {}), "shape": "plain"}]
    if xlsx_rows != largest:
        shaped.append({**plain_small, "shape": "plain"})
    plain = DATA / f"{DATASET}-{largest}.csv"
    for shape in shapes.SHAPES:
        if shape not in ("plain", "xlsx"):
            shaped.append(measure_shape(shape, shapes.derive(plain, shape), largest, "core", args.repeats))
    workbook = shapes.derive(DATA / f"{DATASET}-{xlsx_rows}.csv", "xlsx")
    shaped.append({**measure_shape("xlsx", workbook, xlsx_rows, "core", args.repeats),
                   "calamine_up_to": shapes.calamine_rows(workbook, xlsx_rows)})
    shaped.append(measure_shape("xlsx", workbook, xlsx_rows, "core-openpyxl", args.baseline_repeats))
    return shaped


def measure_shape(shape: str, path: Path, rows: int, implementation: str, repeats: int) -> dict[str, Any]:
    result = {**median_of(repeats, implementation, str(path)), "file_rows": rows, "shape": shape,
              "file_mb": path.stat().st_size / 1024**2}
    reader = result.get("workbook_reader", "")
    progress(f"{implementation} on {shape:>8} {rows:>10,} rows ({result.get('reader')} path{' ' if reader else ''}"
             f"{reader}): {rows / result['seconds']:>10,.0f} rows/s")
    return result


def run_facts(run: dict[str, Any], section: Sections) -> list[str]:
    """How this run was made: the command, when, the machine's load, and how long each section took."""
    total = sum(seconds for _, seconds in section.spent)
    which = "the default run, as `make bench` makes it" if run["default"] else "not the default run"
    lines = ["## This run", "",
             f"`{run['command']}` ({which}), started {run['date']:%Y-%m-%d %H:%M} UTC on this "
             f"{os.cpu_count()}-core machine; load average (1, 5, 15 minutes) {run['load_start']} at the start and "
             f"{run['load_end']} at the end. It took {_duration(total)}:", "",
             "| section | time |", "| --- | ---: |"]
    lines += [f"| {name} | {_duration(seconds)} |" for name, seconds in section.spent]
    return [*lines, ""]


def verdict(value: float, target: float, *, at_most: bool = False) -> str:
    """Met, or missed and by how much: the figure as a share of the target (or the target's of it, for limits)."""
    share = target / value if at_most else value / target
    return "met" if share >= 1 else f"**missed**: {share:.2f} of the target"


def issue_14_targets(results: list[dict[str, Any]], shaped: list[dict[str, Any]], uploads: list[dict[str, Any]],
                     small: dict[str, Any], growth: list[dict[str, Any]]) -> list[str]:
    """Issue 14's targets, each from figures of this run: what a partner waits for against the core alone."""
    core = {r["file_rows"]: r for r in results if r["implementation"] == "core"}
    lines = ["## Targets (issue 14), from this run", ""]
    refused = [u for u in uploads if not u["status"].startswith("accepted")]
    uploads = [u for u in uploads if u not in refused]
    lines += [f"- **{u['rows']:,} rows ({u['dataset']}) were {u['status']}**, so no figure of theirs counts "
              "below." for u in refused]
    for upload in sorted(uploads, key=lambda u: (u["rows"], u["dataset"])):
        rows = upload["rows"]
        speed = rows / upload["seconds"]
        versus = ""
        if rows in core:
            share = speed / (rows / core[rows]["seconds"])
            versus = (f", {share:.2f} of the core's {rows / core[rows]['seconds']:,.0f} rows/s on the bench's file "
                      "of that size" + (f" (target at least 0.5: {verdict(share, 0.5)})" if rows == 1_000_000 else ""))
        same_file = upload["stages"]["processed"] / upload["seconds"]
        lines.append(f"- {rows:,} rows ({upload['dataset']}, {upload['path']}) upload to receipt: "
                     f"{upload['seconds']:.1f} s, {speed:,.0f} rows/s{versus}; like for like, {same_file:.2f} of the "
                     "speed of the core on this same file (its transform stage inside the handler)"
                     + (f" ({verdict(same_file, 0.5)})" if rows == 1_000_000 else "") + ".")
    hundred = [u for u in uploads if u["rows"] == 100_000]
    if hundred:
        verdicts = [f"{u['dataset']} ({u['path']}) {u['seconds']:.1f} s, {verdict(u['seconds'], 10, at_most=True)}"
                    for u in hundred]
        lines.append(f"- 100,000 rows in under 10 s: {'; '.join(verdicts)}.")
    lines += shape_targets(shaped)
    peak = max([u["peak_mb"] for u in uploads] + [r["peak_mb"] for r in core.values()])  # accepted uploads
    lines.append(f"- Peak memory under 450 MB at every size, end to end: largest peak {peak:,.0f} MB, "
                 f"{verdict(peak, 450, at_most=True)}.")
    at_once = min(small["at_once"], key=lambda run: run["seconds"])
    lines += [f"- One small file (300 rows) upload to receipt under 200 ms: {small['single_s'] * 1000:.0f} ms, "
              f"{verdict(small['single_s'], 0.2, at_most=True)}.",
              f"- Twenty at once under 2 s: {at_once['seconds']:.1f} s (best of {len(small['at_once'])} worker "
              f"counts, {at_once['workers']} workers), {verdict(at_once['seconds'], 2, at_most=True)}."]
    if len(growth) > 1:
        first, last = growth[0], growth[-1]
        lines.append(f"- A rights lookup grows with the person's data, not the store: from {first['uploads']:,} to "
                     f"{last['uploads']:,} uploads the store grows {last['records'] / first['records']:.0f} times "
                     f"in records and the lookup {last['lookup_ms'] / first['lookup_ms']:.1f} times (the person's "
                     f"data stays one record; the check that the index is current grows "
                     f"{last['check_ms'] / first['check_ms']:.1f} times).")
    return [*lines, ""]


def shape_targets(shaped: list[dict[str, Any]]) -> list[str]:
    """The core's 400,000 rows/s in each shape at the largest size, and calamine against openpyxl."""
    largest = max(r["file_rows"] for r in shaped)
    lines = []
    for r in shaped:
        if r["file_rows"] == largest and r["implementation"] == "core":
            speed = r["file_rows"] / r["seconds"]
            lines.append(f"- The core at 400,000 rows/s or more on the {largest:,}-row file, "
                         f"{shapes.SHAPES[r['shape']]}: {speed:,.0f} rows/s by the {r.get('reader')} path, "
                         f"{verdict(speed, 400_000)}.")
    calamine, openpyxl = _workbook_runs(shaped)
    if calamine and openpyxl:
        speed, ratio = calamine["file_rows"] / calamine["seconds"], openpyxl["seconds"] / calamine["seconds"]
        lines.append(f"- Excel at least 5 times openpyxl ({calamine['file_rows']:,}-row workbook, both through the "
                     f"core's {calamine.get('reader')} path): the core with {calamine.get('workbook_reader')} "
                     f"{speed:,.0f} rows/s, {ratio:.1f} times the core with {openpyxl.get('workbook_reader')}, "
                     f"{verdict(ratio, 5)}; against 400,000 rows/s, {verdict(speed, 400_000)}.")
    return lines


def _workbook_runs(shaped: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    xlsx = {r["implementation"]: r for r in shaped if r["shape"] == "xlsx"}
    return xlsx.get("core"), xlsx.get("core-openpyxl")


def shapes_report(shaped: list[dict[str, Any]]) -> list[str]:
    calamine, _ = _workbook_runs(shaped)
    limit = (f" (about {calamine['calamine_up_to']:,} rows of this file)"
             if calamine and calamine.get("calamine_up_to") else "")
    lines = ["## The core by file shape", "",
             "The same rows in each shape partners send (bench/shapes.py says how each is made from the plain "
             "file); the core alone, from a local file to local Parquet, each the median of its runs. The path is "
             "the one the core reported taking (columnar, or rows), with the library that opened a workbook. The "
             "Excel file is smaller: the core reads a workbook with calamine only while its cells fit "
             f"shared.ingest.formats.XLSX_IN_MEMORY_BYTES{limit}, and streams larger ones with openpyxl.", "",
             "| shape | rows | file | path | rows/s | against plain CSV of that size | peak memory |",
             "| --- | ---: | ---: | --- | ---: | ---: | ---: |"]
    plain = {r["file_rows"]: r for r in shaped if r["shape"] == "plain"}
    for r in shaped:
        base = plain.get(r["file_rows"])
        against = f"{base['seconds'] / r['seconds']:.2f}" if base else ""
        path = f"{r.get('reader')}" + (f" ({r['workbook_reader']})" if r.get("workbook_reader") else "")
        lines.append(f"| {shapes.SHAPES[r['shape']]} | {r['file_rows']:,} | {r['file_mb']:,.0f} MB | {path} | "
                     f"{r['file_rows'] / r['seconds']:,.0f} | {against} | {r['peak_mb']:,.0f} MB |")
    return [*lines, ""]


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _runs(results: list[dict[str, Any]], implementation: str) -> int:
    return max((r["runs"] for r in results if r["implementation"] == implementation), default=0)


def _sizes(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s]


def endtoend_child(*args: str) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-m", "bench.endtoend", *args], check=True, stdout=subprocess.PIPE,
                            text=True, cwd=ROOT)  # the child's progress and errors go to stderr as they come
    return json.loads(result.stdout.strip().splitlines()[-1])


def write_report(results: list[dict[str, Any]], storage: dict[str, Any], largest: int,
                 profile: dict[str, float], end_to_end: list[str], facts: list[str]) -> None:
    def find(implementation: str, rows: int) -> dict[str, Any] | None:
        return next((r for r in results if r["implementation"] == implementation and r["file_rows"] == rows), None)

    core = [r for r in results if r["implementation"] == "core"]
    smallest = min(core, key=lambda r: r["file_rows"])
    lines = [
        "# Performance", "",
        f"Written by `make bench` on {datetime.now(UTC):%Y-%m-%d}: one run (how it was made, and how long each "
        "part took, is at the end), one core of this project's 2-core machine, each implementation in a fresh "
        "process on the same file (12 columns: bench/policy.yaml). The core is timed "
        f"{_runs(results, 'core')} times on each file and the baselines {_runs(results, 'pandas')}; the median "
        "time and the largest peak are shown. Ratios compare figures measured in the same run. `core` reads the "
        "plain CSV files by the path it reports (the shapes table below shows which path each shape takes); "
        "`core-rows` is the same core made to take its row path. These core figures are the core alone, from a "
        "local file to local Parquet; what a partner waits for is measured further down.", "",
        "## Throughput and memory", "",
        "| rows | implementation | rows/s | peak memory | core speed vs this |",
        "| ---: | --- | ---: | ---: | ---: |",
    ]
    for r in results:
        ours = find("core", r["file_rows"])
        ratio = (r["seconds"] / ours["seconds"]) if ours else 1.0
        lines.append(f"| {r['file_rows']:,} | {r['implementation']} | {r['file_rows'] / r['seconds']:,.0f} | "
                     f"{r['peak_mb']:,.0f} MB | {ratio:.2f}x |")
    lines += ["", "Core memory as the file grows (ratio to the smallest file):", "",
              "| rows | file | peak memory | ratio |", "| ---: | ---: | ---: | ---: |"]
    for r in core:
        lines.append(f"| {r['file_rows']:,} | {r['file_mb']:,.0f} MB | {r['peak_mb']:,.0f} MB | "
                     f"{r['peak_mb'] / smallest['peak_mb']:.2f} |")
    big = find("core", largest)
    presidio_rows = max((r["file_rows"] for r in results if r["implementation"] == "presidio"), default=0)
    presidio, against = find("presidio", presidio_rows), find("core", presidio_rows)
    rows_path = find("core-rows", largest)
    lines += ["", "## Targets", "",
              f"- 250,000 rows/s end to end on the {largest:,}-row file: "
              f"{largest / big['seconds']:,.0f} rows/s ({largest / big['seconds'] / 250_000:.2f} of the target).",
              f"- 30 times presidio-structured: {presidio['seconds'] / against['seconds']:.2f} times (on the "
              f"{presidio_rows:,}-row file, the largest presidio is run on)." if presidio and against else
              "- presidio-structured was not measured.",
              f"- Peak memory under 450 MB at every size: largest peak {max(r['peak_mb'] for r in core):,.0f} MB.",
              f"- The columnar path against the row path on the same file: {rows_path['seconds'] / big['seconds']:.1f} "
              "times as fast." if rows_path else "- The row path was not measured.",
              "", f"## Where the core's time goes ({largest:,} rows, one more run)", "",
              "| stage | seconds | share |", "| --- | ---: | ---: |"]
    stages = {"scan": "scan the file (encoding, binary data, line shapes) and read the header",
              "parse": "split blocks of lines into cells (Arrow)",
              "hash": "HMAC-SHA256 pseudonyms, one per identifier of each consented row",
              "odd rows": "rows with a cell the columnar checks could not accept, through the row path",
              "parquet": "write Parquet (zstd)"}
    rest = profile["total"] - sum(profile.get(stage, 0.0) for stage in stages)
    for stage, what in [*stages.items(), ("rest", "column checks, consent, suppression, purge months, tables")]:
        seconds = rest if stage == "rest" else profile.get(stage, 0.0)
        lines.append(f"| {what} | {seconds:.2f} | {seconds / profile['total']:.0%} |")
    lines += ["", "Pseudonyms are HMAC-SHA256 by the brief's formula, a column at a time: RFC 2104's "
              "H((K^opad)||H((K^ipad)||m)) over Apache DataFusion's SHA-256 (Rust), about 0.5 us of CPU per "
              "pseudonym against 1.4 us in the per-value hashlib loop it replaced (polars-hash's SHA-256 was no "
              "faster than the loop once its hex output is decoded, DuckDB's slower on one thread, and "
              "polars-hash's own HMAC takes only text keys).",
              "", "## Storage I/O (Azurite, measured separately)", "",
              f"The {largest:,}-row file ({storage['file_mb']:,.0f} MB): download and spool "
              f"{storage['download_s']:.2f} s, upload {storage['upload_s']:.2f} s.", "",
              *end_to_end, *facts]
    REPORT.write_text("\n".join(lines))
    print(f"wrote {REPORT.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
