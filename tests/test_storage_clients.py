"""The storage clients read proxy settings from the environment where one is configured, and otherwise do not
walk the environment on every request (shared/platform/storage.py). Against Azurite, through the real SDK."""

from __future__ import annotations

from dataclasses import replace

import pytest
from azure.core.exceptions import ServiceRequestError

from devtools.azurite import free_port
from shared.platform.storage import Storage
from tests.conftest import POLICIES, _settings_for


def test_a_proxy_in_the_environment_is_still_used(azurite_server, monkeypatch):
    settings = _settings_for(azurite_server, POLICIES["leap"])
    assert Storage.from_settings(settings).platform_blobs.get_service_properties(retry_total=0)

    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    behind_proxy = Storage.from_settings(settings)
    with pytest.raises(ServiceRequestError):
        behind_proxy.platform_blobs.get_service_properties(retry_total=0)
    with pytest.raises(ServiceRequestError):
        behind_proxy.platform_tables.get_service_properties(retry_total=0)


def test_without_a_proxy_the_ca_bundle_in_the_environment_is_still_used(azurite_server, monkeypatch, tmp_path):
    """requests would verify HTTPS against REQUESTS_CA_BUNDLE: so do the clients that no longer read it per
    request (a bundle that is not there is refused before any connection is made)."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "no-such-bundle.pem"))
    account = "DefaultEndpointsProtocol=https;AccountName=devstoreaccount1;AccountKey=eA==;" \
              f"BlobEndpoint=https://127.0.0.1:{azurite_server.blob_port}/devstoreaccount1;"
    storage = Storage.from_settings(replace(_settings_for(azurite_server, POLICIES["leap"]), platform_storage=account))
    with pytest.raises(Exception, match="CA certificate bundle"):
        storage.platform_blobs.get_service_properties(retry_total=0)
