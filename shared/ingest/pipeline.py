"""The ingest pipeline: one partner upload, from its drop zone to curated storage and a receipt.

    resolve partner and dataset -> spool and recognise the file -> check header and rows against the contract
    -> drop rows without consent or on the suppression register -> pseudonymise, generalise, minimise
    -> write Parquet (temporary) -> rows sent again (row key): plan what they replace -> upload curated files
    -> the upload's records for the person index -> receipt -> ledger (the commit point) -> audit
    -> carry out the replacements -> delete the raw file (with any snapshot of it)

Every step before the ledger is idempotent (deterministic names, upserts), and every step after it is retried
from the ledger alone, so a crash between any two steps followed by a retry ends with one copy of the data and
one ledger row. Every ledger write is conditional on the row as this delivery read it, and a final row is never
written again, so two deliveries of one upload at once cannot move it backwards. An error that is not the
file's fault (storage unavailable, say) propagates: the raw file stays where it is and Event Grid delivers the
event again. A name the platform cannot process gets a receipt that says so and the event completes.

Calls to storage that do not depend on each other are made at once (`_together`), so that a small upload waits
for seven or eight round trips rather than twelve: the ledger and the blob's properties; the ledger's first row,
the suppression register and the download; the curated files, the upload's records for the person index and the
receipt. Each group completes before the next step starts, so the order above holds at every commit point.

The upload's name is never stored or logged as given (a partner may name a file after a child): the receipt,
ledger and audit log hold `names.shown_name`, and the SDK's request log lines have drop zone paths withheld.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import IO, Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobProperties, BlobType, StorageStreamDownloader

from shared.identity.index import PersonIndex
from shared.identity.keys import KeySource, RootKey
from shared.identity.pseudonymise import Pseudonymiser, scoped_type
from shared.identity.records import RecordMaker
from shared.identity.register import SuppressionRegister, SuppressionSnapshot
from shared.ingest import columnar, curated, ledger, names
from shared.ingest.events import BlobCreated, bare_etag
from shared.ingest.formats import TextProfile, read_table, spool, too_large
from shared.ingest.ledger import Ledger, LedgerConflict, LedgerEntry
from shared.ingest.receipts import ProblemLog, RowCounts, RowList, build_receipt, receipt_path
from shared.ingest.replace import Replacer
from shared.platform.audit import AuditLog
from shared.platform.storage import AUDIT, CURATED, INGESTS, RECEIPTS, REGISTER, Storage
from shared.policy.contracts import BoundContract, CheckedRow, FileRejected, Problem
from shared.policy.loader import Dataset, Partner, Policy
from shared.policy.retention_rules import purge_month

log = logging.getLogger("fdp.ingest")
REJECTED_EVENT = "fdp.ingest.rejected"
names.redact_sdk_urls()

STEPS = ("processed", "curated", "indexed", "receipt", "ledger", "audited", "replaced", "deleted")
"""The points between steps where a crash can happen; tests inject one after each."""


@dataclass
class Outcome:
    status: str
    """accepted, accepted_with_errors, rejected, duplicate, gone or ignored."""
    ingest_id: str | None = None
    receipt: dict[str, Any] | None = None


@dataclass
class Upload:
    """One upload's state as it moves through the pipeline."""

    event: BlobCreated
    partner_id: str
    etag: str
    received_at: datetime
    shown: str = names.WITHHELD
    """The name as receipts, the ledger and the audit log may hold it (names.shown_name)."""
    size: int | None = None
    counts: RowCounts = field(default_factory=RowCounts)
    left_out: RowList = field(default_factory=RowList)
    """Rows with no error that were not stored (no consent, suppressed, superseded), by row number."""
    replacing: list[int] = field(default_factory=list)
    """This upload's rows that replaced a copy stored before."""
    replacements: str | None = None
    """The saved replacement plan, carried out after the commit point."""
    problems: ProblemLog = field(default_factory=ProblemLog)
    rejection: list[Problem] | None = None
    dataset: Dataset | None = None
    files: dict[str, str] = field(default_factory=dict)
    """Purge month -> curated blob name."""
    linkage: dict[str, Path] = field(default_factory=dict)
    """Purge month -> the local linkage columns of that file's rows."""
    reader: str | None = None
    """Which path read the rows: columnar or rows."""


