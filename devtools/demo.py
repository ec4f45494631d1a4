"""`make demo`: the LEAP programme's partners upload files, and the platform ingests them end to end on Azurite.

1. starts Azurite (kept running afterwards, its data in .azurite/, so you can look around);
2. provisions platform storage and a drop zone per LEAP partner;
3. generates each partner's file about one population of children (devtools/leap_files.py: the trust's NHS
   numbers tokenised at source, the charity's family references and names, the nursery's own references), and
   two deliberately bad ones: a nursery file with children's addresses, which its agreement does not allow, and a
   charity spreadsheet with some invalid rows;
4. drops them into the drop zones, turns each new blob into the BlobCreated event Event Grid would send, and
   delivers it to the ingest function;
5. prints each receipt, the ledger, where the curated data is, and the audit chain's verification;
6. links the records into people (the person index) and publishes the standing reports, among them LEAP's
   service-combination impact table;
7. on a second, in-memory Azurite: ingests Thriving Families' synthetic families and builds the research extract
   for IFF Research under a recorded agreement, printing its manifest: the levels chosen, what was suppressed,
   the information lost and the re-identification risk (docs/extracts.md);
8. leaves the local host running in the background (devtools/localhost.py: the HTTP functions, the operator
   console and the upload page; new uploads delivered and queued rights work carried out), signed in locally as
   an operator with the three roles, and prints the console's address.

    python -m devtools.demo          # run the demo
    python -m devtools.demo --stop   # stop the Azurite and the local host it left running
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import date

from azure.core.exceptions import ResourceExistsError

from devtools import azurite, leap_files, synthetic
from devtools.eventgrid import deliver_in_process, waiting_uploads
from shared import runtime
from shared.platform.audit import AuditLog
from shared.platform.auth import LOCAL_MODE
from shared.platform.settings import Settings
from shared.platform.storage import AUDIT, CURATED, INGESTS, RECEIPTS, Storage
from shared.policy.loader import load_policy

ROOT = azurite.ROOT
STATE = ROOT / ".azurite"
POLICY = ROOT / "policies" / "leap.yaml"
FAMILIES_POLICY = ROOT / "policies" / "thriving-families.yaml"
FAMILIES = 4000
"""People in the Thriving Families extract demo: a few thousand families' children, as one city's service sees."""
DEFAULT_PORTS = (10000, 10001, 10002)
HOST_PORT = 7071
OPERATOR = "operator:Platform.Admin,DataProtection.Officer,Analyst"
"""Who the local host signs the browser in as: an operator with every role the console's panels need."""
PID_FILES = ("host-pid", "pid")  # the host first: it uses Azurite until it stops


def stop_previous() -> None:
    for name in PID_FILES:
        pid_file = STATE / name
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError, PermissionError):
                os.killpg(int(pid_file.read_text()), signal.SIGTERM)
            pid_file.unlink()


def start_azurite() -> azurite.Azurite:
    stop_previous()
    if STATE.exists():
        for item in STATE.iterdir():
            if item.is_file():
                item.unlink()
    STATE.mkdir(exist_ok=True)
    ports = DEFAULT_PORTS if all(not azurite._answers(port) for port in DEFAULT_PORTS) else None
    server = azurite.start(in_memory=False, location=STATE, ports=ports)
    (STATE / "pid").write_text(str(server.process.pid))
    return server


def local_key() -> str:
    """A random development key for this machine, kept (never committed) beside the emulator's data."""
    path = STATE / "local-root-key"
    if not path.exists():
        path.write_text(base64.b64encode(os.urandom(32)).decode())
    return path.read_text().strip()


def configure(server: azurite.Azurite) -> Storage:
    values = {"FDP_POLICY_PATH": str(POLICY), "FDP_INGEST_STORAGE": server.connection_string,
              "FDP_PLATFORM_STORAGE": server.connection_string, "FDP_LOCAL_ROOT_KEY": local_key()}
    # The demo's settings in local.settings.json's format: `make verify-audit` and `func start` can reuse them.
    settings = {"IsEncrypted": False, "Values": {"FUNCTIONS_WORKER_RUNTIME": "python",
                                                 "AzureWebJobsStorage": server.connection_string, **values}}
    (STATE / "demo.settings.json").write_text(json.dumps(settings, indent=2))
    os.environ.update(values)
    os.environ.pop("FDP_KEY_VAULT_URL", None)
    runtime.reset()
    storage = Storage.from_settings(Settings.from_env())
    storage.provision()
    return storage


def partner_files(policy) -> list[synthetic.SyntheticFile]:
    return [
        *leap_files.partner_files(policy, base64.b64decode(local_key())),
        synthetic.generate(policy, "family-support-charity", "sessions", rows=60, seed=2, invalid_rate=0.1,
                           fmt="xlsx", name="sessions-october.xlsx"),
        synthetic.generate(policy, "early-years-setting", "asq-assessments", rows=40, seed=3,
                           extra_columns=("child_address",), name="asq-new-starters.csv"),
    ]


