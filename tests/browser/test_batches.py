"""The batches pages: submit examples/pi.py from the file chooser, follow the live log to its result, kill
another batch; a batch named like a script shows as text."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import EXAMPLES, page_errors

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
SCRIPT = "<script>alert(1)</script>"


def submit(page: Page, example: str, name: str, args: str = "") -> str:
    page.goto("/ui/batches")
    page.set_input_files('input[name="file"]', str(EXAMPLES / example))
    page.fill('input[name="name"]', name)
    page.fill('input[name="args"]', args)
    page.click('#submit-batch button[type="submit"]')
    page.wait_for_url(re.compile(r"/ui/batches/\d+$"))
    return page.url.rsplit("/", 1)[1]


def test_a_batch_from_a_file_runs_and_its_log_shows_live(
    alice_page: Page, dialogs: Callable[[Page], list[tuple[str, str]]], screenshot: Callable[[Page, str], Path]
) -> None:
    page = alice_page
    batch_id = submit(page, "pi.py", SCRIPT, "2")
    expect(page.locator("#batch-title")).to_have_text(f"Batch {batch_id}: {SCRIPT}")
    expect(page.locator("#batch-log")).to_contain_text("Pi is roughly", timeout=150_000)
    expect(page.locator("#batch-facts .badge")).to_have_text("success", timeout=60_000)
    expect(page.locator("#kill-batch")).to_be_disabled()
    screenshot(page, "batch-detail")

    page.goto("/ui/batches")
    row = page.locator(f'#batches tr[data-batch-id="{batch_id}"]')
    expect(row.locator(".batch-name")).to_have_text(SCRIPT)
    expect(row.locator(".badge")).to_have_text("success")
    screenshot(page, "batches-list")
    assert page.locator("#batches script").count() == 0
    assert [d for d in dialogs(page) if d[0] == "alert"] == []
    assert page_errors(page) == []


def test_kill_a_running_batch(alice_page: Page) -> None:
    page = alice_page
    batch_id = submit(page, "sleep.py", "sleeper", "300")
    expect(page.locator("#batch-facts .badge")).to_have_text("running", timeout=120_000)
    page.click("#kill-batch")  # confirm() accepted
    expect(page.locator("#batch-facts .badge")).to_have_text("killed", timeout=60_000)
    page.goto("/ui/batches")
    expect(page.locator(f'#batches tr[data-batch-id="{batch_id}"] .badge')).to_have_text("killed")
