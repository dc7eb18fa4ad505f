"""Logging in and out in the browser; the cookie's flags; pages without a login; CSRF on cookie changes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import Up, log_in, page_errors, watch

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def test_a_wrong_password_shows_an_error_on_the_login_page(
    browser: Browser, up: Up, accounts: dict[str, str], screenshot: Callable[[Page, str], Path]
) -> None:
    context = browser.new_context(base_url=up.url)
    page = context.new_page()
    watch(page)
    page.goto("/ui/login")
    page.fill('input[name="username"]', "alice")
    page.fill('input[name="password"]', "not-her-password")
    page.click('button[type="submit"]')
    expect(page.locator(".message.error span")).to_have_text("wrong username or password")
    assert page.url.endswith("/ui/login")
    assert not [c for c in context.cookies() if c["name"] == "sparkplane_session"]
    screenshot(page, "login-error")
    assert page_errors(page) == []
    context.close()


def test_the_login_cookie_is_httponly_and_scripts_cannot_read_it(alice_page: Page) -> None:
    cookie = next(c for c in alice_page.context.cookies() if c["name"] == "sparkplane_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["path"] == "/"
    alice_page.goto("/ui/")
    assert "sparkplane_session" not in alice_page.evaluate("document.cookie")


def test_a_page_without_a_login_goes_to_the_login_page_and_back(
    browser: Browser, up: Up, accounts: dict[str, str]
) -> None:
    context = browser.new_context(base_url=up.url)
    page = context.new_page()
    watch(page)
    page.goto("/ui/batches")
    assert page.url == f"{up.url}/ui/login?next=/ui/batches"
    page.fill('input[name="username"]', "bob")
    page.fill('input[name="password"]', accounts["bob"])
    page.click('button[type="submit"]')
    page.wait_for_url(f"{up.url}/ui/batches")
    expect(page.locator("h1")).to_have_text("Batches")
    context.close()


def test_a_change_made_with_the_cookie_but_without_the_csrf_header_is_refused(alice_page: Page) -> None:
    alice_page.goto("/ui/account")
    forged = alice_page.evaluate(
        """async () => {
            const r = await fetch('/api/v1/tokens', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                                      body: JSON.stringify({name: 'forged'})});
            return {status: r.status, body: await r.json()};
        }"""
    )
    assert forged["status"] == 403
    assert "X-CSRF-Token" in forged["body"]["detail"]
    tokens = alice_page.evaluate("fetch('/api/v1/tokens').then(r => r.json())")
    assert "forged" not in [t["name"] for t in tokens]


def test_log_out_ends_the_login(new_page: Callable[[str], Page], up: Up, accounts: dict[str, str]) -> None:
    page = new_page("alice")
    page.goto("/ui/clusters")
    page.click("#logout")
    page.wait_for_url(f"{up.url}/ui/login")
    assert not [c for c in page.context.cookies() if c["name"] == "sparkplane_session"]
    page.goto("/ui/clusters")
    assert page.url.startswith(f"{up.url}/ui/login")
    log_in(page, up, "alice", accounts["alice"])  # and back in
    expect(page.locator("h1")).to_have_text("Welcome, alice")
