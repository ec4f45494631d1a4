"""Application settings, read once from the environment (app settings in Azure, local.settings.json locally)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class ConfigurationError(RuntimeError):
    """The app is configured in a way it must refuse to run with."""


def running_in_azure(env: Mapping[str, str]) -> bool:
    """App Service and Functions set WEBSITE_INSTANCE_ID on every instance in Azure; Core Tools does not."""
    return bool(env.get("WEBSITE_INSTANCE_ID"))


@dataclass(frozen=True)
class Settings:
    policy_path: Path
    ingest_storage: str
    """Connection string (local development) or account name (Azure, identity-based) of the drop-zone account."""
    platform_storage: str
    """Connection string (local development) or account name (Azure, identity-based) of the platform account."""
    key_vault_url: str | None
    root_key_secret: str
    local_root_key: str | None
    in_azure: bool
    ingest_key_secret: str = "ingest-account-key"  # noqa: S105 - the secret's name, not its value
    """Key Vault secret holding the ingest account's key (Azure only; locally it is in the connection string)."""
    audit_key_name: str = "audit-checkpoint"
    """Key Vault key (EC P-256, sign and verify only, not exportable) that signs audit checkpoints."""
    local_audit_key_file: str | None = None
    """Local development only: a PEM file with an EC P-256 private key that signs checkpoints; refused in Azure."""
    previous_root_key_versions: tuple[str, ...] = ()
    """After a rotation: versions of the root key secret still read, so data pseudonymised under them is found."""
    local_previous_root_keys: tuple[str, ...] = ()
    """Local development only: earlier root keys (base64), as FDP_PREVIOUS_ROOT_KEY_VERSIONS names them in Azure."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        required = ("FDP_POLICY_PATH", "FDP_INGEST_STORAGE", "FDP_PLATFORM_STORAGE")
        missing = [name for name in required if not env.get(name)]
        if missing:
            raise ConfigurationError(f"missing app settings: {', '.join(missing)} (see local.settings.example.json)")
        return cls(
            policy_path=Path(env["FDP_POLICY_PATH"]),
            ingest_storage=env["FDP_INGEST_STORAGE"],
            platform_storage=env["FDP_PLATFORM_STORAGE"],
            key_vault_url=env.get("FDP_KEY_VAULT_URL") or None,
            root_key_secret=env.get("FDP_ROOT_KEY_SECRET") or "pseudonymisation-root-key",
            local_root_key=env.get("FDP_LOCAL_ROOT_KEY") or None,
            in_azure=running_in_azure(env),
            ingest_key_secret=env.get("FDP_INGEST_KEY_SECRET") or "ingest-account-key",
            audit_key_name=env.get("FDP_AUDIT_KEY_NAME") or "audit-checkpoint",
            local_audit_key_file=env.get("FDP_LOCAL_AUDIT_KEY_FILE") or None,
            previous_root_key_versions=_listed(env.get("FDP_PREVIOUS_ROOT_KEY_VERSIONS")),
            local_previous_root_keys=_listed(env.get("FDP_LOCAL_PREVIOUS_ROOT_KEYS")),
        )


def _listed(value: str | None) -> tuple[str, ...]:
    return tuple(item.strip() for item in (value or "").split(",") if item.strip())