def show_people() -> None:
    """Link every record into people, as the timer (or any rights request or report) would."""
    from shared.runtime import identity_service

    summary = identity_service().link("demo")
    print(f"\nPerson index (container 'linkage'): {summary['records']:,} records are {summary['persons']:,} people; "
          f"{summary['review']} pairs for review and {summary['conflicts']} conflicts in the queue "
          "(GET /api/identity/reviews)")


def drop(storage: Storage, file: synthetic.SyntheticFile) -> None:
    with contextlib.suppress(ResourceExistsError):
        storage.ingest_blobs.create_container(f"drop-{file.partner}")
    storage.raw_blob(f"drop-{file.partner}", file.blob_name).upload_blob(file.content, overwrite=False)


def show_receipt(receipt: dict) -> None:
    rows = receipt["rows"]
    print(f"\n  {receipt['partner']} / {receipt['file']}: {receipt['status'].upper()}")
    print(f"    {receipt['message']}")
    print(f"    rows read {rows['read']}, stored {rows['stored']}, invalid {rows['invalid']}, "
          f"no consent {rows['no_consent']}, on the suppression register {rows['suppressed']}")
    for problem in (receipt["rejection"] or [])[:5]:
        print(f"    - row {problem['row']}, column {problem['column']}: {problem['rule']}: {problem['message']}")
    for problem in receipt["errors"][:5]:
        print(f"    - row {problem['row']}, column {problem['column']}: {problem['rule']}: {problem['message']}")
    if receipt["errors_total"] > 5:
        print(f"    ... {receipt['errors_total'] - 5} more errors listed in the receipt")


def report(storage: Storage, server: azurite.Azurite) -> None:
    print("\nReceipts (platform storage, container 'receipts'):")
    container = storage.platform_container(RECEIPTS)
    for blob in container.list_blobs():
        show_receipt(json.loads(container.download_blob(blob.name).readall()))
    print("\nIngest ledger (table 'ingests'):")
    for row in storage.table(INGESTS).list_entities():
        counts = json.loads(row["counts"])
        print(f"  {row['PartitionKey']:<24} {row['RowKey'][:12]}  {row['status']:<9} dataset={row['dataset']} "
              f"stored={counts['stored']} key={row['key_version']} policy={row['policy_version']}")
    print("\nCurated data (container 'curated', pseudonymised Parquet by dataset and purge month):")
    for blob in storage.platform_container(CURATED).list_blobs():
        print(f"  curated/{blob.name}  ({blob.size:,} bytes)")
    verification = AuditLog(storage.table(AUDIT)).verify()
    print(f"\nAudit chain: {'intact' if verification.ok else 'BROKEN'}, {verification.entries} entries "
          "(make verify-audit checks it again)")
    print(f"""
Where to look
  Azurite is still running (blob {server.blob_port}, queue {server.queue_port}, table {server.table_port}), its data in
  .azurite/. Browse it with Azure Storage Explorer ("Attach to a local emulator"), or with this connection string:
    {server.connection_string}
  The raw uploads are gone from the drop-* containers; receipts/, curated/ and the tables hold what was kept.
  Stop Azurite with: make azurite-stop""")


def show_reports() -> None:
    """Run the programme's standing reports on what was just ingested."""
    from shared.runtime import report_service

    print("\nStanding reports (container 'reports', disclosure-controlled):")
    for metadata in report_service().refresh_all():
        hidden = metadata["cells_hidden"]
        print(f"  {metadata['report']}: {metadata['status']}"
              + (f" ({metadata['blocked_reason']})" if metadata["blocked_reason"] else
                 f", {hidden['primary']} cells suppressed, {hidden['secondary']} more to protect them")
              + f" -> reports/{metadata['report']}/{metadata['date']}/")
        if metadata["report"] == "service-impact" and metadata["status"] == "published":
            csv_text = report_service().storage.platform_blob(
                "reports", f"service-impact/{metadata['date']}/report.csv").download_blob().readall().decode()
            print("    " + csv_text.strip().replace("\n", "\n    "))


def show_extract() -> None:
    """Thriving Families' research extract, on an Azurite of its own (LEAP's demo data stays as it was)."""
    from shared.runtime import extract_service, identity_service

    print(f"\nThriving Families' research extract for IFF Research ({FAMILIES:,} synthetic people, on a second, "
          "in-memory Azurite):")
    server = azurite.start(in_memory=True)
    saved = {name: os.environ.get(name) for name in ("FDP_POLICY_PATH", "FDP_INGEST_STORAGE", "FDP_PLATFORM_STORAGE")}
    try:
        os.environ.update({"FDP_POLICY_PATH": str(FAMILIES_POLICY), "FDP_INGEST_STORAGE": server.connection_string,
                           "FDP_PLATFORM_STORAGE": server.connection_string})
        runtime.reset()
        storage = Storage.from_settings(Settings.from_env())
        storage.provision()
        policy = load_policy(FAMILIES_POLICY)
        drop(storage, synthetic.generate(policy, "thriving-families-team", "family-support", rows=FAMILIES, seed=15))
        for event in waiting_uploads(storage):
            deliver_in_process(event)
        identity_service().link("demo")
        made = extract_service().build("national-evaluation", "demo-dpo", {
            "recipient_principal": "iff-research-analyst", "agreed_at": date.today().isoformat()})
        show_manifest(made)
    finally:
        server.stop()
        os.environ.update({name: value for name, value in saved.items() if value is not None})
        runtime.reset()


