"""The root key: read from Key Vault through the real SecretClient (cached, its version recorded on every
ingest), or from local settings, which the app refuses when it runs in Azure."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from azure.keyvault.secrets import SecretClient

from devtools import synthetic
from devtools.eventgrid import waiting_uploads
from shared.identity.keys import KeyVaultKeySource, key_source_from_settings
from shared.ingest.events import parse_blob_created
from shared.ingest.pipeline import IngestPipeline
from shared.platform.audit import AuditLog
from shared.platform.settings import ConfigurationError, Settings
from shared.platform.storage import AUDIT
from tests import keyvault_stub
from tests.helpers import curated_rows, ledger_rows, upload

VAULT_KEY = bytes(reversed(range(32)))


@pytest.fixture(scope="module")
def vault(tmp_path_factory):
    stub, server = keyvault_stub.start(tmp_path_factory.mktemp("vault"))
    stub.set_secret("pseudonymisation-root-key", "v1", base64.b64encode(VAULT_KEY).decode())
    yield stub
    server.shutdown()


def secret_client(vault) -> SecretClient:
    return SecretClient(vault_url=vault.url, credential=keyvault_stub.StaticCredential(),
                        verify_challenge_resource=False, connection_verify=vault.ca_file)


def test_ingest_uses_the_key_vault_key_and_records_its_version(app_env, storage, vault):
    policy = app_env("leap")
    audit = AuditLog(storage.table(AUDIT))
    keys = KeyVaultKeySource(secret_client(vault), "pseudonymisation-root-key",
                             on_read=lambda version: audit.append("key.read", {"key_version": version}))
    pipeline = IngestPipeline(policy, storage, keys)
    reads_before = len(vault.reads)
    for seed in (1, 2):
        file = synthetic.generate(policy, "nhs-community-health", "health-visits", rows=5, seed=seed)
        upload(storage, "nhs-community-health", f"health-visits/{seed}.csv", file.content)
    for event in waiting_uploads(storage):
        pipeline.handle(parse_blob_created(event["eventType"], event["subject"], event["data"]))

    assert len(vault.reads) - reads_before == 1, "the key is read once and cached"
    assert {row["key_version"] for row in ledger_rows(storage)} == {"v1"}
    assert [e.details["key_version"] for e in audit.entries() if e.action == "key.read"] == ["v1"]
    domain = hmac.new(VAULT_KEY, b"fdp:domain:subject", hashlib.sha256).digest()
    stored = {row["nhs_pseudonym_pseudonym"] for row in curated_rows(storage)}
    expected = hmac.new(domain, f"nhs_number_token:{file.rows[0]['nhs_pseudonym']}".encode(),
                        hashlib.sha256).digest()[:16].hex()
    assert expected in stored
    assert base64.b64encode(VAULT_KEY).decode() not in json.dumps(ledger_rows(storage), default=str)


def settings(**overrides) -> Settings:
    values = dict(policy_path="p.yaml", ingest_storage="a", platform_storage="b", key_vault_url=None,
                  root_key_secret="pseudonymisation-root-key", local_root_key=None, in_azure=False)
    return Settings(**{**values, **overrides})


LOCAL = base64.b64encode(bytes(32)).decode()


def test_local_key_is_used_in_local_development():
    assert key_source_from_settings(settings(local_root_key=LOCAL)).root_key().version == "local-development"


def test_local_key_is_refused_in_azure():
    with pytest.raises(ConfigurationError, match="Key Vault"):
        key_source_from_settings(settings(local_root_key=LOCAL, in_azure=True))
    with pytest.raises(ConfigurationError, match="Key Vault"):
        key_source_from_settings(settings(local_root_key=LOCAL, in_azure=True, key_vault_url="https://v"))
    with pytest.raises(ConfigurationError, match="FDP_KEY_VAULT_URL"):
        key_source_from_settings(settings(in_azure=True))


def test_azure_is_recognised_from_the_platform_setting():
    env = {"FDP_POLICY_PATH": "p", "FDP_INGEST_STORAGE": "a", "FDP_PLATFORM_STORAGE": "b"}
    assert Settings.from_env({**env, "WEBSITE_INSTANCE_ID": "abc"}).in_azure
    assert not Settings.from_env(env).in_azure


@pytest.mark.parametrize("encoded", ["not base64!", base64.b64encode(bytes(16)).decode()])
def test_malformed_keys_are_refused_without_echoing_them(encoded):
    with pytest.raises(ConfigurationError) as error:
        key_source_from_settings(settings(local_root_key=encoded))
    assert encoded not in str(error.value)


def test_key_never_appears_in_its_repr(vault):
    key = KeyVaultKeySource(secret_client(vault), "pseudonymisation-root-key").root_key()
    assert VAULT_KEY.hex() not in repr(key) and str(list(VAULT_KEY)) not in repr(key)