class IngestPipeline:
    def __init__(self, policy: Policy, storage: Storage, keys: KeySource, *,
                 checkpoint: Callable[[str], None] = lambda step: None) -> None:
        self.policy = policy
        self.storage = storage
        self.keys = keys
        self.ledger = Ledger(storage.table(INGESTS))
        self.audit = AuditLog(storage.table(AUDIT))
        self.register = SuppressionRegister(storage.table(REGISTER))
        self.index = PersonIndex(storage, keys)
        self.replacer = Replacer(storage, self.index)
        self._checkpoint = checkpoint

    # Entry point -----------------------------------------------------------------------------------------

    def handle(self, event: BlobCreated) -> Outcome:
        if not event.container.startswith("drop-"):
            log.warning("ignored an event for a container that is not a drop zone")
            return Outcome("ignored")
        partner_id = event.container.removeprefix("drop-")
        ingest_id = event.ingest_id
        reason = names.unprocessable(event.blob)
        earlier, properties = _together(
            lambda: self.ledger.get(partner_id, ingest_id),
            lambda: None if reason else _properties_or_error(self.storage.raw_blob(event.container, event.blob)))
        if earlier is not None and earlier.final:
            self._finish(partner_id, ingest_id, earlier.fields, event.blob)
            log.info("ingest %s: already %s; finished its remaining steps", ingest_id, earlier.status)
            return Outcome("duplicate", ingest_id)
        if reason is not None:
            return self._refuse_name(event, partner_id, ingest_id, earlier, reason)
        if isinstance(properties, ResourceNotFoundError):
            log.warning("ingest %s: the raw file is gone and no ledger entry completed it", ingest_id)
            return Outcome("gone", ingest_id)
        if isinstance(properties, HttpResponseError):
            if properties.status_code != 400:
                raise properties  # not the name's fault (storage unavailable, access refused): Event Grid retries
            return self._refuse_name(event, partner_id, ingest_id, earlier, "storage cannot read a file of this name")
        if event.etag and bare_etag(properties.etag) != event.etag:
            log.info("ingest %s: the blob was replaced by a newer upload, which has its own event", ingest_id)
            return Outcome("ignored", ingest_id)
        partner = self.policy.partner_for_container(event.container)
        upload = Upload(event, partner_id, properties.etag, properties.creation_time.astimezone(UTC),
                        shown=names.shown_name(event.blob, sorted(partner.datasets) if partner else []),
                        size=properties.size)
        return self._ingest(upload, ingest_id, properties, earlier)

    # The pipeline ----------------------------------------------------------------------------------------

    def _ingest(self, upload: Upload, ingest_id: str, properties: Any, earlier: LedgerEntry | None) -> Outcome:
        partner = self.policy.partner_for_container(upload.event.container)
        key = self.keys.root_key()
        readable = properties.blob_type == BlobType.BLOCKBLOB and \
            properties.size <= self.policy.programme.limits.max_file_bytes
        try:
            current, register, download = _together(
                lambda: self.ledger.write(upload.partner_id, ingest_id, ledger.PROCESSING, earlier, file=upload.shown,
                                          etag=upload.etag, received_at=upload.received_at.isoformat(),
                                          files=(earlier.fields.get("files", []) if earlier else [])),
                self.register.snapshot, lambda: self._download(upload) if readable else None)
        except LedgerConflict:
            return self._after_conflict(upload.partner_id, ingest_id, upload.event.blob)
        writer: curated.CuratedWriter | None = None
        try:
            upload.dataset = self._resolve(partner, upload.event.blob)
            if properties.blob_type != BlobType.BLOCKBLOB:
                raise FileRejected(Problem("upload.blob_type", "upload the file as a block blob (AzCopy, Storage "
                                                               "Explorer and the upload page all do)"))
            if download is None:
                raise FileRejected(too_large(self.policy.programme.limits.max_file_bytes))
            writer = curated.CuratedWriter(upload.dataset.contract, self._file_metadata(ingest_id, key))
            local_files = self._process(upload, ingest_id, key, writer, download, register)
            upload.linkage = writer.linkage_files()
            self._checkpoint("processed")
            current, receipt = self._publish(upload, ingest_id, local_files, earlier, current)
        except FileRejected as rejected:
            upload.rejection, upload.files = rejected.problems, {}
            upload.counts, upload.left_out, upload.replacing, upload.replacements = RowCounts(), RowList(), [], None
            receipt = None
            self._forget_stale_files(earlier, keep=set())
            if earlier is not None:
                self.replacer.discard(ingest_id)
        except LedgerConflict:
            return self._after_conflict(upload.partner_id, ingest_id, upload.event.blob)
        finally:
            if writer is not None:
                writer.discard()
        return self._commit(upload, ingest_id, key.version, current, receipt)

    def _commit(self, upload: Upload, ingest_id: str, key_version: str, current: LedgerEntry,
                receipt: dict[str, Any] | None = None) -> Outcome:
        """Receipt (unless it was written with the curated files), then the ledger's final row (the commit
        point), then the steps after it."""
        if receipt is None:
            receipt = self._write_receipt(upload, ingest_id)
        status = ledger.REJECTED if upload.rejection else ledger.ACCEPTED
        fields = {"file": upload.shown, "size": upload.size, "etag": upload.etag,
                  "dataset": upload.dataset.name if upload.dataset else None,
                  "received_at": upload.received_at.isoformat(), "completed_at": datetime.now(UTC).isoformat(),
                  "counts": upload.counts.as_dict(), "files": sorted(upload.files.values()),
                  "receipt": receipt_path(upload.partner_id, ingest_id), "receipt_status": receipt["status"],
                  "replacements": upload.replacements, "key_version": key_version,
                  "policy_version": self.policy.version}
        try:
            self.ledger.write(upload.partner_id, ingest_id, status, current, **fields)
        except LedgerConflict:
            return self._after_conflict(upload.partner_id, ingest_id, upload.event.blob)
        self._checkpoint("ledger")
        self._finish(upload.partner_id, ingest_id, {**fields, "status": status}, upload.event.blob)
        counts = upload.counts
        if status == ledger.REJECTED:  # the stable event the bulk-refusal alert counts (partner and dataset ids only)
            log.warning("%s partner=%s dataset=%s", REJECTED_EVENT, upload.partner_id, fields["dataset"])
        log.info("ingest %s: %s partner=%s dataset=%s path=%s rows read=%d stored=%d invalid=%d no_consent=%d "
                 "suppressed=%d replaced=%d superseded=%d", ingest_id, receipt["status"], upload.partner_id,
                 fields["dataset"], upload.reader, counts.read, counts.stored, counts.invalid, counts.no_consent,
                 counts.suppressed, counts.replaced, counts.superseded)
        return Outcome(receipt["status"], ingest_id, receipt)

    def _after_conflict(self, partner_id: str, ingest_id: str, blob: str) -> Outcome:
        """Another delivery of the same upload wrote its ledger row after this one read it. If that one has
        committed, finish its remaining steps; if it is still processing, leave the upload to it (if it fails,
        Event Grid delivers its event again). Either way this delivery writes no more."""
        entry = self.ledger.get(partner_id, ingest_id)
        if entry is not None and entry.final:
            self._finish(partner_id, ingest_id, entry.fields, blob)
            log.info("ingest %s: another delivery committed it as %s; finished its remaining steps", ingest_id,
                     entry.status)
        else:
            log.info("ingest %s: another delivery of this upload is processing it; this one stops", ingest_id)
        return Outcome("duplicate", ingest_id)

    def _refuse_name(self, event: BlobCreated, partner_id: str, ingest_id: str, earlier: LedgerEntry | None,
                     reason: str) -> Outcome:
        """A name storage accepted but the platform cannot read the file under: rejected from the event alone.
        The raw file cannot be deleted under that name either; the drop zone's lifecycle rule deletes it."""
        partner = self.policy.partner_for_container(event.container)
        upload = Upload(event, partner_id, event.etag or "", datetime.now(UTC),
                        shown=names.shown_name(event.blob, sorted(partner.datasets) if partner else []),
                        size=event.size)
        upload.rejection = [Problem("upload.name", f"{reason}: upload the file again under a plain name (letters, "
                                                   "digits, - and _) in the folder of its dataset")]
        try:
            current = self.ledger.write(partner_id, ingest_id, ledger.PROCESSING, earlier, file=upload.shown,
                                        etag=upload.etag, received_at=upload.received_at.isoformat(), files=[])
        except LedgerConflict:
            return self._after_conflict(partner_id, ingest_id, event.blob)
        log.warning("ingest %s: the file's name cannot be processed (%s); rejected, and left for the drop zone's "
                    "lifecycle rule to delete", ingest_id, reason)
        return self._commit(upload, ingest_id, self.keys.root_key().version, current)

    def _resolve(self, partner: Partner | None, blob: str) -> Dataset:
        if partner is None:
            raise FileRejected(Problem("upload.unknown_partner", "this drop zone belongs to no partner in the policy"))
        folder = blob.split("/", 1)[0] if "/" in blob else ""
        dataset = partner.datasets.get(folder)
        if dataset is None:
            allowed = ", ".join(sorted(partner.datasets))
            raise FileRejected(Problem("upload.unknown_dataset",
                                       f"upload into the folder of an agreed dataset: {allowed}"))
        return dataset

    def _file_metadata(self, ingest_id: str, key: RootKey) -> dict[str, str]:
        return {"fdp.ingest_id": ingest_id, "fdp.key_version": key.version,
                "fdp.policy_version": self.policy.version}

    def _download(self, upload: Upload) -> StorageStreamDownloader:
        """The upload's first chunk (all of a small file), only while it is the version this event is about."""
        raw = self.storage.raw_blob(upload.event.container, upload.event.blob)
        return raw.download_blob(etag=upload.etag, match_condition=MatchConditions.IfNotModified)

    def _process(self, upload: Upload, ingest_id: str, key: RootKey, writer: curated.CuratedWriter,
                 download: StorageStreamDownloader, register: SuppressionSnapshot) -> dict[str, Path]:
        limits = self.policy.programme.limits
        with spool(download.chunks(), limits.max_file_bytes) as spooled:
            self._checkpoint("downloaded")
            return transform(spooled, self.policy, upload, ingest_id, key, register, writer,
                             previous_keys=[earlier.material for earlier in self.keys.previous_keys()])

    def _publish(self, upload: Upload, ingest_id: str, local_files: dict[str, Path],
                 earlier: LedgerEntry | None, current: LedgerEntry) -> tuple[LedgerEntry, dict[str, Any]]:
        """Plan replacements, record the curated files' names in the ledger, then write the curated files, the
        upload's records for the person index and the receipt at once (all before the commit point)."""
        dataset = upload.dataset
        assert dataset is not None
        prepared = self.replacer.prepare(dataset, upload.partner_id, ingest_id, upload.received_at, local_files,
                                         upload.linkage, upload.counts, upload.left_out)
        local_files, upload.linkage, upload.replacing = prepared.local, prepared.linkage, prepared.replacing
        upload.files = {month: curated.curated_path(dataset.name, month, upload.partner_id, ingest_id)
                        for month in local_files}
        self._forget_stale_files(earlier, set(upload.files.values()))
        current = self.ledger.write(upload.partner_id, ingest_id, ledger.PROCESSING, current, file=upload.shown,
                                    etag=upload.etag, received_at=upload.received_at.isoformat(),
                                    files=sorted(upload.files.values()))
        if prepared.plan is not None:
            upload.replacements = prepared.plan.name
        receipt = self._receipt(upload, ingest_id)
        _together(*(lambda month=month, local=local: self._upload_curated(upload, ingest_id, month, local)
                    for month, local in local_files.items()),
                  lambda: self.index.write_records(ingest_id, upload.partner_id, dataset.name, (
                      (upload.files[month], part) for month, path in upload.linkage.items()
                      for part in curated.row_groups(path))),
                  lambda: self._store_receipt(upload.partner_id, ingest_id, receipt))
        self._checkpoint("curated")
        if prepared.plan is not None:
            self.replacer.save(prepared.plan)
        elif earlier is not None:
            self.replacer.discard(ingest_id)
        self._checkpoint("indexed")
        self._checkpoint("receipt")
        return current, receipt

    def _upload_curated(self, upload: Upload, ingest_id: str, month: str, local: Path) -> None:
        dataset = upload.dataset
        assert dataset is not None
        metadata = curated.file_metadata(local, dataset, upload.partner_id, ingest_id, upload.received_at.date(),
                                         upload.received_at)
        with local.open("rb") as data:
            self.storage.platform_blob(CURATED, upload.files[month]).upload_blob(
                data, overwrite=True, max_concurrency=2, metadata=metadata)

    def _forget_stale_files(self, earlier: ledger.LedgerEntry | None, keep: set[str]) -> None:
        """A retry whose rows fall in fewer months than before (the register changed) removes the extra files."""
        for name in (earlier.fields.get("files", []) if earlier else []):
            if name not in keep:
                with contextlib.suppress(ResourceNotFoundError):
                    self.storage.platform_blob(CURATED, name).delete_blob()

    def _write_receipt(self, upload: Upload, ingest_id: str) -> dict[str, Any]:
        receipt = self._receipt(upload, ingest_id)
        self._store_receipt(upload.partner_id, ingest_id, receipt)
        self._checkpoint("receipt")
        return receipt

    def _receipt(self, upload: Upload, ingest_id: str) -> dict[str, Any]:
        return build_receipt(
            ingest_id=ingest_id, partner=upload.partner_id,
            dataset=upload.dataset.name if upload.dataset else None, file=upload.shown,
            received_at=upload.received_at.isoformat(), counts=upload.counts, problems=upload.problems,
            rejection=upload.rejection, policy_version=self.policy.version, size=upload.size,
            left_out=upload.left_out, replacing=upload.replacing)

    def _store_receipt(self, partner_id: str, ingest_id: str, receipt: dict[str, Any]) -> None:
        self.storage.platform_blob(RECEIPTS, receipt_path(partner_id, ingest_id)).upload_blob(
            json.dumps(receipt, indent=2).encode(), overwrite=True, content_settings=_json_content())

    def _finish(self, partner_id: str, ingest_id: str, fields: dict[str, Any], blob: str) -> None:
        """The steps after the commit point, each safe to repeat: audit once, carry out the replacements, then
        delete the raw file with any snapshot of it (only the upload we processed: its ETag must still match).
        `blob` comes from the event: the ledger does not hold the name as given."""
        status = fields.get("status") or fields.get("receipt_status")
        self.audit.append(f"ingest.{'rejected' if status == ledger.REJECTED else 'accepted'}", {
            "ingest_id": ingest_id, "partner": partner_id, "dataset": fields.get("dataset"),
            "rows": fields.get("counts"), "files": len(fields.get("files") or []),
            "key_version": fields.get("key_version"), "policy_version": fields.get("policy_version"),
        }, key=f"ingest:{ingest_id}")
        self._checkpoint("audited")
        if fields.get("replacements"):
            self.replacer.execute(ingest_id)
        self._checkpoint("replaced")
        if names.unprocessable(blob) is None:
            raw = self.storage.raw_blob(f"drop-{partner_id}", blob)
            try:
                raw.delete_blob(delete_snapshots="include", etag=fields["etag"],
                                match_condition=MatchConditions.IfNotModified)
            except (ResourceNotFoundError, ResourceModifiedError):
                pass  # gone already, or the name now holds a newer upload (which has its own event): leave it
            except HttpResponseError as error:
                if error.status_code != 400:
                    raise
                log.warning("ingest %s: storage cannot address the raw file by its name; the drop zone's lifecycle "
                            "rule deletes it", ingest_id)
        self._checkpoint("deleted")

