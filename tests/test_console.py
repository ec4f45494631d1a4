"""The operator console in a real browser (Debian's headless Chromium, driven by Selenium) against Azurite, served
by the local host that plays App Service authentication for the browser (devtools/localhost.py --sign-in-as):
an operator finds the overdue rights request, decides an identity review pair, issues and revokes a partner's
upload link, and (where the breach register is in the app) opens, assesses and closes a breach.

Set FDP_CONSOLE_SCREENSHOTS=docs/images to refresh the screenshots docs/console.md shows."""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from devtools import localhost
from devtools.azurite import free_port
from shared.identity.review import ACCEPTED, PENDING
from shared.platform.auth import LOCAL_MODE, Problem
from shared.platform.paging import PageRequest
from shared.platform.storage import REQUESTS
from shared.rights.requests import RECEIVED, RequestRegister, RightsRequest
from shared.runtime import drop_zones
from tests.helpers import deliver_all, person_index, upload
from tests.test_identity import ANN, BEN, POLICY

OPERATOR = "operator:Platform.Admin,DataProtection.Officer,Analyst"
CONFLICT = ("family_ref,nhs_number,child_name,postcode,date_of_birth,service,consent\r\n"
            f"FAM-9,{ANN},Cara Mensah,SE11 4AA,2022-05-20,baby_steps,Y\r\n")
NURSERY = ("child_ref,child_name,postcode,date_of_birth,score,consent\r\n"
           "N-900,Cara Mensah,SE11 4AA,2022-05-20,50,Y\r\n")


@pytest.fixture
def console(app_env, storage, tmp_path: Path, monkeypatch):
    """The app on a local port, signed in as an operator with the three roles, over the identity test's policy."""
    policy_file = tmp_path / "identity.yaml"
    policy_file.write_text(POLICY)
    app_env(policy_file)
    monkeypatch.setenv("FDP_LOCAL_AUTH", LOCAL_MODE)
    port = free_port()
    server = localhost.serve(port, principal=localhost.signed_in(OPERATOR))
    yield f"http://127.0.0.1:{port}/api/console"
    server.shutdown()


def seed_request(storage, days_ago: int, kind: str) -> str:
    register = RequestRegister(storage.table(REQUESTS))
    request = RightsRequest(id=register.new_id(), type=kind, status=RECEIVED,
                            received=date.today() - timedelta(days=days_ago), created_by="dpo",
                            given=[{"pseudonym": "p", "label": "NHS number"}])
    register.save(request)
    return request.id


def seed_conflict(storage) -> None:
    """One child's rows under two NHS numbers: the linkage puts the pair in the review queue as a conflict."""
    upload(storage, "charity", "sessions/one.csv", CONFLICT.encode())
    upload(storage, "charity", "sessions/two.csv", CONFLICT.replace(ANN, BEN).replace("baby_steps", "family_nurse")
           .encode())
    upload(storage, "nursery", "assessments/one.csv", NURSERY.encode())
    deliver_all(storage)


def screenshot(driver, tmp_path: Path, name: str) -> None:
    folder = Path(os.environ.get("FDP_CONSOLE_SCREENSHOTS") or tmp_path)
    driver.set_window_size(1400, driver.execute_script("return document.body.scrollHeight") + 200)
    driver.save_screenshot(str(folder / name))
    driver.set_window_size(1400, 1000)


