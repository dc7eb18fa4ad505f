"""Browser tests: a real headless Chromium (Debian's /usr/bin/chromium through Playwright's Python package,
never `playwright install`) against one real `sparkplane up` for the run.

A stand-in with the interface the web shell's own tests/browser/conftest.py documents (up, accounts,
new_page, alice_page, bob_page, screenshot), written before that file was committed; when both meet, the
shell's one wins and test_notebooks.py needs nothing else.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Dialog, Page, Playwright, expect, sync_playwright

from tests.e2e.roles import RoleProcess, free_port, stop_local_runs, wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
PASSWORDS = {"admin": "browser-admin-password", "alice": "alice-browser-pw", "bob": "bob-browser-pw1"}
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
    port = free_port()
    env = {
        **os.environ,
        "SPARKPLANE_ADMIN_PASSWORD": PASSWORDS["admin"],
        "SPARKPLANE_POOL_SIZE": "1",  # one warm agent: the first session is idle at once
        "SPARKPLANE_SPARK_MASTER": "local[1]",
        "SPARKPLANE_RECONCILE_INTERVAL_SECONDS": "0.5",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    argv = [sys.executable, "-m", "sparkplane", "up", "--data-dir", str(data_dir), "--port", str(port)]
    process = RoleProcess("up", argv, env, data_dir / "test-logs").start()
    url = f"http://127.0.0.1:{port}"
    admin = httpx.Client(base_url=url, auth=("admin", PASSWORDS["admin"]), timeout=60)
    try:
        wait_until(lambda: "sparkplane is up" in process.log(), 90, message=lambda: "up\n" + process.log_tail())
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


def _accept_confirms(dialog: Dialog) -> None:
    if dialog.type == "confirm":
        dialog.accept()
    else:
        dialog.dismiss()


@pytest.fixture(scope="session")
def new_page(browser: Browser, up: Up, accounts: dict[str, str]) -> Iterator[Callable[[str], Page]]:
    contexts: list[BrowserContext] = []

    def make(user: str) -> Page:
        context = browser.new_context(viewport={"width": 1366, "height": 900}, base_url=up.url, accept_downloads=True)
        contexts.append(context)
        page = context.new_page()
        page.on("dialog", _accept_confirms)
        page.goto("/ui/login")
        page.fill('input[name="username"]', user)
        page.fill('input[name="password"]', accounts[user])
        page.click('button[type="submit"]')
        page.wait_for_url(f"{up.url}/ui/")
        return page

    yield make
    for context in contexts:
        context.close()


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