def transform(spooled: IO[bytes], policy: Policy, upload: Upload, ingest_id: str, key: RootKey,
              register: SuppressionSnapshot, writer: curated.CuratedWriter, *,
              previous_keys: Sequence[bytes] = ()) -> dict[str, Path]:
    """The pipeline's core, with no storage in it: read, check, pseudonymise, generalise, write local Parquet.
    Returns purge month -> local file; counts and row problems accumulate on `upload`.

    CSV files whose records are single lines take the columnar path, everything else (and a file that turns out
    not to be) the row path; both give the same result."""
    dataset = upload.dataset
    assert dataset is not None
    limits = policy.programme.limits
    header, rows, profile = read_table(spooled, limits.max_line_chars)
    bound = BoundContract(dataset.contract, header)
    pseudonymiser = Pseudonymiser(key.material)
    records = RecordMaker(key.material, pseudonymiser, upload.partner_id, previous_keys)
    handler = _RowHandler(policy, dataset, upload, ingest_id, records, register)
    upload.reader = "rows"
    # While an earlier root key is still read after a rotation, each identifier is pseudonymised under it too:
    # such files take the row path.
    sheet = profile is None
    if (sheet or columnar.can_read(profile, limits.max_line_chars)) and not records.previous:
        try:
            context = _columnar_context(policy, upload, ingest_id, bound, handler, records, register, profile)
            if sheet:
                columnar.transform_rows(rows, context, upload.counts, writer)
            else:
                rows.close()  # the row reader lets go of the file before Arrow reads it
                spooled.seek(0)
                columnar.transform(spooled, context, upload.counts, writer)
            upload.reader = "columnar"
        except columnar.Fallback:
            log.info("ingest %s: a row is not plain CSV; reading the file again row by row", ingest_id)
            upload.counts, upload.problems, upload.left_out = RowCounts(), ProblemLog(), RowList()
            writer.reset()
            spooled.seek(0)
            _, rows, _ = read_table(spooled, limits.max_line_chars)
    if upload.reader == "rows":
        received = upload.received_at.date()
        for number, cells in rows:
            if upload.counts.read >= limits.max_rows:
                raise FileRejected(Problem("file.too_many_rows", f"more than {limits.max_rows} rows", number))
            handler.handle(bound.check(number, cells, received), writer)
    if upload.counts.read == 0:
        raise FileRejected(Problem("file.no_rows", "the file has a header but no rows", row=2))
    return writer.finish()


