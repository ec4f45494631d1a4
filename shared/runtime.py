"""Builds the long-lived objects a function instance reuses between invocations (clients, policy, cached key)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from shared.identity.index import PersonIndex
from shared.identity.keys import key_source_from_settings
from shared.identity.service import IdentityService
from shared.ingest.dropzones import DropZones
from shared.ingest.pipeline import IngestPipeline
from shared.platform.audit import AuditLog
from shared.platform.settings import Settings
from shared.platform.storage import AUDIT, Storage
from shared.policy.loader import Policy, load_policy
from shared.publishing.dataset_access import DatasetAccess
from shared.publishing.extracts import ExtractService
from shared.publishing.reports import ReportService
from shared.retention.purge import RetentionService
from shared.rights.breaches import BreachService
from shared.rights.service import RightsService


@dataclass(frozen=True)
class Platform:
    settings: Settings
    storage: Storage
    policy: Policy
    audit: AuditLog


@lru_cache(maxsize=1)
def platform() -> Platform:
    settings = Settings.from_env()
    storage = Storage.from_settings(settings)
    return Platform(settings, storage, load_policy(settings.policy_path), AuditLog(storage.table(AUDIT)))


@lru_cache(maxsize=1)
def ingest_pipeline() -> IngestPipeline:
    current = platform()

    def record_key_read(version: str) -> None:
        current.audit.append("key.read", {"purpose": "pseudonymisation", "key_version": version})

    keys = key_source_from_settings(current.settings, on_read=record_key_read)
    return IngestPipeline(current.policy, current.storage, keys)


def drop_zones() -> DropZones:
    current = platform()
    https_only = current.settings.in_azure or current.storage.ingest_blobs.url.startswith("https")
    return DropZones(current.storage, current.policy, https_only=https_only)


@lru_cache(maxsize=1)
def rights_service() -> RightsService:
    current = platform()
    return RightsService(current.policy, current.storage, ingest_pipeline().keys)


def person_index() -> PersonIndex:
    return PersonIndex(platform().storage, ingest_pipeline().keys)


def identity_service() -> IdentityService:
    return IdentityService(person_index(), platform().audit)


def breach_service() -> BreachService:
    current = platform()
    return BreachService(current.policy, current.storage, person_index())


def retention_service() -> RetentionService:
    current = platform()
    return RetentionService(current.policy, current.storage, person_index())


def report_service() -> ReportService:
    current = platform()
    return ReportService(current.policy, current.storage, person_index())


def extract_service() -> ExtractService:
    current = platform()
    return ExtractService(current.policy, current.storage, ingest_pipeline().keys, person_index())


def dataset_access(actor: str) -> DatasetAccess:
    """The analyst's read path for `actor` (their object id, audited with every read). With an account name as
    the platform storage setting (Azure), DuckDB reads az:// itself; with a connection string (Azurite), curated
    files are cached locally through Storage."""
    current = platform()
    account = None if "=" in current.settings.platform_storage else current.settings.platform_storage
    return DatasetAccess(current.policy, current.storage, person_index(), actor, azure_account=account)


def reset() -> None:
    """Forget the cached objects (after settings change: tests, key rotation)."""
    platform.cache_clear()
    ingest_pipeline.cache_clear()
    rights_service.cache_clear()
