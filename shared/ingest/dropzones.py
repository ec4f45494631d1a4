"""Partners' drop zones: onboarding, create-only upload links, revocation, and what each partner sent.

A drop zone is a container `drop-<partner>` in the ingest account. Its upload links are container SAS tokens
signed against the container's stored access policy `upload-<generation>`, which grants create (c) only: a link
can add new blobs (in blocks, for large files) and nothing else; it cannot read, list, delete or overwrite, and
is valid for that one container. Revoking replaces the policy with the next generation, so every link issued
before stops working at once. Links are returned once and never stored or logged; the drop zone's metadata keeps
only how many were issued under the current policy and the latest expiry, for operators (`partners`).

A create-only link can also snapshot a blob it created (Azure counts a snapshot as creating): the pipeline deletes
the raw file with its snapshots, and refuses blob types other than block blobs; the lifecycle rule deletes
anything left, snapshots and versions included.

A partner holding a current link can read the receipts of its uploads however it uploaded (the upload page,
AzCopy, Storage Explorer): the one upload it just made (`receipt_for_upload`), or its uploads newest first, each
with its receipt, or one by its ingest id (`receipts_for_link`). Receipts name no value from a file and no file
name as given, so they are safe to show to whoever holds the partner's link.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import AccessPolicy, ContainerClient, generate_container_sas

from shared.ingest.events import BlobCreated
from shared.ingest.ledger import FINAL, Ledger, LedgerEntry
from shared.ingest.names import shown_name
from shared.ingest.receipts import receipt_path
from shared.platform.auth import Problem
from shared.platform.paging import PageRequest, page_body, sorted_page
from shared.platform.storage import INGESTS, RECEIPTS, Storage
from shared.policy.contracts import header_is_safe
from shared.policy.loader import Partner, Policy

CREATE_ONLY = "c"
_GENERATION = re.compile(r"^upload-(\d+)$")
MAX_LISTED_UPLOADS = 100


@dataclass(frozen=True)
class UploadLink:
    url: str
    expires: datetime

    def page(self, api_base: str) -> str:
        """The upload page with this link in its fragment (`/api/upload#link=...`): the page reads it and takes
        it out of the address bar, and a fragment never reaches a server log."""
        return f"{api_base.rstrip('/')}/upload#{urlencode({'link': self.url})}"


class DropZones:
    def __init__(self, storage: Storage, policy: Policy, *, https_only: bool,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.storage = storage
        self.policy = policy
        self.https_only = https_only
        self.clock = clock

    def partner(self, partner_id: str) -> Partner:
        partner = self.policy.partners.get(partner_id)
        if partner is None:
            raise Problem(404, "Not Found", "No partner of that name is in the programme policy.")
        return partner

    def _container(self, partner: Partner) -> ContainerClient:
        return self.storage.ingest_admin().get_container_client(partner.container)

    def onboard(self, partner_id: str) -> dict[str, Any]:
        """Create the drop zone and its stored access policy. Idempotent: an existing zone keeps its links."""
        partner = self.partner(partner_id)
        container = self._container(partner)
        created = True
        try:
            container.create_container()
        except ResourceExistsError:
            created = False
        generation = self._generation(container)
        if generation is None:
            generation = 1
            self._set_generation(container, generation)
        return {"partner": partner.id, "container": partner.container, "created": created,
                "link_generation": generation, "datasets": sorted(partner.datasets)}

    def issue_link(self, partner_id: str, *, days: float | None = None, ip: str | None = None) -> UploadLink:
        partner = self.partner(partner_id)
        limit = self.policy.programme.limits.max_link_days
        days = limit if days is None else days
        if not 0 < days <= limit:
            raise Problem(400, "Bad Request", f"expiry_days must be more than 0 and at most {limit}.",
                          field="expiry_days", rule="link.expiry")
        if ip is not None and not _valid_ip_range(ip):
            raise Problem(400, "Bad Request", "ip must be an IPv4 address or range a.b.c.d-e.f.g.h.",
                          field="ip", rule="link.ip")
        container = self._container(partner)
        generation = self._require_generation(container)
        expires = (self.clock() + timedelta(days=days)).replace(microsecond=0)
        token = generate_container_sas(
            self.storage.ingest_account_name, partner.container, account_key=self._key(),
            policy_id=f"upload-{generation}", expiry=expires, ip=ip,
            protocol="https" if self.https_only else "https,http")
        self._count_issued(container, generation, expires)
        return UploadLink(f"{self.storage.ingest_blobs.url.rstrip('/')}/{partner.container}?{token}", expires)

    def revoke(self, partner_id: str) -> int:
        """Every link issued so far stops working now; returns the new generation."""
        container = self._container(self.partner(partner_id))
        generation = self._require_generation(container) + 1
        self._set_generation(container, generation)
        container.set_container_metadata({})  # the live links counted were the revoked generation's
        return generation

    def partners(self, page: PageRequest) -> dict[str, Any]:
        """The programme's partners in the policy's order, a page at a time, each with its drop zone and live
        links: how many were issued under the current policy and when the last of them expires (never a link)."""
        order = {partner_id: f"{number:06d}" for number, partner_id in enumerate(self.policy.partners)}
        shown, following = sorted_page(list(self.policy.partners.values()), lambda p: (order[p.id],), page)
        return page_body([self._partner_view(partner) for partner in shown], following)

    def _partner_view(self, partner: Partner) -> dict[str, Any]:
        container = self._container(partner)
        generation = self._generation(container)
        metadata = container.get_container_properties().metadata if generation is not None else {}
        live_until = metadata.get("live_until") if metadata.get("generation") == str(generation) else None
        live = live_until is not None and datetime.fromisoformat(live_until) > self.clock()
        return {"id": partner.id, "name": partner.name, "kind": partner.kind, "onboarded": generation is not None,
                "datasets": [{"id": d.name, "description": d.description} for d in partner.datasets.values()],
                "link_generation": generation,
                "links": {"issued": int(metadata.get("issued", 0)) if live_until else 0,
                          "live_until": live_until if live else None}}

    def _count_issued(self, container: ContainerClient, generation: int, expires: datetime) -> None:
        """Remember how many links the current policy has and the latest expiry, never the links themselves."""
        metadata = container.get_container_properties().metadata
        same = metadata.get("generation") == str(generation)
        latest = max(expires.isoformat(), metadata.get("live_until", "")) if same else expires.isoformat()
        container.set_container_metadata({"generation": str(generation), "live_until": latest,
                                          "issued": str(int(metadata.get("issued", 0)) + 1 if same else 1)})

    def uploads(self, partner_id: str, page: PageRequest) -> dict[str, Any]:
        """The partner's uploads, newest first, a page at a time, each with its receipt when it has one."""
        partner = self.partner(partner_id)
        shown, following = sorted_page(self._entries(partner), _position, page, descending=True)
        return page_body([self._upload(partner, entry) for entry in shown], following)

    def all_uploads(self, page: PageRequest) -> dict[str, Any]:
        """Every partner's uploads together, newest first, a page at a time, each with its partner's name and its
        receipt: what operators watch. Only the page's receipts are read."""
        entries = [e for e in Ledger(self.storage.table(INGESTS)).everything() if e.partner in self.policy.partners]
        entries.sort(key=_position_across, reverse=True)
        shown, following = sorted_page(entries, _position_across, page, descending=True)
        return page_body([{"partner": entry.partner, "partner_name": self.policy.partners[entry.partner].name,
                           **self._upload(self.policy.partners[entry.partner], entry)} for entry in shown], following)

    def _entries(self, partner: Partner) -> list[LedgerEntry]:
        return sorted(Ledger(self.storage.table(INGESTS)).for_partner(partner.id), key=_position, reverse=True)

    def _upload(self, partner: Partner, entry: LedgerEntry) -> dict[str, Any]:
        fields = entry.fields
        # The receipt's word (accepted_with_errors, say) where there is one: the list and the receipt say the same.
        status = fields.get("receipt_status") or entry.status if entry.status in FINAL else entry.status
        return {"ingest_id": entry.ingest_id, "status": status, "file": self._shown(partner, fields),
                "size_bytes": fields.get("size"), "dataset": fields.get("dataset"),
                "received_at": fields.get("received_at"), "rows": fields.get("counts"),
                "receipt": self._receipt(partner, entry.ingest_id) if entry.status in FINAL else None}

    @staticmethod
    def _shown(partner: Partner, fields: dict[str, Any]) -> str:
        """The ledger holds the name as names.shown_name rendered it; rows written before that hold it as given
        (`blob`), and are rendered the same way whenever they are shown."""
        if "file" in fields:
            return str(fields["file"])
        return shown_name(str(fields.get("blob") or ""), sorted(partner.datasets))

    # The upload page's read path ----------------------------------------------------------------------

    def check_link(self, link: str) -> Partner:
        """The partner a link belongs to, if it is one of ours, current and unexpired; otherwise 401."""
        parts = urlsplit(link)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        container = parts.path.rstrip("/").rsplit("/", 1)[-1]
        partner = self.policy.partner_for_container(container)
        denied = Problem(401, "Unauthorized", "This upload link is not valid, has expired or has been revoked.")
        if partner is None or query.get("sr") != "c" or "sig" not in query or "se" not in query:
            raise denied
        try:
            generation = self._generation(self._container(partner))
            expires = datetime.fromisoformat(query["se"].replace("Z", "+00:00"))
        except (ResourceNotFoundError, ValueError):
            raise denied from None
        if query.get("si") != f"upload-{generation}" or expires <= self.clock():
            raise denied
        expected = generate_container_sas(
            self.storage.ingest_account_name, partner.container, account_key=self._key(), policy_id=query["si"],
            expiry=query["se"], start=query.get("st"), ip=query.get("sip"), protocol=query.get("spr"))
        signature = parse_qs(expected)["sig"][0]
        if not hmac.compare_digest(signature, query["sig"]):
            raise denied
        return partner

    def receipt_for_upload(self, link: str, blob: str, etag: str) -> dict[str, Any] | None:
        """The receipt of one upload made with this link, or None while it is being processed."""
        partner = self.check_link(link)
        ingest_id = BlobCreated(partner.container, blob, etag.strip('"')).ingest_id
        entry = Ledger(self.storage.table(INGESTS)).get(partner.id, ingest_id)
        if entry is None or entry.status not in FINAL:
            return None
        return self._receipt(partner, ingest_id)

    def receipts_for_link(self, link: str, *, ingest_id: str | None = None, before: str | None = None,
                          limit: int = 20) -> dict[str, Any]:
        """For whoever holds a current link of the partner: its uploads newest first (after the `next_before` of the
        previous page, or received before a time; at most `limit`), each with its status, the name as shown, size,
        time and receipt; or the one upload `ingest_id` names. However the file was uploaded, and however long ago
        (while its receipt is kept)."""
        partner = self.check_link(link)
        if not 1 <= limit <= MAX_LISTED_UPLOADS:
            raise Problem(400, "Bad Request", f"limit must be from 1 to {MAX_LISTED_UPLOADS}.", field="limit",
                          rule="receipts.limit")
        if ingest_id is not None:
            entry = Ledger(self.storage.table(INGESTS)).get(partner.id, ingest_id)
            if entry is None:
                raise Problem(404, "Not Found", "No upload of this partner has that ingest id.")
            return {"partner": partner.id, "uploads": [self._upload(partner, entry)]}
        cursor = _cursor(before) if before else None
        entries = [e for e in self._entries(partner) if cursor is None or _position(e) < cursor]
        listed = entries[:limit]
        more = len(entries) > limit
        return {"partner": partner.id, "uploads": [self._upload(partner, entry) for entry in listed],
                "next_before": "|".join(_position(listed[-1])) if more and listed else None}

    # Helpers ----------------------------------------------------------------------------------------

    def _receipt(self, partner: Partner, ingest_id: str) -> dict[str, Any] | None:
        try:
            data = self.storage.platform_blob(RECEIPTS, receipt_path(partner.id, ingest_id)).download_blob()
        except ResourceNotFoundError:
            return None
        return _withheld(json.loads(data.readall()), partner)

    def _key(self) -> str:
        if self.storage.ingest_account_key is None:
            raise RuntimeError("no ingest account key is configured")
        return self.storage.ingest_account_key()

    @staticmethod
    def _generation(container: ContainerClient) -> int | None:
        try:
            identifiers = container.get_container_access_policy()["signed_identifiers"]
        except ResourceNotFoundError:
            return None
        generations = [int(m[1]) for i in identifiers if (m := _GENERATION.match(i.id))]
        return max(generations, default=None)

    def _require_generation(self, container: ContainerClient) -> int:
        generation = self._generation(container)
        if generation is None:
            raise Problem(409, "Conflict", "The partner is not onboarded yet: PUT /api/partners/{partner} first.")
        return generation

    @staticmethod
    def _set_generation(container: ContainerClient, generation: int) -> None:
        container.set_container_access_policy({f"upload-{generation}": AccessPolicy(permission=CREATE_ONLY)})


