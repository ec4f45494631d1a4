"""What a partner waits for, and what a rights request costs as the store grows, measured on Azurite.

- Upload to receipt: a LEAP partner's file goes into its drop zone and through the real ingest handler (the
  pipeline the Event Grid function calls), person index included; the pipeline's own checkpoints time each stage,
  and the path that read the rows (columnar or rows) is the one the pipeline records on the upload. Two shapes:
  the charity's sessions (names, so match keys) and the NHS trust's visits (source tokens). Each file is
  generated once into bench/.data by another process, so the upload's peak memory is the pipeline's own.
- Small uploads: one 300-row file upload to receipt in a warm process (the mean of five) with the time of each
  stage and the CPU it costs the worker and Azurite, and twenty such files delivered at once to 1, 2 and 4 worker
  processes (a Functions host scales out by workers) with the CPU they took: on a machine of two cores the CPU
  per upload, not the workers, sets how fast twenty can go. Beside them, the audit log alone: 1, 2 and 4 processes
  appending ingest entries at once, the serialisation point an upload used to queue on.
- Store growth: the store is filled in bulk to 100, 1,000 and 10,000 uploads (20 people each by default), each
  upload's person index records written as the pipeline writes them (`PersonIndex.write_records`, one blob per
  upload) without the rest of ingest. At each size the bench times adding one more 1,000-row upload, rebuilding
  the index (the linkage run), checking that it is current, and a rights lookup (identifier to person to records).

Each measurement runs in a fresh process (`python -m bench.endtoend ...`), so its peak memory is its own.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / ".data"
LEAP = ROOT / "policies" / "leap.yaml"
KEY = bytes(range(32))
SHAPES = {"sessions": ("family-support-charity", "names to match keys"),
          "health-visits": ("nhs-community-health", "source tokens")}
LARGE_UPLOAD = 100_000
"""Above this many rows only the charity's sessions are uploaded: the trust's rows carry name tokens (about 260
bytes a row), so its 1,000,000-row file (249 MB) passes LEAP's agreed 200 MB limit and is rejected unread; the
charity's takes 125 MB."""


def datasets_for(rows: int) -> list[str]:
    return list(SHAPES) if rows <= LARGE_UPLOAD else ["sessions"]


STAGES = ("downloaded", "processed", "curated", "indexed", "receipt", "ledger", "audited", "deleted")
STAGE_NAMES = {"downloaded": "download", "processed": "transform", "curated": "curated upload",
               "indexed": "person index records",
               "receipt": "receipt", "ledger": "ledger", "audited": "audit", "deleted": "delete the raw file"}


def start_azurite(attempts: int = 3) -> Any:
    """Azurite on free ports, tried again if it does not come up: on a machine shared with test suites that start
    their own, a port found free can be taken before Azurite binds it, and one such miss should not cost a
    half-hour run."""
    from devtools import azurite

    for attempt in range(1, attempts + 1):
        try:
            return azurite.start()
        except RuntimeError:
            if attempt == attempts:
                raise
            print(f"Azurite did not start (attempt {attempt} of {attempts}); trying again", file=sys.stderr)
    raise AssertionError("unreachable")


def _environment(server: Any) -> dict[str, str]:
    return {"FDP_POLICY_PATH": str(LEAP), "FDP_INGEST_STORAGE": server.connection_string,
            "FDP_PLATFORM_STORAGE": server.connection_string, "FDP_LOCAL_ROOT_KEY": base64.b64encode(KEY).decode()}


def _file(dataset: str, rows: int) -> bytes:
    from devtools import synthetic
    from shared.policy.loader import load_policy

    policy = load_policy(LEAP)
    partner = SHAPES[dataset][0]
    parts = []
    for start in range(0, rows, 50_000):
        content = synthetic.generate(policy, partner, dataset, rows=min(50_000, rows - start), seed=start).content
        parts.append(content if not parts else content.split(b"\r\n", 1)[1])
    return b"".join(parts)


