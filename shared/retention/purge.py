"""The retention run: purge what is past its time, provably, and nothing before.

Curated files are partitioned by purge month, and each carries (as blob metadata) its row count and the retention
rule it was planned under, so a plan needs no file opened unless a legal hold on a person or a changed rule
requires it. A run on date D deletes every partition whose purge month ended before D, except held data; files
planned under an older rule are first re-planned under the current one (rows move to the partitions of their new
purge months); exports past their expiry are destroyed. Each run writes one deletion record (what, when, under
which rule, row counts, no identities) to reports/retention/ and the audit log.

A run is journalled: its record is written before anything is deleted, with the plan, and completed after. A run
interrupted half way and started again resumes its own plan (deleting a deleted file is a no-op), and a finished
run is never repeated, so there is never a partial state nor a second record for the same date.

The record counts what was deleted, not what was planned: each delete or trim records the rows it removed from the
file as it found it (`rows_deleted`), and the summary adds those up. Progress is saved every SAVE_EVERY actions; a
resumed run that finds a file of a not-yet-saved action already gone counts the rows planned for it, since its own
first attempt deleted it. Every rewrite of a curated file, here and by rights work, keeps the file's metadata with
its new row count, so plans and previews read true counts without opening files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from shared.identity.index import PersonIndex, record_id
from shared.ingest import curated
from shared.platform.audit import AuditLog
from shared.platform.storage import AUDIT, CURATED, EXPORTS, EXTRACT_PACKAGES, HOLDS, REPORTS, Storage
from shared.policy.loader import Dataset, Policy
from shared.policy.retention_rules import describe, due, fingerprint, purge_month
from shared.retention.holds import ActiveHolds, HoldRegister

RECORDS = "retention"
SAVE_EVERY = 50
"""A run saves its progress (which actions are done, and what each deleted) after this many actions."""


@dataclass(frozen=True)
class CuratedFile:
    name: str
    dataset: str
    partner: str
    ingest_id: str
    purge_month: str
    rows: int
    received: date
    rule: str

    @classmethod
    def from_blob(cls, blob: Any) -> CuratedFile | None:
        meta = blob.metadata or {}
        parts = dict(p.split("=", 1) for p in blob.name.split("/")[1:-1] if "=" in p)
        if "purge_month" not in parts or "partner" not in parts:
            return None
        return cls(blob.name, blob.name.split("/", 1)[0], parts["partner"], blob.name.rsplit("/", 1)[1][:-8],
                   parts["purge_month"], int(meta.get("rows", 0)),
                   date.fromisoformat(meta.get("received", "1970-01-01")), meta.get("retention", ""))


class RetentionService:
    def __init__(self, policy: Policy, storage: Storage, index: PersonIndex,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.policy, self.storage, self.index, self.clock = policy, storage, index, clock
        self.holds = HoldRegister(storage.table(HOLDS))
        self.audit = AuditLog(storage.table(AUDIT))

    # Planning ---------------------------------------------------------------------------------------------

    def plan(self, on: date) -> list[dict[str, Any]]:
        """What a run on `on` would do, file by file: replan, delete, keep-held or trim-held."""
        holds = self.holds.active()
        actions = []
        for file in self._files():
            dataset = self._dataset(file)
            if dataset is None:
                continue  # a dataset no longer in the policy: kept until an operator decides
            if file.rule and file.rule != fingerprint(dataset.retention):
                actions.append(self._replan_action(file, dataset, on))
            elif due(file.purge_month, on):
                actions.append(self._due_action(file, dataset, holds))
        return actions

    def _replan_action(self, file: CuratedFile, dataset: Dataset, on: date) -> dict[str, Any]:
        months = Counter(self._new_months(file, dataset))
        return {"action": "replan", "file": file.name, "dataset": file.dataset, "partner": file.partner,
                "from_month": file.purge_month, "to_months": dict(sorted(months.items())),
                "rows": file.rows, "rule": describe(dataset.retention),
                "due_after_replan": sum(n for month, n in months.items() if due(month, on))}

    def _due_action(self, file: CuratedFile, dataset: Dataset, holds: ActiveHolds) -> dict[str, Any]:
        action = {"file": file.name, "dataset": file.dataset, "partner": file.partner,
                  "purge_month": file.purge_month, "rows": file.rows, "rule": describe(dataset.retention)}
        if holds.covers_dataset(file.dataset):
            return {**action, "action": "held"}
        held = len(self._held_rows(file.name, holds)) if holds.people else 0
        if held:
            return {**action, "action": "trim", "rows": file.rows - held, "held_rows": held}
        return {**action, "action": "delete"}

    def preview(self, on: date) -> dict[str, Any]:
        """Counts per dataset and purge month: what a run on `on` would delete, keep for a hold, or re-plan."""
        actions = self.plan(on)
        deleted: Counter[tuple[str, str]] = Counter()
        held: Counter[tuple[str, str]] = Counter()
        for a in actions:
            if a["action"] in ("delete", "trim"):
                deleted[(a["dataset"], a["purge_month"])] += a["rows"]
            if a["action"] in ("held", "trim"):
                held[(a["dataset"], a["purge_month"])] += a.get("held_rows", a["rows"])
        return {"date": on.isoformat(),
                "delete": [{"dataset": d, "purge_month": m, "rows": n} for (d, m), n in sorted(deleted.items())],
                "held": [{"dataset": d, "purge_month": m, "rows": n} for (d, m), n in sorted(held.items())],
                "replan": [{k: a[k] for k in ("dataset", "from_month", "to_months", "rows", "rule",
                                               "due_after_replan")} for a in actions if a["action"] == "replan"],
                "exports_expired": len(self._expired_exports(on))}

    # Running ----------------------------------------------------------------------------------------------

    def run(self, on: date) -> dict[str, Any]:
        if on > self.clock().date():
            raise ValueError("a retention run cannot be dated in the future")
        record_blob = self.storage.platform_blob(REPORTS, f"{RECORDS}/{on.isoformat()}.json")
        record = self._read_record(record_blob)
        if record and record["status"] == "completed":
            return record
        resumed = record is not None
        if record is None:
            record = {"run": f"retention-{on.isoformat()}", "date": on.isoformat(), "status": "in_progress",
                      "started_at": self.clock().isoformat(), "actions": self.plan(on),
                      "exports": self._expired_exports(on)}
            record_blob.upload_blob(json.dumps(record, indent=2), overwrite=True)
        unsaved = 0
        for action in record["actions"]:
            if action.get("done"):
                continue
            deleted = self._execute(action, on)
            if action["action"] in ("delete", "trim"):
                action["rows_deleted"] = deleted if deleted is not None else (action["rows"] if resumed else 0)
            action["done"] = True
            unsaved += 1
            if unsaved >= SAVE_EVERY:
                record_blob.upload_blob(json.dumps(record, indent=2), overwrite=True)
                unsaved = 0
        self._destroy_exports(record["exports"], record["run"])
        record.update(status="completed", completed_at=self.clock().isoformat(), summary=self._summary(record))
        record_blob.upload_blob(json.dumps(record, indent=2), overwrite=True)
        self.audit.append("retention.run", {"run": record["run"], **record["summary"]}, key=record["run"])
        return record

    def _execute(self, action: dict[str, Any], on: date) -> int | None:
        """Carry out one action; for a delete or trim, the rows it removed (None: the file was already gone)."""
        kind = action["action"]
        if kind == "replan":
            self._replan(action["file"])
        elif kind == "delete":
            return self._purge_file(action["file"], keep=frozenset())
        elif kind == "trim":
            return self._purge_file(action["file"], keep=self._held_rows(action["file"], self.holds.active()))
        return 0

    @staticmethod
    def _summary(record: dict[str, Any]) -> dict[str, Any]:
        """What the run did: rows deleted per dataset and purge month, as counted when each file was deleted."""
        deleted: Counter[str] = Counter()
        for a in record["actions"]:
            if a["action"] in ("delete", "trim"):
                deleted[f"{a['dataset']}/{a['purge_month']}"] += a.get("rows_deleted", a["rows"])
        return {"rows_deleted": sum(deleted.values()), "by_partition": dict(sorted(deleted.items())),
                "files_replanned": sum(a["action"] == "replan" for a in record["actions"]),
                "files_held": sum(a["action"] in ("held", "trim") for a in record["actions"]),
                "exports_destroyed": len(record["exports"])}

    # File operations (each safe to repeat) ----------------------------------------------------------------

    def _purge_file(self, name: str, keep: frozenset[int]) -> int | None:
        """The person index's records first (they name the file's rows), then the rows; `keep` are held rows.
        Returns the rows deleted (0 if the file changed meanwhile), or None if the file is gone."""
        opened = self._open(name)
        if opened is None:
            return None
        file, table, etag, metadata = opened
        held = curated.row_mask(table, sorted(keep)) if keep else pa.array([False] * len(table))
        gone = table.filter(pc.invert(held))
        self._unindex(file, gone)
        blob = self.storage.platform_blob(CURATED, name)
        try:
            if len(gone) == len(table):
                blob.delete_blob(etag=etag, match_condition=MatchConditions.IfNotModified)
            else:
                blob.upload_blob(curated.to_bytes(table.filter(held)), overwrite=True, etag=etag,
                                 match_condition=MatchConditions.IfNotModified,
                                 metadata={**metadata, "rows": str(len(table) - len(gone))})
        except (ResourceNotFoundError, ResourceModifiedError):
            return 0  # deleted or rewritten meanwhile (an erasure): the next run sees it again
        return len(gone)

    def _replan(self, name: str) -> None:
        opened = self._open(name)
        if opened is None:
            return
        file, table, etag, metadata = opened
        dataset = self._dataset(file)
        if dataset is None:
            return
        months = self._new_months(file, dataset, table)
        for month in sorted(set(months)):
            part = table.filter(pa.array([m == month for m in months]))
            target = curated.curated_path(file.dataset, month, file.partner, file.ingest_id)
            part = part.set_column(part.schema.get_field_index(curated.PURGE_MONTH), curated.PURGE_MONTH,
                                   pa.array([month] * len(part), type=pa.string()))
            rule = fingerprint(dataset.retention)
            if target == name:
                try:
                    self.storage.platform_blob(CURATED, target).upload_blob(
                        curated.to_bytes(part), overwrite=True, etag=etag,
                        match_condition=MatchConditions.IfNotModified,
                        metadata={**metadata, "rows": str(len(part)), "retention": rule})
                except ResourceModifiedError:
                    return  # rewritten meanwhile (an erasure): the next run re-plans it as it is then
            else:
                self._merge_into(target, part, {**metadata, "retention": rule})
            self.index.relocate_records(file.ingest_id, dict.fromkeys(part.column(curated.ROW).to_pylist(), target))
        if file.purge_month not in months:  # its records now name the new files
            self._delete(CURATED, name)

    def _merge_into(self, target: str, part: pa.Table, metadata: dict[str, str]) -> None:
        """Moved rows join the file of their new month. The same upload may already have a file there (its rows
        spanned several months): the rows are added to it, never written over it, and a row already there (a
        resumed run moving it twice) is not added again. That file keeps its own rule: if it is an older one, its
        own re-plan moves its other rows and leaves these where they are."""
        blob = self.storage.platform_blob(CURATED, target)
        for _ in range(5):
            found = curated.download(self.storage, target)
            try:
                if found is None:
                    blob.upload_blob(curated.to_bytes(part), overwrite=False,
                                     metadata={**metadata, "rows": str(len(part))})
                    return
                existing, properties = found
                new = part.filter(pc.invert(curated.row_mask(part, existing.column(curated.ROW).to_pylist())))
                merged = pa.concat_tables([existing, new.cast(existing.schema)])
                merged = merged.take(pc.sort_indices(merged.column(curated.ROW)))
                blob.upload_blob(curated.to_bytes(merged), overwrite=True, etag=properties.etag,
                                 match_condition=MatchConditions.IfNotModified,
                                 metadata={**(properties.metadata or {}), "rows": str(len(merged))})
                return
            except (ResourceExistsError, ResourceModifiedError):
                continue
        raise RuntimeError("a curated file kept changing while rows were moved into it")

    def _new_months(self, file: CuratedFile, dataset: Dataset, table: pa.Table | None = None) -> list[str]:
        """Each row's purge month under the current rule, from what is stored (never earlier than the truth)."""
        rule = dataset.retention
        rows = (table if table is not None else self._table(file.name)).to_pylist()
        end = self.policy.programme.programme_end
        return [purge_month(rule, received=file.received, programme_end=end,
                            anchor_value=_stored_anchor(rule.column, dataset, row)) for row in rows]

    def _held_rows(self, name: str, holds: ActiveHolds) -> frozenset[int]:
        """The rows of a file that belong to a held person, as the person index resolves them now."""
        if not holds.people:
            return frozenset()
        self.index.ensure_linked()
        people = self.index.resolve(holds.people)
        return frozenset(row["row"] for row in self.index.records_of(people) if row["file"] == name)

    def _unindex(self, file: CuratedFile, rows: pa.Table) -> None:
        self.index.forget_records({record_id(file.ingest_id, row) for row in rows.column(curated.ROW).to_pylist()})

    # Storage helpers --------------------------------------------------------------------------------------

    def _files(self) -> list[CuratedFile]:
        """Every curated file with its metadata. A file whose metadata has no row count (rewritten by rights work
        before rewrites kept it) is opened and counted, so plans and previews still count true rows."""
        files = []
        for blob in self.storage.platform_container(CURATED).list_blobs(include=["metadata"]):
            file = CuratedFile.from_blob(blob)
            if file is not None and "rows" not in (blob.metadata or {}):
                file = replace(file, rows=self._table(file.name).num_rows)
            if file is not None:
                files.append(file)
        return files

    def _dataset(self, file: CuratedFile) -> Dataset | None:
        partner = self.policy.partners.get(file.partner)
        return partner.datasets.get(file.dataset) if partner else None

    def _open(self, name: str) -> tuple[CuratedFile, pa.Table, str, dict[str, str]] | None:
        """One download gives the rows, the ETag to replace them under, and the metadata to carry over;
        None if the file is gone (a run resumed after it was deleted)."""
        found = curated.download(self.storage, name)
        file = CuratedFile.from_blob(found[1]) if found else None
        if found is None or file is None:
            return None
        table, properties = found
        return file, table, properties.etag, dict(properties.metadata or {})

    def _table(self, name: str) -> pa.Table:
        """A file's rows; an empty table if it is gone since it was listed."""
        found = curated.download(self.storage, name)
        return found[0] if found else pa.table({})

    def _delete(self, container: str, name: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            self.storage.platform_blob(container, name).delete_blob()

    def _destroy_exports(self, names: list[str], run: str) -> None:
        """Delete expired exports. A research extract's package is certified first: which files, the SHA-256
        and size of each as destroyed, when and by which run, in reports/extracts/<id>/destruction.json, which
        outlives the data. A run resumed after deleting finds the certificate already written and keeps it."""
        packages: dict[str, list[str]] = {}
        for name in names:
            folder, _, rest = name.partition("/")
            extract_id = rest.partition("/")[0] if folder == EXTRACT_PACKAGES and "/" in rest else ""
            packages.setdefault(extract_id, []).append(name)
        for extract_id, files in packages.items():
            if extract_id:
                self._certify_destruction(extract_id, files, run)
            for name in files:
                self._delete(EXPORTS, name)

    def _certify_destruction(self, extract_id: str, files: list[str], run: str) -> None:
        certificate_blob = self.storage.platform_blob(REPORTS, f"{EXTRACT_PACKAGES}/{extract_id}/destruction.json")
        if certificate_blob.exists():
            return
        destroyed: list[dict[str, Any]] = []
        metadata: dict[str, str] = {}
        for name in files:
            try:
                downloader = self.storage.platform_blob(EXPORTS, name).download_blob()
            except ResourceNotFoundError:
                destroyed.append({"file": f"{EXPORTS}/{name}", "sha256": None, "bytes": None})
                continue
            content = downloader.readall()
            metadata = dict(downloader.properties.metadata or {})
            destroyed.append({"file": f"{EXPORTS}/{name}", "sha256": hashlib.sha256(content).hexdigest(),
                              "bytes": len(content)})
        certificate = {"extract_id": extract_id, "recipient": metadata.get("recipient"),
                       "expires": metadata.get("expires"), "destroyed_at": self.clock().isoformat(),
                       "destroyed_by": f"retention run {run}", "files": destroyed,
                       "method": "deleted from the platform account's exports container, which keeps no soft-deleted "
                                 "copies or versions (infra/bicep/modules/storage-platform.bicep)"}
        with contextlib.suppress(ResourceExistsError):
            certificate_blob.upload_blob(json.dumps(certificate, indent=2), overwrite=False)
        self.audit.append("extract.destroyed", {"extract_id": extract_id, "run": run, "files": len(destroyed),
                                                "sha256": [f["sha256"] for f in destroyed]},
                          key=f"extract.destroyed:{extract_id}")

    def _expired_exports(self, on: date) -> list[str]:
        expired = []
        for blob in self.storage.platform_container(EXPORTS).list_blobs(include=["metadata"]):
            expires = (blob.metadata or {}).get("expires")
            if expires and datetime.fromisoformat(expires).date() < on:
                expired.append(blob.name)
        return sorted(expired)

    @staticmethod
    def _read_record(blob: Any) -> dict[str, Any] | None:
        try:
            return json.loads(blob.download_blob().readall())
        except ResourceNotFoundError:
            return None


def _stored_anchor(column: str | None, dataset: Dataset, row: dict[str, Any]) -> date | None:
    """The anchor date as far as the stored (generalised) row tells it; for a birth date, the latest it can be."""
    spec = dataset.contract.column(column or "")
    if spec is None:
        return None
    if spec.role == "attribute":
        return row.get(spec.name)
    if spec.generalise == "birth_month" and row.get(spec.output_name or ""):
        year, month = map(int, row[spec.output_name or ""].split("-"))
        return date(year, month, 1)
    event, age = row.get(spec.at or ""), row.get(spec.output_name or "")
    if event is None or age is None:
        return None
    months = event.year * 12 + event.month - 1 - age
    return date(months // 12, months % 12 + 1, 1)