def _position(entry: LedgerEntry) -> tuple[str, str]:
    """Where an upload stands in the list: by when it was received, then by ingest id (two in one second)."""
    return (str(entry.fields.get("received_at") or ""), entry.ingest_id)


def _position_across(entry: LedgerEntry) -> tuple[str, str, str]:
    """Where an upload stands among every partner's: as `_position`, then by partner."""
    return (*_position(entry), entry.partner)


def _cursor(before: str) -> tuple[str, str]:
    """`before` is the `next_before` of the previous page (`<received_at>|<ingest id>`) or a bare time."""
    received, _, ingest_id = before.partition("|")
    return (received, ingest_id or "~")


def _withheld(receipt: dict[str, Any], partner: Partner) -> dict[str, Any]:
    """A receipt written before names were withheld (receipt_version 1) is shown as one written now would be:
    the file name rendered by names.shown_name, and a header cell outside the agreement as `a column`."""
    if receipt.get("receipt_version", 1) >= 2:
        return receipt
    receipt["file"] = shown_name(str(receipt.get("file") or ""), sorted(partner.datasets))
    dataset = partner.datasets.get(str(receipt.get("dataset") or ""))
    contract = dataset.contract if dataset else None
    for problem in receipt.get("rejection") or []:
        column = str(problem.get("column") or "")
        known = contract is not None and contract.column(column) is not None
        if problem.get("rule", "").startswith("header.") and column and not known and \
                not header_is_safe(column, contract) and not re.fullmatch(r"column \d+", column):
            problem["column"] = "a column"
    return receipt


def _valid_ip_range(value: str) -> bool:
    octet = r"(25[0-5]|2[0-4]\d|1?\d?\d)"
    address = rf"{octet}\.{octet}\.{octet}\.{octet}"
    return re.fullmatch(rf"{address}(-{address})?", value) is not None
