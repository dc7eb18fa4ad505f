"""Bob sees none of alice's things on any list page, and a page about one of them shows the API's 404 as a
message. Runs after the other browser tests (file order), when alice has clusters, sessions and batches;
her token and credential are made here so the check never passes on empty lists alone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Up

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def test_bob_sees_none_of_alices_things(
    alice_page: Page, bob_page: Page, up: Up, screenshot: Callable[[Page, str], Path]
) -> None:
    with up.client("alice") as alice:
        assert alice.post("/api/v1/tokens", json={"name": "alice-only-token"}).status_code == 201
        keys = {"access_key_id": "AKIA1", "secret_access_key": "s"}
        made = alice.post("/api/v1/credentials", json={"name": "alice-only-cred", "kind": "s3", "fields": keys})
        assert made.status_code == 201, made.text
        clusters = alice.get("/api/v1/clusters").json()["items"]
        batches = alice.get("/api/v1/batches").json()["items"]
        sessions = alice.get("/api/v1/sessions").json()["items"]

    page = bob_page
    page.goto("/ui/clusters")
    expect(page.locator("#clusters tbody")).to_contain_text("No clusters yet")
    for c in clusters:
        expect(page.locator("#clusters")).not_to_contain_text(c["cluster_name"])
    page.goto("/ui/batches")
    expect(page.locator("#batches tbody")).to_contain_text("No batches yet")
    page.goto("/ui/sql")
    expect(page.locator("#sql-session option")).to_have_text(["no live session: start one →"])
    page.goto("/ui/account")
    expect(page.locator("#tokens tbody")).to_contain_text("No tokens.")
    expect(page.locator("#credentials tbody")).to_contain_text("No credentials.")
    page.goto("/ui/")
    expect(page.locator("#count-clusters")).to_have_text("0 cluster(s) up")

    if batches:
        page.goto(f"/ui/batches/{batches[0]['id']}")
        expect(page.locator(".gone")).to_contain_text(f"Batch {batches[0]['id']} is not there")
        expect(page.locator(".gone")).to_contain_text("not found")  # the API's own message
        screenshot(page, "not-yours")
    if clusters:
        page.goto(f"/ui/clusters/{clusters[0]['cluster_id']}")
        expect(page.locator(".gone")).to_contain_text("not found")
    print(f"\n[isolation] alice has {len(clusters)} clusters, {len(batches)} batches, {len(sessions)} sessions")
