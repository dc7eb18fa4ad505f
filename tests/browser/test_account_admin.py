"""The account page (API tokens shown once and revoked, a new password, data credentials by name) and the
admin page (create a user, make them admin, disable them)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import Up, log_in, page_errors, watch

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def test_an_api_token_is_shown_once_works_and_is_revoked(
    alice_page: Page, up: Up, screenshot: Callable[[Page, str], Path]
) -> None:
    page = alice_page
    page.goto("/ui/account")
    page.fill('#token-form input[name="name"]', "laptop")
    page.click('#token-form button[type="submit"]')
    shown = page.locator("#new-token-value")
    expect(shown).to_have_text(re.compile(r"^spk_\S{20,}$"))
    token = shown.inner_text()
    bearer = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{up.url}/api/v1/users/me", headers=bearer).json()["username"] == "alice"
    screenshot(page, "account")

    page.reload()
    assert token not in page.content()  # shown once: the list has its first characters only
    row = page.locator("#tokens tbody tr", has_text="laptop")
    expect(row.locator(".token-status")).to_have_text("active")
    row.locator("button", has_text="revoke").click()
    expect(row.locator(".token-status")).to_have_text("revoked")
    assert httpx.get(f"{up.url}/api/v1/users/me", headers=bearer).status_code == 401


def test_data_credentials_are_listed_by_name_only(alice_page: Page) -> None:
    page = alice_page
    page.goto("/ui/account")
    page.fill('#credential-form input[name="name"]', "lake")
    page.fill('#credential-form input[name="access_key_id"]', "AKIAEXAMPLEKEY0001")
    page.fill('#credential-form input[name="secret_access_key"]', "very-secret-value-1")
    page.click('#credential-form button[type="submit"]')
    row = page.locator("#credentials tbody tr", has_text="lake")
    expect(row).to_have_count(1)
    page.reload()
    assert "very-secret-value-1" not in page.content() and "AKIAEXAMPLEKEY0001" not in page.content()
    row.locator("button", has_text="delete").click()
    expect(page.locator("#credentials tbody")).to_contain_text("No credentials.")


def test_change_the_password_and_log_in_with_the_new_one(browser: Browser, up: Up, accounts: dict[str, str]) -> None:
    assert up.admin.post("/api/v1/users", json={"username": "dave", "password": "dave-first-pw"}).status_code == 201
    context = browser.new_context(base_url=up.url)
    page = context.new_page()
    watch(page)
    log_in(page, up, "dave", "dave-first-pw")
    page.goto("/ui/account")
    page.fill('#password-form input[name="password"]', "dave-second-pw")
    page.fill('#password-form input[name="repeat"]', "dave-second-pw")
    page.click('#password-form button[type="submit"]')
    expect(page.locator(".message.ok")).to_contain_text("Password changed")
    page.click("#logout")
    page.wait_for_url(f"{up.url}/ui/login")
    page.fill('input[name="username"]', "dave")
    page.fill('input[name="password"]', "dave-first-pw")
    page.click('button[type="submit"]')
    expect(page.locator(".message.error span")).to_have_text("wrong username or password")
    log_in(page, up, "dave", "dave-second-pw")
    expect(page.locator("h1")).to_have_text("Welcome, dave")
    assert page_errors(page) == []
    context.close()


def test_an_admin_creates_a_user_makes_them_admin_and_disables_them(
    admin_page: Page, alice_page: Page, up: Up, screenshot: Callable[[Page, str], Path]
) -> None:
    page = admin_page
    page.goto("/ui/admin")
    form = page.locator("#create-user")
    form.locator('input[name="username"]').fill("carol")
    form.locator('input[name="password"]').fill("carol-password")
    form.locator('button[type="submit"]').click()
    row = page.locator('#users tr[data-username="carol"]')
    expect(row.locator(".role")).to_have_text("user")
    carol = ("carol", "carol-password")
    assert httpx.get(f"{up.url}/api/v1/users/me", auth=carol).json()["role"] == "user"

    row.locator('[data-action="make-admin"]').click()
    expect(row.locator(".role")).to_have_text("admin")
    assert httpx.get(f"{up.url}/api/v1/users/me", auth=carol).json()["role"] == "admin"
    row.locator('[data-action="disable"]').click()
    expect(row.locator(".status")).to_have_text("disabled")
    assert httpx.get(f"{up.url}/api/v1/users/me", auth=carol).status_code == 401
    screenshot(page, "admin")

    alice_page.goto("/ui/admin")  # a plain user: no Admin link, and the page says no
    expect(alice_page.locator("h1")).to_have_text("Admins only")
    expect(alice_page.locator('nav a[href="/ui/admin"]')).to_have_count(0)