def _cached_file(dataset: str, rows: int) -> Path:
    """The partner's file in bench/.data, generated once by another process so that neither the generator's
    memory nor the file's bytes count in the upload's peak. Named after what it is made from."""
    digest = hashlib.sha256(LEAP.read_bytes() + (ROOT / "devtools" / "synthetic.py").read_bytes()).hexdigest()[:10]
    path = DATA / f"leap-{dataset}-{rows}-{digest}.csv"
    if not path.exists():
        subprocess.run([sys.executable, "-m", "bench.endtoend", "file", dataset, str(rows), str(path)], check=True,
                       cwd=ROOT)
    return path


def _write_file(dataset: str, rows: int, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_bytes(_file(dataset, rows))
    partial.rename(path)


def upload_to_receipt(dataset: str, rows: int) -> dict[str, Any]:
    """One upload of `rows` rows, from the blob in the drop zone to the receipt, with the time of each stage."""
    from shared import runtime
    from shared.ingest.events import BlobCreated
    from shared.ingest.pipeline import IngestPipeline

    upload_file = _cached_file(dataset, rows)
    server = start_azurite()
    try:
        os.environ.update(_environment(server))
        runtime.reset()
        current = runtime.platform()
        current.storage.provision()
        partner = SHAPES[dataset][0]
        current.storage.ingest_blobs.create_container(f"drop-{partner}")
        blob = current.storage.raw_blob(f"drop-{partner}", f"{dataset}/bench.csv")
        with upload_file.open("rb") as content:
            etag = blob.upload_blob(content)["etag"].strip('"')
        marks: dict[str, float] = {}
        readers = _note_readers()
        pipeline = IngestPipeline(current.policy, current.storage, runtime.ingest_pipeline().keys,
                                  checkpoint=lambda step: marks.setdefault(step, time.perf_counter()))
        pipeline.keys.root_key()
        started = time.perf_counter()
        outcome = pipeline.handle(BlobCreated(f"drop-{partner}", f"{dataset}/bench.csv", etag,
                                              upload_file.stat().st_size))
        total = time.perf_counter() - started
        previous, stages = started, {}
        for step in STAGES:
            stages[step] = marks.get(step, previous) - previous
            previous = marks.get(step, previous)
        path = " and ".join(f"{reader} path" for reader in readers) or "no rows read"
        return {"dataset": dataset, "path": path, "rows": rows, "seconds": total, "stages": stages,
                "status": outcome.status,
                "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    finally:
        server.stop()


def _note_readers() -> list[str]:
    """The path (columnar or rows) that read each upload's rows, as the pipeline records it on the upload: its
    `transform` is wrapped to read `Upload.reader` when it returns."""
    import functools

    from shared.ingest import pipeline

    readers: list[str] = []
    original = pipeline.transform

    @functools.wraps(original)
    def noted(spooled: Any, policy: Any, upload: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(spooled, policy, upload, *args, **kwargs)
        finally:
            readers.append(str(upload.reader))
    pipeline.transform = noted  # type: ignore[assignment]
    return readers


SMALL_ROWS, AT_ONCE, SMALL_DATASET = 300, 20, "sessions"
SMALL_STAGES = {"downloaded": "ledger, properties, register, download", "processed": "transform",
                "receipt": "curated file, index records, receipt (at once)", "ledger": "ledger (commit)",
                "audited": "audit", "deleted": "delete the raw file"}
"""A small upload's stages, by the pipeline checkpoint that ends each."""


def _pipeline(checkpoint: Any = None) -> Any:
    from shared import runtime
    from shared.ingest.pipeline import IngestPipeline

    runtime.reset()
    current = runtime.platform()
    pipeline = IngestPipeline(current.policy, current.storage, runtime.ingest_pipeline().keys,
                              **({"checkpoint": checkpoint} if checkpoint else {}))
    pipeline.keys.root_key()
    return pipeline


def _cpu_seconds(processes: list[Any]) -> float:
    """User and system CPU the processes have used so far (psutil.Process objects)."""
    return sum(times.user + times.system for times in (process.cpu_times() for process in processes))


def _put_small_files(names: list[str]) -> list[Any]:
    """Small uploads in the drop zone, each its own file; their BlobCreated events."""
    from shared import runtime
    from shared.ingest.events import BlobCreated

    partner = SHAPES[SMALL_DATASET][0]
    storage = runtime.platform().storage
    events = []
    for number, name in enumerate(names):
        content = _file(SMALL_DATASET, SMALL_ROWS).replace(b"FA-", f"F{number}-".encode())
        blob = storage.raw_blob(f"drop-{partner}", f"{SMALL_DATASET}/{name}.csv")
        etag = blob.upload_blob(content)["etag"].strip('"')
        events.append(BlobCreated(f"drop-{partner}", f"{SMALL_DATASET}/{name}.csv", etag, len(content)))
    return events


_worker_pipeline: Any = None


def _start_worker() -> None:
    global _worker_pipeline
    _worker_pipeline = _pipeline()


def _deliver(event: Any) -> str:
    return str(_worker_pipeline.handle(event).status)


AUDIT_APPENDS = 40


def _append_audit_entries(count: int) -> tuple[float, int]:
    """One writer's keyed appends (as ingests make them): the time they took and how many transactions the table
    refused (another writer had moved the head)."""
    import uuid

    from azure.data.tables import TableTransactionError

    from shared import runtime
    from shared.platform.audit import AuditLog
    from shared.platform.storage import AUDIT

    runtime.reset()
    table = runtime.platform().storage.table(AUDIT)
    submit, refused = table.submit_transaction, [0]

    def counted(operations: Any, **options: Any) -> Any:
        try:
            return submit(operations, **options)
        except TableTransactionError:
            refused[0] += 1
            raise

    table.submit_transaction = counted  # type: ignore[method-assign]
    log = AuditLog(table)
    started = time.perf_counter()
    for number in range(count):
        log.append("ingest.accepted", {"number": number}, key=f"ingest:{uuid.uuid4().hex}")
    return time.perf_counter() - started, refused[0]


def _audit_at_once(writer_counts: list[int]) -> list[dict[str, Any]]:
    """Writers appending at once, each in its own process: appends a second over all of them."""
    import multiprocessing

    runs = []
    for writers in writer_counts:
        with multiprocessing.get_context("fork").Pool(writers) as pool:
            results = pool.map(_append_audit_entries, [AUDIT_APPENDS] * writers, chunksize=1)
        slowest = max(seconds for seconds, _ in results)
        runs.append({"writers": writers, "appends_per_s": writers * AUDIT_APPENDS / slowest,
                     "refused": sum(refused for _, refused in results)})
    return runs


def small_uploads(worker_counts: list[int]) -> dict[str, Any]:
    """One small upload's time to its receipt, by stage and CPU; and twenty at once across worker processes."""
    import multiprocessing

    import psutil

    from devtools import azurite
    from shared import runtime

    server = azurite.start()
    try:
        os.environ.update(_environment(server))
        runtime.reset()
        runtime.platform().storage.provision()
        runtime.platform().storage.ingest_blobs.create_container(f"drop-{SHAPES[SMALL_DATASET][0]}")
        node = [psutil.Process(server.process.pid)]
        load = os.getloadavg()[0]
        marks: dict[str, float] = {}
        pipeline = _pipeline(checkpoint=lambda step: marks.setdefault(step, time.perf_counter()))
        warm, *timed = _put_small_files([f"single{n}" for n in range(6)])
        pipeline.handle(warm)  # the first upload of a process pays for its connections and caches
        stages, statuses, total = dict.fromkeys(SMALL_STAGES, 0.0), [], 0.0
        client, server_cpu = time.process_time(), _cpu_seconds(node)
        for event in timed:
            marks.clear()
            started = time.perf_counter()
            statuses.append(pipeline.handle(event).status)
            total += time.perf_counter() - started
            previous = started
            for step in SMALL_STAGES:
                stages[step] += marks.get(step, previous) - previous
                previous = marks.get(step, previous)
        single = {"single_s": total / len(timed), "load": load,
                  "stages_ms": {step: 1000 * spent / len(timed) for step, spent in stages.items()},
                  "client_cpu_ms": 1000 * (time.process_time() - client) / len(timed),
                  "azurite_cpu_ms": 1000 * (_cpu_seconds(node) - server_cpu) / len(timed)}
        at_once = []
        for workers in worker_counts:
            events = _put_small_files([f"w{workers}-{n}" for n in range(AT_ONCE)])
            with multiprocessing.get_context("fork").Pool(workers, initializer=_start_worker) as pool:
                pool.map(_deliver, [warm] * workers, chunksize=1)  # each worker warm, as a running host's are
                others = [child for child in psutil.Process().children() if child.pid != server.process.pid]
                before, load = _cpu_seconds(others + node), os.getloadavg()[0]
                started = time.perf_counter()
                statuses += pool.map(_deliver, events, chunksize=1)
                at_once.append({"workers": workers, "seconds": time.perf_counter() - started, "load": load,
                                "cpu_ms_per_upload": 1000 * (_cpu_seconds(others + node) - before) / AT_ONCE})
        audit = _audit_at_once(worker_counts)
        return {**single, "at_once": at_once, "audit": audit, "statuses": sorted(set(statuses)),
                "cores": os.cpu_count()}
    finally:
        server.stop()


def _index_records(rng: random.Random, count: int) -> Any:
    """An upload's person index records as ingest gathers them (LOCAL_FIELDS): each row one child by their NHS
    number's token, no family or match keys."""
    import pyarrow as pa

    from shared.identity.index import LOCAL_FIELDS

    ids = [[f"nhs_number_token={rng.getrandbits(128):032x}"] for _ in range(count)]
    empty = pa.array([[]] * count, pa.list_(pa.string()))
    return pa.table({"row": pa.array(range(2, count + 2), pa.int32()), "ids": pa.array(ids, pa.list_(pa.string())),
                     "groups": empty, "strong_keys": empty},
                    schema=pa.schema([f for f in LOCAL_FIELDS if f.name in ("row", "ids", "groups", "strong_keys")]))


def _first_ids(table: Any, count: int) -> list[str]:
    return [row[0].split("=", 1)[1] for row in table.column("ids").to_pylist()[:count]]


def store_growth(sizes: list[int], rows_per_upload: int = 20, writers: int = 8) -> list[dict[str, Any]]:
    """The person index as the store grows: an upload's cost, a rebuild, and a rights request's lookup, per store
    size (in uploads).

    The store is filled in bulk: each upload's index records are written as the pipeline writes them
    (`PersonIndex.write_records`, one blob per upload), `writers` uploads at a time, without the rest of ingest."""
    from concurrent.futures import ThreadPoolExecutor

    from shared.identity.index import PersonIndex
    from shared.identity.keys import LocalKeySource
    from shared.platform.settings import Settings
    from shared.platform.storage import Storage

    server = start_azurite()
    rng = random.Random("the added upload and the sample")
    try:
        storage = Storage.from_settings(Settings.from_env({**os.environ, **_environment(server)}))
        storage.provision()
        index = PersonIndex(storage, LocalKeySource(base64.b64encode(KEY).decode()))
        people: list[str] = []

        def add(number: int) -> None:
            table = _index_records(random.Random(number), rows_per_upload)
            index.write_records(f"upload{number:06d}", "p", "d", [(f"d/{number}.parquet", table)])

        stored, growth = 0, []
        for target in sizes:
            started = time.perf_counter()
            with ThreadPoolExecutor(writers) as pool:
                list(pool.map(add, range(stored, target)))
            people += [person for number in range(stored, target, max(1, (target - stored) // 50))
                       for person in _first_ids(_index_records(random.Random(number), 1), 1)]
            fill = time.perf_counter() - started
            stored = target
            started = time.perf_counter()
            index.write_records(f"new{target:06d}", "p", "d", [("d/new.parquet", _index_records(rng, 1_000))])
            update = time.perf_counter() - started
            started = time.perf_counter()
            index.ensure_linked()
            relink = time.perf_counter() - started
            started = time.perf_counter()
            index.ensure_linked()  # what a rights request does first: the index is current, so this only checks
            check = time.perf_counter() - started
            sample = rng.sample(people, min(20, len(people)))
            _rights_lookup(index, sample[0])  # the first read of the new index's buckets sets up connections
            started = time.perf_counter()
            found = [len(_rights_lookup(index, pseudonym)) for pseudonym in sample]
            lookup = (time.perf_counter() - started) / len(sample)
            growth.append({"uploads": target, "rows_per_upload": rows_per_upload,
                           "records": target * rows_per_upload + 1_000 * (len(growth) + 1),
                           "index_mb": _index_mb(index), "fill_s": fill, "update_s": update, "relink_s": relink,
                           "check_ms": check * 1000, "lookup_ms": lookup * 1000, "found": sorted(set(found))})
            print(f"store of {target:,} uploads: filled in {fill:.0f} s, rebuilt in {relink:.1f} s, lookup "
                  f"{lookup * 1000:.0f} ms", file=sys.stderr, flush=True)
        return growth
    finally:
        server.stop()


def _rights_lookup(index: Any, pseudonym: str) -> list[dict[str, Any]]:
    """What a rights request reads once the index is current (`RightsService._resolve`): the identifier to its
    person, the person to their records, and those records' own identifiers and strong keys."""
    records: list[dict[str, Any]] = index.records_of(index.resolve({pseudonym}))
    index.own_keys(records)
    return records


def _index_mb(index: Any) -> float:
    """The person index's size in storage: the upload record files and the index built from them."""
    return sum(blob.size for blob in index.container.list_blobs()) / 1024**2


def report(uploads: list[dict[str, Any]], growth: list[dict[str, Any]]) -> list[str]:
    lines = ["## Upload to receipt (the real ingest handler on Azurite)", "",
             "What a partner waits for: from the file in the drop zone to the receipt, the person index's records "
             "and the audit entry included (the linkage run is separate, below). LEAP's policy; each run in a "
             "fresh process.", "",
             "| file | rows | upload to receipt | rows/s | peak memory | " +
             " | ".join(STAGE_NAMES[s] for s in STAGES) + " |",
             "| --- | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in STAGES) + " |"]
    for run in uploads:
        shares = " | ".join(f"{run['stages'][s] / run['seconds']:.0%}" for s in STAGES)
        shape = f"{run['dataset']} ({run['path']}, {SHAPES[run['dataset']][1]})" + (
            "" if run["status"].startswith("accepted") else f", **{run['status']}**")
        lines.append(f"| {shape} | {run['rows']:,} | {run['seconds']:.1f} s | {run['rows'] / run['seconds']:,.0f} |"
                     f" {run['peak_mb']:,.0f} MB | {shares} |")
    return [*lines, *growth_report(growth)]


def growth_report(growth: list[dict[str, Any]]) -> list[str]:
    if not growth:
        return []
    first, last = growth[0], growth[-1]
    rows = first["rows_per_upload"]
    lines = ["", "## The person index as the store grows", "",
             f"The store is filled in bulk with uploads of {rows} people each, their index records written as the "
             "pipeline writes them (one blob per upload, `PersonIndex.write_records`) without the rest of ingest. "
             "At each size: adding one more 1,000-row upload, rebuilding the index (the linkage run, which reads "
             "every record), checking that the index is current (the first thing a rights request does: it lists "
             "every upload's record file), and a rights lookup once it is (identifier to person, person to their "
             "records, and those records' own identifiers, as `RightsService` reads them; mean of 20 people, each "
             "holding one record at every size).", "",
             "| uploads | records | index in storage | add an upload | rebuild the index | check it is current | "
             "lookup |", "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {g['uploads']:,} | {g['records']:,} | {g['index_mb']:,.1f} MB | {g['update_s'] * 1000:.0f} ms | "
              f"{g['relink_s']:.1f} s | {g['check_ms']:.0f} ms | {g['lookup_ms']:.1f} ms |" for g in growth]
    lines += ["", f"From {first['uploads']:,} to {last['uploads']:,} uploads the store grows "
              f"{last['records'] / first['records']:.0f} times in records ({last['index_mb'] / first['index_mb']:.0f} "
              f"times in storage) while each person's data stays the same: a lookup takes "
              f"{last['lookup_ms'] / first['lookup_ms']:.2f} times as long, adding an upload "
              f"{last['update_s'] / first['update_s']:.2f} times, checking the index is current "
              f"{last['check_ms'] / first['check_ms']:.1f} times and a rebuild "
              f"{last['relink_s'] / first['relink_s']:.1f} times. A lookup reads one bucket of the index per "
              "identifier and per person (a 16th of it, a 256th from 200,000 records) and the record files of that "
              "person's uploads; the check lists every record "
              "file, and the rebuild reads them all; it runs when an upload or decision is newer than the index.", ""]
    return lines


def small_report(small: dict[str, Any]) -> list[str]:
    stages = ", ".join(f"{SMALL_STAGES[step]} {spent:.0f} ms" for step, spent in small["stages_ms"].items())
    lines = ["## Small uploads", "",
             f"One {SMALL_ROWS}-row file ({SMALL_DATASET}) from the drop zone to its receipt in a warm process: "
             f"{small['single_s'] * 1000:.0f} ms (target: under 200 ms; mean of five). Where it goes: {stages}. "
             f"Each upload costs the worker {small['client_cpu_ms']:.0f} ms of CPU and Azurite "
             f"{small['azurite_cpu_ms']:.0f} ms. {AT_ONCE} such files delivered at once:", "",
             "| worker processes | all twenty receipts | uploads/s | CPU per upload (workers and Azurite) |",
             "| ---: | ---: | ---: | ---: |"]
    lines += [f"| {run['workers']} | {run['seconds']:.2f} s | {AT_ONCE / run['seconds']:.1f} | "
              f"{run['cpu_ms_per_upload']:.0f} ms |" for run in small["at_once"]]
    floor = min(run["cpu_ms_per_upload"] for run in small["at_once"]) * AT_ONCE / 1000 / small["cores"]
    loads = ", ".join(f"{run['load']:.1f}" for run in small["at_once"])
    return [*lines, "", f"Target: twenty at once in under 2 s. On {small['cores']} cores, with the workers and "
            f"Azurite on the same machine, twenty uploads need at least {floor:.2f} s of both cores' time, however "
            f"many workers share them; more workers than cores only add switching. Load average when measured: "
            f"{small['load']:.1f} (one file), {loads} (twenty at once; other work on the machine shares its cores).",
            "", f"The audit log alone, each writer appending {AUDIT_APPENDS} ingest entries at once with the others "
            "(ingest entries go to 16 chains by their ingest id, so writers rarely share a head):", "",
            "| writer processes | appends/s | transactions refused (head moved) |", "| ---: | ---: | ---: |",
            *[f"| {run['writers']} | {run['appends_per_s']:.0f} | {run['refused']} |" for run in small["audit"]],
            ""]


def main(argv: list[str]) -> int:
    what = argv[0]
    if what == "file":
        _write_file(argv[1], int(argv[2]), Path(argv[3]))
        return 0
    result = (upload_to_receipt(argv[1], int(argv[2])) if what == "upload" else
              small_uploads([int(s) for s in argv[1].split(",")]) if what == "small" else
              {"growth": store_growth([int(s) for s in argv[1].split(",")], *[int(a) for a in argv[2:3]])})
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