def _columnar_context(policy: Policy, upload: Upload, ingest_id: str, bound: BoundContract, handler: _RowHandler,
                      records: RecordMaker, register: SuppressionSnapshot,
                      profile: TextProfile | None) -> columnar.Context:
    """What the columnar path needs to know; an Excel sheet (no text profile) may hold any character in a cell."""
    dataset = upload.dataset
    assert dataset is not None
    limits, scanned = policy.programme.limits, profile is not None
    if profile is None:
        profile = TextProfile(encoding="utf-8", ascii=False, longest_line=limits.max_line_chars, quoted=False,
                              lone_carriage_return=False)
    return columnar.Context(
        bound=bound, handler=handler, pseudonymiser=records.pseudonymiser, records=records, partner=upload.partner_id,
        ingest_id=ingest_id,
        received=upload.received_at.date(), needs_consent=dataset.basis == "consent",
        suppressed=register.suppressed(dataset.basis), retention_column=dataset.retention.column,
        max_rows=policy.programme.limits.max_rows, ascii=profile.ascii, longest_line=profile.longest_line,
        encoding=profile.encoding, quoted=profile.quoted, scanned=scanned, left_out=upload.left_out)


class _RowHandler:
    """Turns checked rows into stored rows: consent, pseudonyms, suppression, purge month."""

    def __init__(self, policy: Policy, dataset: Dataset, upload: Upload, ingest_id: str,
                 records: RecordMaker, register: SuppressionSnapshot) -> None:
        self.policy, self.dataset, self.upload = policy, dataset, upload
        self.ingest_id = ingest_id
        self.records = records
        self.pseudonymiser = records.pseudonymiser
        self.register = register
        self.needs_consent = dataset.basis == "consent"
        self._months: dict[date | None, str] = {}
        self.reject_on_error = dataset.contract.invalid_rows == "reject_file"

    def handle(self, result: tuple[CheckedRow | None, list[Problem]], writer: curated.CuratedWriter) -> None:
        checked, problems = result
        counts = self.upload.counts
        counts.read += 1
        if problems or checked is None:
            if self.reject_on_error:
                raise FileRejected(problems)
            counts.invalid += 1
            self.upload.problems.add(problems)
            return
        if self.needs_consent and checked.consent is not True:
            counts.no_consent += 1
            self.upload.left_out.add("no_consent", checked.row)
            return
        pseudonyms = {column.output_name or "": self.pseudonymiser.pseudonym(
            scoped_type(column.id_type or "", self.upload.partner_id), value)
            for column, value in checked.identifiers}
        linkage = self.records.record(((column.id_type or "", column.names_a_person, value,
                                        pseudonyms[column.output_name or ""]) for column, value in checked.identifiers),
                                      checked.match)
        if self.register.suppresses(linkage.suppression_keys, self.dataset.basis):
            counts.suppressed += 1
            self.upload.left_out.add("suppressed", checked.row)
            return
        month = self.purge_month(checked.dates.get(self.dataset.retention.column or ""))
        record = {**checked.values, **pseudonyms, curated.SUBJECT_ID: next(iter(pseudonyms.values())),
                  curated.INGEST_ID: self.ingest_id, curated.PURGE_MONTH: month, curated.ROW: checked.row,
                  **linkage.columns(curated.LINKAGE, tokens=self.dataset.contract.matches)}
        writer.add(month, record)
        counts.stored += 1

    def purge_month(self, anchor: date | None) -> str:
        """Rows share few anchor dates (one received date, or birth dates within a few years): plan each once."""
        month = self._months.get(anchor)
        if month is None:
            month = self._months[anchor] = purge_month(
                self.dataset.retention, received=self.upload.received_at.date(),
                programme_end=self.policy.programme.programme_end, anchor_value=anchor)
        return month


@cache
def _threads() -> ThreadPoolExecutor:
    """Threads for `_together`, started once per process (and again in a forked child, which has none)."""
    return ThreadPoolExecutor(max_workers=8, thread_name_prefix="fdp-ingest-io")


os.register_at_fork(after_in_child=_threads.cache_clear)


def _together(first: Callable[[], Any], *others: Callable[[], Any]) -> list[Any]:
    """Independent storage calls made at once, so that they cost one round trip's wait, not one each: the first
    here, the others on the process's I/O threads (none of them calls `_together` again, so none waits for a
    thread). Every call completes before this returns; then the first error, in the order given, is raised."""
    futures = [_threads().submit(call) for call in others]
    try:
        results = [first()]
    finally:
        wait(futures)
    return results + [future.result() for future in futures]


def _properties_or_error(raw: Any) -> BlobProperties | HttpResponseError:
    """The raw file's properties, or the error storage answered with (the caller decides what it means)."""
    try:
        return raw.get_blob_properties()
    except HttpResponseError as error:
        return error


def _json_content() -> Any:
    from azure.storage.blob import ContentSettings

    return ContentSettings(content_type="application/json")