def show_manifest(made: dict) -> None:
    loss, risk, suppressed = made["information_loss"], made["risk"], made["suppressed"]
    print(f"  {made['extract_id']}: {made['rows']:,} rows about {made['people']:,} people, "
          f"k {made['k']['achieved']} (required {made['k']['required']}), "
          f"l {made['l']['achieved']} on {', '.join(made['l']['sensitive'])} (required {made['l']['required']})")
    print("  levels: " + ", ".join(f"{column} as {level}" for column, level in made["generalisation"].items()))
    print(f"  suppressed: {suppressed['people']} people ({suppressed['rows']} rows), budget "
          f"{suppressed['budget_percent']:g}%;  information lost: {loss['overall']:.1%} ("
          + ", ".join(f"{c} {v:.0%}" for c, v in loss["by_column"].items()) + ")")
    print(f"  prosecutor re-identification risk: max {risk['max']:.2f}, mean {risk['mean']:.3f}")
    for reason in made["why_not_finer"]:
        print(f"  {reason['column']} as {reason['level']} would leave {reason['people_suppressed']:,} people "
              f"({reason['people_suppressed_percent']}%) in groups under k or l; the budget is "
              f"{reason['budget_people']} people" + ("" if not reason["within_budget"] else
                                                     f", and it would lose {reason['information_loss']:.1%}"))
    print(f"  the recipient downloads it with GET {made['download']} (audited); manifest.json beside extract.csv")


def onboard_partners(policy) -> None:
    """Each partner's drop zone with its stored access policy, so the console can issue and revoke links."""
    from shared.runtime import drop_zones

    for partner in policy.partners:
        drop_zones().onboard(partner)


def start_host(server: azurite.Azurite) -> str:
    """The local host, detached (it outlives this command; `make azurite-stop` stops it), signed in as the
    operator; it lets the upload page it serves send files straight to Azurite's drop zones (CORS) itself."""
    port = HOST_PORT if not azurite._answers(HOST_PORT) else azurite.free_port()
    origin = f"http://127.0.0.1:{port}"
    log = open(STATE / "host.log", "ab")  # noqa: SIM115 - handed to the host, which keeps it
    env = {**os.environ, "FDP_LOCAL_AUTH": LOCAL_MODE, "AzureWebJobsStorage": server.connection_string}
    host = subprocess.Popen(
        [sys.executable, "-m", "devtools.localhost", "--port", str(port), "--watch", "--sign-in-as", OPERATOR],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    (STATE / "host-pid").write_text(str(host.pid))
    deadline = time.monotonic() + 60
    while not azurite._answers(port):
        if host.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the local host did not start; see {STATE / 'host.log'}")
        time.sleep(0.2)
    return origin


def show_console(origin: str) -> None:
    print(f"""
Operator console
  {origin}/api/console
  The local host is running in the background (log: .azurite/host.log): it serves the HTTP functions, delivers
  new uploads and carries out queued rights work. Locally nobody signs in: it signs every browser request in
  as "{OPERATOR.split(':')[0]}" with the roles {OPERATOR.split(':')[1].replace(',', ', ')}
  (FDP_LOCAL_AUTH={LOCAL_MODE}; refused in Azure). It listens on 127.0.0.1 only.
  Stop it and Azurite with: make azurite-stop""")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stop", action="store_true", help="stop the Azurite the demo left running")
    if parser.parse_args().stop:
        stop_previous()
        print("Azurite and the local host stopped")
        return 0
    print("Starting Azurite ...")
    server = start_azurite()
    storage = configure(server)
    policy = load_policy(POLICY)
    print(f"Programme: {policy.programme.name} ({policy.programme.region}); partners: {', '.join(policy.partners)}")
    onboard_partners(policy)
    for file in partner_files(policy):
        drop(storage, file)
        print(f"  {file.partner} uploaded {file.blob_name} ({len(file.rows)} rows) to drop-{file.partner}")
    events = waiting_uploads(storage)
    print(f"\nDelivering {len(events)} BlobCreated events to the ingest function (the local stand-in for Event Grid)")
    for event in events:
        deliver_in_process(event)
    report(storage, server)
    show_people()
    show_reports()
    show_extract()
    show_console(start_host(server))
    return 0


if __name__ == "__main__":
    sys.exit(main())