def test_an_operator_finds_the_overdue_request_decides_a_pair_and_revokes_a_link(console, browser, storage,
                                                                                 tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.ui import WebDriverWait

    fresh = seed_request(storage, 2, "access")
    overdue = seed_request(storage, 45, "erasure")
    seed_conflict(storage)
    zones = drop_zones()
    zones.onboard("charity")
    before = zones.issue_link("charity", days=2).url

    browser.set_window_size(1400, 1000)
    browser.get(console)
    wait = WebDriverWait(browser, 60)

    # The overdue request leads the open requests, marked as overdue.
    first = wait.until(shown.visibility_of_element_located((By.CSS_SELECTOR, "#requests tbody tr")))
    assert first.get_attribute("data-id") == overdue and "overdue" in first.get_attribute("class")
    assert "overdue by" in first.text and "erasure" in first.text
    rows = browser.find_elements(By.CSS_SELECTOR, "#requests tbody tr")
    assert [row.get_attribute("data-id") for row in rows] == [overdue, fresh]

    # The review queue shows the conflict as an agreement pattern, never a value.
    pair = wait.until(shown.visibility_of_element_located((By.CSS_SELECTOR, "#reviews tbody tr")))
    assert "conflict" in pair.text and "two different NHS numbers" in pair.text
    wait.until(shown.visibility_of_element_located((By.CSS_SELECTOR, "#uploads tbody tr")))
    wait.until(shown.visibility_of_element_located((By.CSS_SELECTOR, "#partners tbody tr")))
    page_text = browser.find_element(By.TAG_NAME, "body").text
    for personal in ("Mensah", "Cara", ANN, BEN, "SE11", "2022-05-20"):
        assert personal not in page_text, "the console shows no personal data"
    assert "Family charity" in page_text, "partners by the policy's name"
    screenshot(browser, tmp_path, "console.png")

    review_id = pair.get_attribute("data-id")
    pair.find_element(By.CSS_SELECTOR, "button.accept").click()
    wait.until(shown.text_to_be_present_in_element((By.ID, "reviews"), "Nothing to review."))
    decided = person_index(storage).reviews.listing(ACCEPTED, PageRequest("identity-reviews"))["items"]
    assert [item["id"] for item in decided] == [review_id] and decided[0]["decided_by"] == "operator"
    assert person_index(storage).reviews.listing(PENDING, PageRequest("identity-reviews"))["items"] == []

    # A link is issued and shown once, with the upload page ready to copy; then every link is revoked.
    charity = browser.find_element(By.CSS_SELECTOR, "#partners tbody tr[data-id='charity']")
    assert "1 issued" in charity.text
    charity.find_element(By.XPATH, ".//button[text()='Issue link']").click()
    browser.find_element(By.XPATH, "//tr[contains(@class,'row-form')]//button[text()='Issue']").click()
    issued = wait.until(shown.visibility_of_element_located((By.ID, "issued-link"))).get_attribute("value")
    assert "/api/upload#link=" in issued
    wait.until(shown.text_to_be_present_in_element((By.CSS_SELECTOR, "#partners tbody tr[data-id='charity']"),
                                                   "2 issued"))
    screenshot(browser, tmp_path, "console-link.png")
    browser.find_element(By.CSS_SELECTOR, "#partners tbody tr[data-id='charity'] button.revoke").click()
    browser.find_element(By.XPATH, "//tr[contains(@class,'row-form')]//button[contains(text(),'Revoke every')]"
                         ).click()
    wait.until(shown.text_to_be_present_in_element((By.CSS_SELECTOR, "#partners tbody tr[data-id='charity']"),
                                                   "no live links"))
    assert not browser.find_element(By.ID, "issued").is_displayed(), "the revoked link is no longer offered"
    for link in (before, parse_qs(urlsplit(issued).fragment)["link"][0]):
        with pytest.raises(Problem) as refused:
            zones.check_link(link)
        assert refused.value.status == 401, "every link of the partner stopped working"


def test_a_long_list_pages_with_more(console, browser, storage):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    seeded = [seed_request(storage, days_ago, "access") for days_ago in range(23)]
    browser.get(console)
    wait = WebDriverWait(browser, 60)
    rows = "#requests tbody tr"
    wait.until(lambda driver: len(driver.find_elements(By.CSS_SELECTOR, rows)) == 20)
    browser.find_element(By.CSS_SELECTOR, "#requests button.more").click()
    wait.until(lambda driver: len(driver.find_elements(By.CSS_SELECTOR, rows)) == 23)
    found = browser.find_elements(By.CSS_SELECTOR, rows)
    assert sorted(row.get_attribute("data-id") for row in found) == sorted(seeded), "each request once"
    due = [row.find_elements(By.TAG_NAME, "td")[3].text for row in found]
    assert due == sorted(due), "soonest due first, across both pages"
    assert browser.find_elements(By.CSS_SELECTOR, "#requests button.more") == [], "no More after the last page"


def test_a_console_without_sign_in_says_so_and_shows_nothing(app_env, storage, browser, monkeypatch):
    """No principal (App Service authentication off, no local sign-in): every panel shows the 401 problem and the
    sign-in link, no data."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.ui import WebDriverWait

    app_env("leap")
    monkeypatch.delenv("FDP_LOCAL_AUTH", raising=False)
    seed_request(storage, 45, "access")
    port = free_port()
    server = localhost.serve(port)
    try:
        browser.get(f"http://127.0.0.1:{port}/api/console")
        WebDriverWait(browser, 30).until(shown.visibility_of_element_located((By.ID, "signin")))
        WebDriverWait(browser, 30).until(shown.text_to_be_present_in_element((By.ID, "requests"), "Unauthorized"))
        assert browser.find_elements(By.CSS_SELECTOR, "#requests tbody tr") == []
    finally:
        server.shutdown()


def test_the_console_page_is_served_with_a_strict_content_security_policy(app_env):
    app_env("leap")
    routes = localhost.http_routes()
    for path, kind in (("console", "text/html"), ("console/assets/console.js", "text/javascript"),
                       ("console/assets/console.css", "text/css")):
        response = localhost.dispatch(routes, "GET", f"http://localhost/api/{path}", {})
        assert response.status_code == 200 and response.mimetype == kind
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert "connect-src 'self';" in response.headers["Content-Security-Policy"], "calls go to the app only"
    missing = localhost.dispatch(routes, "GET", "http://localhost/api/console/assets/upload.js", {})
    assert missing.status_code == 404 and missing.mimetype == "application/problem+json"
    unknown = localhost.dispatch(routes, "GET", "http://localhost/api/no-such-list", {})
    assert unknown.status_code == 404 and unknown.mimetype == "application/problem+json", "locally too"
    script = (Path(__file__).parent.parent / "functions" / "static" / "console.js").read_text()
    assert "innerHTML" not in script, "values are written as text, never parsed as HTML"


BREACH_REGISTER = any(route.name.startswith("breach") for route in localhost.http_routes())


@pytest.mark.skipif(not BREACH_REGISTER, reason="the breach register (branch `breach`) is not in the app yet")
def test_an_operator_opens_assesses_and_closes_a_breach(console, browser, storage):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.ui import Select, WebDriverWait

    def act(row_button: str, submit: str, **fields: str) -> None:
        row = browser.find_element(By.CSS_SELECTOR, "#breaches tbody tr:not(.row-form)")
        row.find_element(By.XPATH, f".//button[text()='{row_button}']").click()
        form = browser.find_element(By.CSS_SELECTOR, "#breaches tr.row-form")
        for name, value in fields.items():
            field = form.find_element(By.NAME, name)
            if field.tag_name == "select":
                Select(field).select_by_value(value)
            else:
                field.send_keys(value)
        form.find_element(By.XPATH, f".//button[text()='{submit}']").click()
        WebDriverWait(browser, 30).until(shown.staleness_of(form))

    browser.get(console)
    wait = WebDriverWait(browser, 60)
    wait.until(shown.text_to_be_present_in_element((By.ID, "breaches"), "No breaches."))
    Select(browser.find_element(By.ID, "breach-category")).select_by_value("misdirected_upload")
    browser.find_element(By.ID, "breach-description").send_keys("A file sent to the wrong drop zone")
    browser.find_element(By.ID, "breach-open").click()
    row = wait.until(shown.visibility_of_element_located((By.CSS_SELECTOR, "#breaches tbody tr")))
    assert "misdirected upload" in row.text and "h to tell the ICO" in row.text

    act("Assess", "Record assessment", risk="risk", reason="Partner data seen by another partner")
    wait.until(shown.text_to_be_present_in_element((By.CSS_SELECTOR, "#breaches tbody tr"), "risk"))
    act("ICO notified", "Record", reference="ICO-2026-0042")
    act("Close", "Close breach", outcome="File deleted by the other partner; link rotated")
    wait.until(shown.text_to_be_present_in_element((By.ID, "breaches"), "No breaches."))
    Select(browser.find_element(By.ID, "breaches-status")).select_by_value("closed")
    closed = wait.until(shown.visibility_of_element_located((By.CSS_SELECTOR, "#breaches tbody tr")))
    assert "closed" in closed.text and "risk" in closed.text
