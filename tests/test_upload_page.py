"""The partner upload page in a real browser (Debian's headless Chromium, driven by Selenium) against Azurite:
the link arrives in the URL fragment, the file goes to Blob storage in blocks, the ingest pipeline accepts it,
and the page shows its receipt."""

from __future__ import annotations

import threading
from pathlib import Path
from urllib.parse import quote

import pytest

from devtools import localhost, synthetic
from devtools.azurite import free_port
from devtools.eventgrid import watch
from shared.runtime import drop_zones
from tests.helpers import ledger_rows

PARTNER = "family-support-charity"


@pytest.fixture
def site(app_env, storage):
    """The app's HTTP functions on a local port, Azurite's CORS open to it as `devtools.localhost` opens it (the
    same rule as in Azure), and Event Grid's part played."""
    policy = app_env("leap")
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    storage.ingest_admin().set_service_properties(cors=[])
    assert localhost.allow_the_page_on_azurite(storage, port), "the rule Azure gets from the templates"
    server = localhost.serve(port)
    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(storage, stop), daemon=True)
    watcher.start()
    yield origin, policy
    stop.set()
    watcher.join(timeout=10)
    server.shutdown()


def test_a_partner_uploads_through_the_page_and_sees_the_receipt(site, browser, storage, tmp_path: Path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.ui import Select, WebDriverWait

    origin, policy = site
    zones = drop_zones()
    zones.onboard(PARTNER)
    link = zones.issue_link(PARTNER, days=1).url
    file = synthetic.generate(policy, PARTNER, "sessions", rows=40, seed=5, invalid_rate=0.1,
                              name="october-sessions.csv")
    local = tmp_path / file.name
    local.write_bytes(file.content)

    browser.get(f"{origin}/api/upload#link={quote(link, safe='')}")
    wait = WebDriverWait(browser, 60)
    wait.until(shown.visibility_of_element_located((By.ID, "file-step")))
    assert browser.find_element(By.ID, "partner-name").text == policy.partners[PARTNER].name
    assert "sig=" not in browser.current_url, "the link leaves the address bar"
    datasets = Select(browser.find_element(By.ID, "dataset"))
    assert [o.text for o in datasets.options] == ["Parenting and family support sessions"], "labels, not folders"
    datasets.select_by_value("sessions")
    browser.find_element(By.ID, "file").send_keys(str(local))
    browser.find_element(By.ID, "upload").click()

    wait.until(shown.visibility_of_element_located((By.ID, "receipt")))
    assert browser.find_element(By.ID, "receipt-status").text == "accepted with errors"
    rows = browser.find_elements(By.CSS_SELECTOR, "#receipt-errors tbody tr")
    assert len(rows) == len(file.invalid_rows)
    [ledger] = ledger_rows(storage)
    assert ledger["status"] == "accepted" and ledger["file"].endswith("-october-sessions.csv"), "a safe name is shown"


def test_a_revoked_link_is_refused_by_the_page(site, browser, storage):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.ui import WebDriverWait

    origin, _ = site
    zones = drop_zones()
    zones.onboard(PARTNER)
    link = zones.issue_link(PARTNER, days=1).url
    zones.revoke(PARTNER)
    browser.get(f"{origin}/api/upload#link={quote(link, safe='')}")
    error = WebDriverWait(browser, 30).until(shown.visibility_of_element_located((By.ID, "link-error")))
    assert "revoked" in error.text
