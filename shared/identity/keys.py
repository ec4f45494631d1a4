"""Where the pseudonymisation root key comes from.

In Azure: a Key Vault secret (32 random bytes, base64), read with SecretClient and DefaultAzureCredential, cached
in memory for the life of the instance; its version is recorded on every ingest. Locally: a key from settings,
which the app refuses to use when it runs in Azure.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from shared.platform.settings import ConfigurationError, Settings

ROOT_KEY_BYTES = 32
LOCAL_KEY_VERSION = "local-development"


@dataclass(frozen=True)
class RootKey:
    material: bytes
    version: str

    def __repr__(self) -> str:  # the key must never reach a log through a repr
        return f"RootKey(version={self.version!r})"


class KeySource(Protocol):
    def root_key(self) -> RootKey: ...

    def previous_keys(self) -> list[RootKey]:
        """Earlier versions still read after a rotation (ingest pseudonymises under them too, for the person index
        and the suppression register; rights requests look under each), newest first."""
        ...


def decode_root_key(encoded: str, where: str) -> bytes:
    try:
        material = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"{where} is not base64") from None
    if len(material) != ROOT_KEY_BYTES:
        raise ConfigurationError(f"{where} must decode to {ROOT_KEY_BYTES} bytes")
    return material


class SecretReader(Protocol):
    """The part of azure.keyvault.secrets.SecretClient this module uses."""

    def get_secret(self, name: str, version: str | None = None) -> object: ...


class KeyVaultKeySource:
    """Reads the root key from Key Vault once and keeps it in memory."""

    def __init__(self, client: SecretReader, secret_name: str,
                 on_read: Callable[[str], None] | None = None, previous_versions: tuple[str, ...] = ()) -> None:
        self._client = client
        self._secret_name = secret_name
        self._on_read = on_read
        self._previous_versions = previous_versions
        self._cached: RootKey | None = None
        self._previous: list[RootKey] | None = None
        self._lock = threading.Lock()

    def previous_keys(self) -> list[RootKey]:
        with self._lock:
            if self._previous is None:
                self._previous = [self._read(version) for version in self._previous_versions]
            return self._previous

    def _read(self, version: str | None) -> RootKey:
        secret = self._client.get_secret(self._secret_name, version)
        material = decode_root_key(getattr(secret, "value", "") or "", f"Key Vault secret {self._secret_name}")
        read = getattr(getattr(secret, "properties", None), "version", None) or version or "unversioned"
        if self._on_read:
            self._on_read(read)
        return RootKey(material, read)

    def root_key(self) -> RootKey:
        with self._lock:
            if self._cached is None:
                self._cached = self._read(None)
            return self._cached


class LocalKeySource:
    def __init__(self, encoded: str, previous: tuple[str, ...] = ()) -> None:
        self._key = RootKey(decode_root_key(encoded, "FDP_LOCAL_ROOT_KEY"), LOCAL_KEY_VERSION)
        self._previous = [RootKey(decode_root_key(item, "FDP_LOCAL_PREVIOUS_ROOT_KEYS"), f"{LOCAL_KEY_VERSION}-{n}")
                          for n, item in enumerate(previous, start=1)]

    def root_key(self) -> RootKey:
        return self._key

    def previous_keys(self) -> list[RootKey]:
        return self._previous


def key_source_from_settings(settings: Settings, on_read: Callable[[str], None] | None = None) -> KeySource:
    if settings.in_azure and settings.local_root_key:
        raise ConfigurationError("FDP_LOCAL_ROOT_KEY is set in Azure: remove it; the root key comes from Key Vault")
    if settings.key_vault_url:
        from azure.identity import DefaultAzureCredential
        from azure.keyvault.secrets import SecretClient

        client = SecretClient(vault_url=settings.key_vault_url, credential=DefaultAzureCredential())
        return KeyVaultKeySource(client, settings.root_key_secret, on_read, settings.previous_root_key_versions)
    if settings.in_azure:
        raise ConfigurationError("FDP_KEY_VAULT_URL is not set: in Azure the root key must come from Key Vault")
    if not settings.local_root_key:
        raise ConfigurationError("set FDP_KEY_VAULT_URL, or FDP_LOCAL_ROOT_KEY for local development")
    return LocalKeySource(settings.local_root_key, settings.local_previous_root_keys)
