"""All storage access starts here: the SDK clients for the ingest and platform accounts, and their names.

In Azure both accounts are reached with the function app's identity (DefaultAzureCredential); locally, and in
the tests, a connection string points at Azurite. Nothing else in the project builds a storage client.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.blob import (
    BlobClient,
    BlobSasPermissions,
    BlobServiceClient,
    ContainerClient,
    CorsRule,
    generate_blob_sas,
)
from azure.storage.queue import QueueClient, QueueServiceClient

from shared.platform.settings import Settings

CURATED = "curated"
RECEIPTS = "receipts"
REPORTS = "reports"
EXPORTS = "exports"
LINKAGE = "linkage"
"""The restricted linkage store: match keys and the person index, never read by reports or extracts."""
EXTRACT_PACKAGES = "extracts"
"""Research extracts: each package at exports/extracts/<id>/, its agreement, manifest and destruction certificate
kept at reports/extracts/<id>/ after the package is destroyed."""
AUDIT_CHECKPOINTS = "audit-checkpoints"
"""Signed audit checkpoints: each written once, never overwritten (in Azure an immutability policy holds them)."""
PLATFORM_CONTAINERS = (CURATED, RECEIPTS, REPORTS, EXPORTS, LINKAGE, AUDIT_CHECKPOINTS)

INGESTS = "ingests"
REGISTER = "register"
AUDIT = "audit"
REQUESTS = "requests"
HOLDS = "holds"
REVIEWS = "reviews"
"""The identity review queue and every decision on it."""
BREACHES = "breaches"
"""The breach register: each incident, its 72-hour clock, the decisions on telling the ICO and the people."""
PLATFORM_TABLES = (INGESTS, REGISTER, REQUESTS, HOLDS, AUDIT, REVIEWS, BREACHES)
RIGHTS_QUEUE = "rights-work"



_PROXY_SETTINGS = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


def _client_options() -> dict[str, Any]:
    """Options every storage client is built with. requests looks up proxies, a CA bundle and ~/.netrc in the
    environment on every request, walking every variable twice: a few per cent of a small upload's CPU, more in
    Azure, whose app settings make the environment long. Unless a proxy is configured (whose NO_PROXY exceptions
    requests applies per request), the clients read the CA bundle setting once, here, as requests would, and do
    not look again. (A .netrc login is never what authorises a storage request.)"""
    if _PROXY_SETTINGS & {name.lower() for name in os.environ}:
        return {}
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    return {"use_env_settings": False, **({"connection_verify": bundle} if bundle else {})}


def _ingest_key_source(settings: Settings) -> Callable[[], str] | None:
    """Locally the key is in the connection string; in Azure, Bicep puts it in Key Vault for the app to read."""
    if _is_connection_string(settings.ingest_storage):
        key = _connection_values(settings.ingest_storage).get("AccountKey")
        return (lambda: key) if key else None
    if not settings.key_vault_url:
        return None
    vault_url, secret = settings.key_vault_url, settings.ingest_key_secret

    @lru_cache(maxsize=1)
    def from_key_vault() -> str:
        from azure.identity import DefaultAzureCredential
        from azure.keyvault.secrets import SecretClient

        return SecretClient(vault_url, DefaultAzureCredential()).get_secret(secret).value or ""

    return from_key_vault


def _queue_service(value: str) -> QueueServiceClient:
    if _is_connection_string(value):
        return QueueServiceClient.from_connection_string(value, **_client_options())
    from azure.identity import DefaultAzureCredential

    return QueueServiceClient(f"https://{value}.queue.core.windows.net", credential=DefaultAzureCredential(),
                              **_client_options())


def _is_connection_string(value: str) -> bool:
    return "=" in value


# The CORS rule that lets the partner upload page put blocks into drop zones from the browser. In Azure,
# infra/bicep/modules/storage-ingest.bicep declares the same rule (tests/infra checks they agree); locally,
# `python -m devtools.localhost` sets it on Azurite for the page's origin.
UPLOAD_CORS_METHODS = ("PUT", "OPTIONS")
UPLOAD_CORS_HEADERS = ("content-type", "x-ms-blob-type", "x-ms-blob-content-type", "x-ms-version", "x-ms-date",
                       "x-ms-client-request-id")
UPLOAD_CORS_EXPOSED = ("x-ms-request-id", "etag")
UPLOAD_CORS_MAX_AGE = 3600


BLOB_TRANSFER: dict[str, Any] = {"max_single_get_size": 4 * 1024 * 1024, "max_chunk_get_size": 4 * 1024 * 1024,
                                  "max_single_put_size": 8 * 1024 * 1024, "max_block_size": 4 * 1024 * 1024}
"""Blobs move in pieces of a few MB: the SDK's defaults hold the first 32 MB of a download, and a whole file of up
to 64 MB being uploaded, in memory at once, which a large upload's ingest pays for in peak memory."""


