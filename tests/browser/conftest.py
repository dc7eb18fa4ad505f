"""The web UI in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright's Python package)
against one real `sparkplane up` per run. Shared by every browser test, the notebook pages' too:

    up                  the running `sparkplane up` (url, data_dir, an admin httpx client, log_tail())
    accounts            alice and bob, created through the API by the admin: {"alice": password, ...}
    browser             one Chromium for the run
    admin_page, alice_page, bob_page
                        a logged-in page per user, each in its own browser context (its own cookies)
    new_page(user)      a fresh logged-in page in a fresh context (for tests that log out or break things)
    screenshot(page, name)
                        writes a PNG to $SPARKPLANE_SCREENSHOTS, or build/screenshots (gitignored)
    running_cluster     a RUNNING one-worker local cluster of alice's, made through the API, terminated at the end
    dialogs(page)       the alert/prompt dialogs a page has seen (confirm() dialogs are accepted and listed too)

Never `playwright install`: the system's Chromium is the browser (scripts/test installs it when missing).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Dialog, Page, Playwright, expect, sync_playwright

from tests.e2e.roles import RoleProcess, start_up, stop_local_runs, wait_until

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps calling Google's services on a closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN_PASSWORD = "browser-admin-password"
PASSWORDS = {"admin": ADMIN_PASSWORD, "alice": "alice-browser-pw", "bob": "bob-browser-pw1"}
EXAMPLES = Path(__file__).parents[2] / "examples"
SCREENSHOTS = Path(os.environ.get("SPARKPLANE_SCREENSHOTS") or Path(__file__).parents[2] / "build" / "screenshots")
expect.set_options(timeout=20_000)


@dataclass
class Up:
    url: str
    data_dir: Path
    process: RoleProcess
    admin: httpx.Client

    def client(self, user: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=(user, PASSWORDS[user]), timeout=60)

    def log_tail(self) -> str:
        return self.process.log_tail(60)


@pytest.fixture(scope="session")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/test (it installs Debian's chromium package)")
    data_dir = tmp_path_factory.mktemp("browser-up")
    env = {
        "SPARKPLANE_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "SPARKPLANE_POOL_SIZE": "1",  # one warm agent: the first SQL session is idle at once
        "SPARKPLANE_SPARK_MASTER": "local[1]",
        "SPARKPLANE_RECONCILE_INTERVAL_SECONDS": "0.5",
        "SPARKPLANE_CANCEL_GRACE_SECONDS": "5",
    }
    process, url = start_up(data_dir, env)
    admin = httpx.Client(base_url=url, auth=("admin", ADMIN_PASSWORD), timeout=60)
    try:
        yield Up(url, data_dir, process, admin)
    finally:
        admin.close()
        process.stop()
        for root in ("clusters", "sessions", "runs"):
            stop_local_runs(data_dir / root)


@pytest.fixture(scope="session")
def accounts(up: Up) -> dict[str, str]:
    for user in ("alice", "bob"):
        response = up.admin.post("/api/v1/users", json={"username": user, "password": PASSWORDS[user]})
        assert response.status_code == 201, response.text
    return dict(PASSWORDS)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@dataclass
class PageWatch:
    """What a page did that a test may want to assert on: dialogs and uncaught script errors."""

    dialogs: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


_WATCHES: dict[Page, PageWatch] = {}


def watch(page: Page) -> PageWatch:
    found = _WATCHES.setdefault(page, PageWatch())

    def on_dialog(dialog: Dialog) -> None:
        found.dialogs.append((dialog.type, dialog.message))
        if dialog.type == "confirm":
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda error: found.errors.append(str(error)))
    return found


@pytest.fixture
def dialogs() -> Callable[[Page], list[tuple[str, str]]]:
    return lambda page: _WATCHES[page].dialogs


def page_errors(page: Page) -> list[str]:
    return _WATCHES[page].errors


def log_in(page: Page, up: Up, user: str, password: str) -> None:
    page.goto(f"{up.url}/ui/login")
    page.fill('input[name="username"]', user)
    page.fill('input[name="password"]', password)
    page.click('button[type="submit"]')
    page.wait_for_url(f"{up.url}/ui/")


def _logged_in(browser: Browser, up: Up, accounts: dict[str, str], user: str) -> tuple[BrowserContext, Page]:
    context = browser.new_context(viewport={"width": 1366, "height": 900}, base_url=up.url)
    page = context.new_page()
    watch(page)
    log_in(page, up, user, accounts[user])
    return context, page


@pytest.fixture(scope="session")
def new_page(browser: Browser, up: Up, accounts: dict[str, str]) -> Iterator[Callable[[str], Page]]:
    contexts: list[BrowserContext] = []

    def make(user: str) -> Page:
        context, page = _logged_in(browser, up, accounts, user)
        contexts.append(context)
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def admin_page(new_page: Callable[[str], Page]) -> Page:
    return new_page("admin")


@pytest.fixture(scope="session")
def alice_page(new_page: Callable[[str], Page]) -> Page:
    return new_page("alice")


@pytest.fixture(scope="session")
def bob_page(new_page: Callable[[str], Page]) -> Page:
    return new_page("bob")


@pytest.fixture(scope="session")
def screenshot() -> Callable[[Page, str], Path]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page: Page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture(scope="session")
def running_cluster(up: Up, accounts: dict[str, str]) -> Iterator[dict[str, Any]]:
    """One RUNNING local cluster of alice's (one sp.small worker), made through the API; terminated at the end."""
    with up.client("alice") as alice:
        response = alice.post(
            "/api/v1/clusters", json={"cluster_name": "shared", "num_workers": 1, "node_type_id": "sp.small"}
        )
        assert response.status_code == 201, response.text
        cluster_id = response.json()["cluster_id"]
        wait_until(
            lambda: alice.get(f"/api/v1/clusters/{cluster_id}").json()["state"] == "RUNNING",
            180,
            message=lambda: f"cluster {cluster_id} to run\n{up.log_tail()}",
        )
        yield alice.get(f"/api/v1/clusters/{cluster_id}").json()
        alice.post(f"/api/v1/clusters/{cluster_id}/terminate")
