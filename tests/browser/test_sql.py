"""The SQL editor: start a session, run queries as `sql` statements, see tables with row counts and times,
sort, chart, the history, and a string that looks like HTML shown as text."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import page_errors

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
SCRIPT = "<script>alert(1)</script>"


def run(page: Page, sql: str) -> None:
    page.fill("#sql-code", sql)
    page.click("#sql-run")
    expect(page.locator("#sql-run")).to_be_enabled(timeout=120_000)


def test_queries_in_a_session_show_as_tables_with_a_history(
    alice_page: Page, dialogs: Callable[[Page], list[tuple[str, str]]], screenshot: Callable[[Page, str], Path]
) -> None:
    page = alice_page
    page.goto("/ui/sql")
    page.evaluate("localStorage.clear()")
    page.select_option("#new-session-kind", "sql")
    page.click("#new-session")
    expect(page.locator("#sql-session-state .badge")).to_have_text("idle", timeout=150_000)

    run(page, "SELECT 1 AS a, 'x' AS b")
    result = page.locator("#sql-result")
    expect(result.locator("th")).to_have_text(["a", "b"])
    expect(result.locator("tbody td")).to_have_text(["1", "x"])
    expect(result.locator(".row-count")).to_contain_text("1 row in ")

    run(page, "SELECT id, id * id AS square FROM range(5)")
    expect(result.locator(".row-count")).to_contain_text("5 rows in ")
    expect(result.locator("tbody tr")).to_have_count(5)
    square = result.locator("th", has_text="square")
    square.click()
    square.click()  # descending
    expect(result.locator("tbody tr").first.locator("td")).to_have_text(["4", "16"])
    result.locator(".output-chart summary").click()
    expect(result.locator(".chart svg rect.bar")).to_have_count(5)
    screenshot(page, "sql-editor")

    run(page, f"SELECT '{SCRIPT}' AS s")
    expect(result.locator("tbody td")).to_have_text(SCRIPT)  # the text itself, not a script element
    assert result.locator("script").count() == 0

    run(page, "SELECT no_such_column")
    expect(result.locator(".output-error")).to_contain_text("no_such_column")

    history = page.locator("#sql-history li")
    expect(history).to_have_count(4)
    expect(history.nth(3)).to_contain_text("1 row")
    history.nth(2).locator("button").click()
    expect(page.locator("#sql-code")).to_have_value("SELECT id, id * id AS square FROM range(5)")
    assert [d for d in dialogs(page) if d[0] == "alert"] == []
    assert page_errors(page) == []