def _blob_service(value: str) -> BlobServiceClient:
    if _is_connection_string(value):
        return BlobServiceClient.from_connection_string(value, **_client_options(), **BLOB_TRANSFER)
    from azure.identity import DefaultAzureCredential

    return BlobServiceClient(f"https://{value}.blob.core.windows.net", credential=DefaultAzureCredential(),
                             **_client_options(), **BLOB_TRANSFER)


def _table_service(value: str) -> TableServiceClient:
    if _is_connection_string(value):
        return TableServiceClient.from_connection_string(value, **_client_options())
    from azure.identity import DefaultAzureCredential

    return TableServiceClient(f"https://{value}.table.core.windows.net", credential=DefaultAzureCredential(),
                              **_client_options())


def _connection_values(value: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in value.split(";") if "=" in part)


@dataclass
class Storage:
    ingest_blobs: BlobServiceClient
    platform_blobs: BlobServiceClient
    platform_tables: TableServiceClient
    platform_queues: QueueServiceClient | None = None
    ingest_account_key: Callable[[], str] | None = None
    """The ingest account's shared key, for signing partners' upload links against stored access policies."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Storage:
        return cls(
            ingest_blobs=_blob_service(settings.ingest_storage),
            platform_blobs=_blob_service(settings.platform_storage),
            platform_tables=_table_service(settings.platform_storage),
            platform_queues=_queue_service(settings.platform_storage),
            ingest_account_key=_ingest_key_source(settings),
        )

    @property
    def ingest_account_name(self) -> str:
        return self.ingest_blobs.account_name or ""

    def ingest_admin(self) -> BlobServiceClient:
        """The ingest account with its shared key: setting stored access policies needs it."""
        if self.ingest_account_key is None:
            raise RuntimeError("no ingest account key is configured")
        credential = {"account_name": self.ingest_account_name, "account_key": self.ingest_account_key()}
        return BlobServiceClient(self.ingest_blobs.url, credential=credential)

    def allow_upload_origin(self, origin: str) -> bool:
        """Let the upload page served from `origin` upload to drop zones from the browser: the origin joins the
        ingest account's upload CORS rule (created if missing); other rules are kept. False if already allowed."""
        service = self.ingest_admin()
        rules = service.get_service_properties()["cors"]
        if any(origin in rule.allowed_origins.split(",") for rule in rules):
            return False
        upload = CorsRule([origin], list(UPLOAD_CORS_METHODS), allowed_headers=list(UPLOAD_CORS_HEADERS),
                          exposed_headers=list(UPLOAD_CORS_EXPOSED), max_age_in_seconds=UPLOAD_CORS_MAX_AGE)
        existing = next((rule for rule in rules if (rule.allowed_methods, rule.allowed_headers) ==
                         (upload.allowed_methods, upload.allowed_headers)), None)
        if existing is None:
            rules.append(upload)
        else:
            existing.allowed_origins += f",{origin}"
        service.set_service_properties(cors=rules)
        return True

    def provision(self) -> None:
        """Create the platform's containers and tables; safe to run again."""
        for name in PLATFORM_CONTAINERS:
            with contextlib.suppress(ResourceExistsError):
                self.platform_blobs.create_container(name)
        for name in PLATFORM_TABLES:
            self.platform_tables.create_table_if_not_exists(name)
        if self.platform_queues is not None:
            with contextlib.suppress(ResourceExistsError):
                self.platform_queues.create_queue(RIGHTS_QUEUE)

    def queue(self, name: str) -> QueueClient:
        if self.platform_queues is None:
            raise RuntimeError("no queue service is configured")
        return self.platform_queues.get_queue_client(name)

    def platform_read_link(self, container: str, blob: str, hours: float = 24) -> str:
        """A read-only link to one platform blob: signed with the account key locally, and with a user
        delegation key (the app's identity; the account has no shared key) in Azure."""
        client = self.platform_blob(container, blob)
        account = client.account_name
        if account is None:
            raise RuntimeError(f"cannot sign a link to {client.url}: the platform account's name is unknown")
        expiry = datetime.now(UTC) + timedelta(hours=hours)
        credential = self.platform_blobs.credential
        key = getattr(credential, "account_key", None)
        if key:
            token = generate_blob_sas(account, container, blob, account_key=key,
                                      permission=BlobSasPermissions(read=True), expiry=expiry)
        else:
            delegation = self.platform_blobs.get_user_delegation_key(datetime.now(UTC), expiry)
            token = generate_blob_sas(account, container, blob, user_delegation_key=delegation,
                                      permission=BlobSasPermissions(read=True), expiry=expiry)
        return f"{client.url}?{token}"

    def drop_zone(self, container: str) -> ContainerClient:
        return self.ingest_blobs.get_container_client(container)

    def raw_blob(self, container: str, name: str) -> BlobClient:
        return self.ingest_blobs.get_blob_client(container, name)

    def platform_blob(self, container: str, name: str) -> BlobClient:
        return self.platform_blobs.get_blob_client(container, name)

    def platform_container(self, container: str) -> ContainerClient:
        return self.platform_blobs.get_container_client(container)

    def table(self, name: str) -> TableClient:
        return self.platform_tables.get_table_client(name)
