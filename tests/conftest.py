"""Shared fixtures: one Azurite per test session (in memory, free ports), emptied before each test."""

from __future__ import annotations

import base64
import contextlib
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError

from devtools import azurite
from shared import runtime
from shared.platform.storage import RIGHTS_QUEUE, Storage
from shared.policy.loader import Policy, load_policy

ROOT = Path(__file__).resolve().parent.parent
POLICIES = {path.stem: path for path in sorted((ROOT / "policies").glob("*.yaml"))}
TEST_ROOT_KEY = bytes(range(32))


@pytest.fixture(scope="session")
def azurite_server() -> Iterator[azurite.Azurite]:
    server = azurite.start()
    yield server
    server.stop()


@pytest.fixture
def storage(azurite_server: azurite.Azurite) -> Storage:
    """Platform and ingest storage on Azurite, empty and provisioned."""
    storage = Storage.from_settings(_settings_for(azurite_server, POLICIES["leap"]))
    for container in storage.platform_blobs.list_containers():
        with contextlib.suppress(ResourceNotFoundError):
            storage.platform_blobs.delete_container(container.name)
    for table in storage.platform_tables.list_tables():
        storage.platform_tables.delete_table(table.name)
    storage.provision()
    storage.queue(RIGHTS_QUEUE).clear_messages()  # work queued by an earlier test is not this test's
    return storage


def _settings_for(server: azurite.Azurite, policy: Path):
    from shared.platform.settings import Settings

    return Settings.from_env(_env(server, policy))


def _env(server: azurite.Azurite, policy: Path) -> dict[str, str]:
    return {"FDP_POLICY_PATH": str(policy), "FDP_INGEST_STORAGE": server.connection_string,
            "FDP_PLATFORM_STORAGE": server.connection_string,
            "FDP_LOCAL_ROOT_KEY": base64.b64encode(TEST_ROOT_KEY).decode()}


@pytest.fixture
def app_env(azurite_server: azurite.Azurite, storage: Storage, monkeypatch: pytest.MonkeyPatch):
    """Point the function app at Azurite and a policy: call with a seed policy's name (default LEAP) or a path."""

    def configure(policy: str | Path = "leap") -> Policy:
        path = POLICIES[policy] if isinstance(policy, str) else policy
        for name, value in _env(azurite_server, path).items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("FDP_KEY_VAULT_URL", raising=False)
        monkeypatch.delenv("WEBSITE_INSTANCE_ID", raising=False)
        runtime.reset()
        return load_policy(path)

    yield configure
    runtime.reset()


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record, from every logger, at every level."""
    caplog.set_level(logging.DEBUG)
    return caplog


@pytest.fixture
def browser(tmp_path: Path):
    """Debian's headless Chromium driven by Selenium (the upload page's and the console's browser tests)."""
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and chromedriver):
        pytest.fail("Chromium is not installed: `make install` installs Debian's chromium and chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    yield driver
    driver.quit()
