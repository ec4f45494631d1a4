"""Builds the long-lived objects a function instance reuses between invocations (clients, policy, cached key)."""

from __future__ import annotations

from functools import lru_cache

from shared.audit import AuditLog
from shared.ingest import IngestPipeline
from shared.keys import key_source_from_settings
from shared.policy import load_policy
from shared.settings import Settings
from shared.storage import AUDIT, Storage


@lru_cache(maxsize=1)
def ingest_pipeline() -> IngestPipeline:
    settings = Settings.from_env()
    storage = Storage.from_settings(settings)
    audit = AuditLog(storage.table(AUDIT))

    def record_key_read(version: str) -> None:
        audit.append("key.read", {"purpose": "pseudonymisation", "key_version": version})

    keys = key_source_from_settings(settings, on_read=record_key_read)
    return IngestPipeline(load_policy(settings.policy_path), storage, keys)


def reset() -> None:
    """Forget the cached objects (after settings change: tests, key rotation)."""
    ingest_pipeline.cache_clear()
