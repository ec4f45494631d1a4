"""Pseudonymised research extracts, as agreed in the policy: one recipient, the agreed columns only, k-anonymous
and l-diverse at the least information loss, each under a recorded agreement, every download audited.

Each recipient gets its own pseudonyms, under the domain key `extract:<recipient>` (the brief's formula, with the
person's key in the platform's index as the value), so no two recipients, and no recipient and the platform, can
join their data. The quasi-identifiers are generalised by the lattice search in shared/publishing/anonymity.py
(k counts distinct people, never rows), and the result is counted again from the published cells before anything
is written.

An extract is a package in exports/extracts/<id>/ (extract.csv and manifest.json) that only the recipient named in
its agreement can download, through the platform (`GET /api/extracts/<id>/download`), each download audited with
their identity. The agreement and the manifest are also kept in reports/extracts/<id>/, where the retention run
adds the destruction certificate when it destroys the package after its expiry; they hold no personal data.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from shared.identity.index import PersonIndex
from shared.identity.keys import KeySource
from shared.identity.pseudonymise import Pseudonymiser
from shared.platform.audit import AuditLog
from shared.platform.auth import Caller, Problem
from shared.platform.csvsafe import to_csv
from shared.platform.paging import PageRequest, page_body, sorted_page
from shared.platform.storage import AUDIT, EXPORTS, REPORTS, Storage
from shared.policy.loader import ExtractSpec, Policy
from shared.publishing import analysis
from shared.publishing.anonymity import Result, Unattainable, anonymise, check

RECIPIENT_ID = "research_id"
FOLDER = "extracts"
"""The folder of every extract package (in exports/) and of its lasting records (in reports/)."""
EXTRACT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")
PRINCIPAL = re.compile(r"^[A-Za-z0-9._@-]{1,128}$")
LOSS_METRIC = "Loss Metric (Iyengar 2002): share of quasi-identifier detail lost, 0 = as stored, 1 = none left"


def agreement_terms(spec: ExtractSpec, body: dict[str, Any], today: date) -> dict[str, Any]:
    """The recipient's agreement: who (the recipient and the principal who may download), purpose, columns,
    expiry (from the policy) and when it was agreed (from the request)."""
    principal = body.get("recipient_principal")
    if not isinstance(principal, str) or not PRINCIPAL.match(principal):
        raise Problem(400, "Bad Request", "recipient_principal is required: the Entra object id of the person at "
                      "the recipient who will download the extract.", rule="agreement.recipient_principal")
    try:
        agreed = date.fromisoformat(str(body.get("agreed_at")))
    except ValueError:
        raise Problem(400, "Bad Request", "agreed_at is required: the date the recipient signed the agreement, "
                      "YYYY-MM-DD.", rule="agreement.agreed_at") from None
    if agreed > today:
        raise Problem(400, "Bad Request", "agreed_at is in the future.", rule="agreement.agreed_at")
    return {"recipient": spec.recipient, "recipient_principal": principal, "purpose": spec.purpose,
            "columns": [RECIPIENT_ID, *spec.columns], "expires": spec.expires.isoformat(),
            "agreed_at": agreed.isoformat()}


class ExtractService:
    def __init__(self, policy: Policy, storage: Storage, keys: KeySource, index: PersonIndex,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.policy, self.storage, self.keys, self.index, self.clock = policy, storage, keys, index, clock
        self.audit = AuditLog(storage.table(AUDIT))

    # Building -----------------------------------------------------------------------------------------------

    def build(self, name: str, caller: str, body: dict[str, Any]) -> dict[str, Any]:
        spec = self.policy.extracts.get(name)
        if spec is None:
            raise Problem(404, "Not Found", "No extract of that name is in the programme policy.")
        today = self.clock().date()
        if spec.expires <= today:
            raise Problem(409, "Conflict", "The agreement for this extract has expired: it may not be produced.")
        agreement = agreement_terms(spec, body, today)
        data = analysis.load(self.storage, self.index, spec.datasets, set(spec.columns))
        rows = self._recipient_rows(spec, data.rows)
        try:
            result = anonymise(rows, spec.quasi_identifiers, spec.k, sensitive=spec.sensitive, l=spec.l,
                               max_suppressed_percent=spec.max_suppressed_percent, person=RECIPIENT_ID)
        except Unattainable as error:
            diversity = f" and l = {spec.l}" if spec.sensitive else ""
            raise Problem(422, "Unprocessable Content", f"No generalisation meets k = {spec.k}{diversity} within the "
                          f"suppression budget: the extract's data covers {error.people} people.",
                          rule="extract.k_unattainable") from None
        header = agreement["columns"]
        content = to_csv(header, ([row.get(c) for c in header] for row in result.rows)).encode()
        extract_id = f"{spec.name}-{today:%Y%m%d}-{secrets.token_hex(4)}"
        manifest = self._manifest(spec, extract_id, result, content, data.data_version)
        agreement = {"extract_id": extract_id, **agreement, "recorded_by": caller,
                     "recorded_at": self.clock().isoformat()}
        self._write(spec, extract_id, content, manifest, agreement)
        self.audit.append("extract.agreement", {k: agreement[k] for k in (
            "extract_id", "recipient", "recipient_principal", "purpose", "expires", "agreed_at")}, actor=caller)
        self.audit.append("extract.created", {"extract_id": extract_id, "rows": manifest["rows"],
                                              "people": manifest["people"], "k": manifest["k"],
                                              "generalisation": manifest["generalisation"],
                                              "sha256": manifest["sha256"]}, actor=caller)
        return {**manifest, "agreement": agreement, "download": f"/api/extracts/{extract_id}/download"}

    def _recipient_rows(self, spec: ExtractSpec, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        recipient = Pseudonymiser(self.keys.root_key().material, domain=f"extract:{spec.recipient}")
        return [{RECIPIENT_ID: recipient.pseudonym("subject", row["_person"]),
                 **{c: row.get(c) for c in spec.columns}} for row in rows]

    def _manifest(self, spec: ExtractSpec, extract_id: str, result: Result, content: bytes,
                  data_version: str) -> dict[str, Any]:
        """What was lost and what risk remains, counted again from the published rows (never values)."""
        achieved = check(result.rows, spec.quasi_identifiers, spec.sensitive, RECIPIENT_ID)
        if result.rows and (achieved.k < spec.k or (spec.sensitive and (achieved.l or 0) < spec.l)):
            raise RuntimeError("the extract's own check failed: refusing to publish it")  # the search is wrong
        return {
            "extract_id": extract_id, "extract": spec.name, "recipient": spec.recipient,
            "created_at": self.clock().isoformat(), "expires": spec.expires.isoformat(),
            "data_version": data_version, "rows": len(result.rows), "people": achieved.people,
            "k": {"required": spec.k, "achieved": achieved.k},
            "l": {"required": spec.l, "achieved": achieved.l, "sensitive": list(spec.sensitive)},
            "generalisation": result.levels,
            "suppressed": {"people": result.chosen.people_suppressed, "rows": result.chosen.rows_suppressed,
                           "budget_percent": spec.max_suppressed_percent},
            "information_loss": {"metric": LOSS_METRIC, "overall": round(result.chosen.loss, 4),
                                 "by_column": result.chosen.loss_by_column},
            "risk": {"model": "prosecutor: 1 / the number of people sharing a person's published combination",
                     "max": round(achieved.risk_max, 4), "mean": round(achieved.risk_mean, 4)},
            "why_not_finer": result.why_not_finer,
            "search": result.search,
            "sha256": hashlib.sha256(content).hexdigest(),
        }

    def _write(self, spec: ExtractSpec, extract_id: str, content: bytes, manifest: dict[str, Any],
               agreement: dict[str, Any]) -> None:
        metadata = {"expires": spec.expires.isoformat(), "recipient": spec.recipient, "extract_id": extract_id}
        package = {"extract.csv": content, "manifest.json": json.dumps(manifest, indent=2).encode()}
        for file, data in package.items():
            self.storage.platform_blob(EXPORTS, f"{FOLDER}/{extract_id}/{file}").upload_blob(
                data, overwrite=False, metadata=metadata)
        for file, record in (("agreement.json", agreement), ("manifest.json", manifest)):
            self.storage.platform_blob(REPORTS, f"{FOLDER}/{extract_id}/{file}").upload_blob(
                json.dumps(record, indent=2), overwrite=False)

    # Reading ------------------------------------------------------------------------------------------------

    def produced(self, page: PageRequest) -> dict[str, Any]:
        """The extracts still kept (not yet destroyed), newest first, a page at a time: which, for whom, when,
        how many rows, and when the agreement behind it expires (the retention run destroys it then). Only the
        page's manifests are read."""
        kept = [blob for blob in self.storage.platform_container(EXPORTS).list_blobs(
            name_starts_with=f"{FOLDER}/", include=["metadata"]) if blob.name.endswith("/extract.csv")]
        kept.sort(key=_newest_first, reverse=True)
        shown, following = sorted_page(kept, _newest_first, page, descending=True)
        return page_body([self._listed(blob) for blob in shown], following)

    def _listed(self, blob: Any) -> dict[str, Any]:
        extract_id = blob.name.split("/")[1]
        manifest = self._record(extract_id, "manifest.json") or {}
        metadata = blob.metadata or {}
        return {"id": extract_id, "extract": manifest.get("extract"), "recipient": metadata.get("recipient"),
                "created_at": manifest.get("created_at"), "expires": metadata.get("expires"),
                "rows": manifest.get("rows")}

    def record(self, extract_id: str) -> dict[str, Any]:
        """For the DPO: the agreement, the manifest and, once destroyed, the destruction certificate."""
        agreement = self._record(extract_id, "agreement.json")
        if agreement is None:
            raise Problem(404, "Not Found", "No extract has that id.")
        return {"agreement": agreement, "manifest": self._record(extract_id, "manifest.json"),
                "destruction": self._record(extract_id, "destruction.json")}

    def download(self, extract_id: str, caller: Caller) -> bytes:
        """The extract's CSV, for the principal its agreement names only, until it expires; audited."""
        agreement = self._record(extract_id, "agreement.json")
        if agreement is None:
            raise Problem(404, "Not Found", "No extract has that id.")
        if caller.id != agreement["recipient_principal"]:
            raise Problem(403, "Forbidden", "Only the recipient named in the extract's agreement may download it.",
                          rule="agreement.recipient")
        if date.fromisoformat(agreement["expires"]) < self.clock().date():
            raise Problem(410, "Gone", "The extract's agreement has expired; it is destroyed.", rule="extract.expired")
        try:
            content = self.storage.platform_blob(EXPORTS, f"{FOLDER}/{extract_id}/extract.csv").download_blob() \
                .readall()
        except ResourceNotFoundError:
            raise Problem(410, "Gone", "The extract has been destroyed.", rule="extract.destroyed") from None
        self.audit.append("extract.downloaded", {"extract_id": extract_id, "recipient": agreement["recipient"],
                                                 "sha256": hashlib.sha256(content).hexdigest(),
                                                 "bytes": len(content)}, actor=caller.id)
        return content

    def _record(self, extract_id: str, file: str) -> dict[str, Any] | None:
        if not EXTRACT_ID.match(extract_id):
            return None
        try:
            return json.loads(self.storage.platform_blob(REPORTS, f"{FOLDER}/{extract_id}/{file}").download_blob()
                              .readall())
        except ResourceNotFoundError:
            return None


def _newest_first(blob: Any) -> tuple[str, str]:
    """An extract's place in the list: when its file was written, then its id."""
    written = blob.creation_time or blob.last_modified
    return (written.isoformat() if written else "", blob.name)
