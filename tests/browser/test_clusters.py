"""The clusters pages: create a one-worker local cluster in the form, watch it reach RUNNING without a reload,
read its events, resize it, terminate it. One cluster, with real Spark daemons."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import page_errors

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def test_create_watch_resize_and_terminate_a_cluster(alice_page: Page, screenshot: Callable[[Page, str], Path]) -> None:
    page = alice_page
    page.goto("/ui/clusters")
    expect(page.locator("#node-types option")).to_have_count(4)
    page.fill('input[name="cluster_name"]', "ui-cluster")
    page.select_option('select[name="node_type_id"]', "sp.small")
    page.fill('input[name="num_workers"]', "1")
    page.fill('input[name="autotermination_minutes"]', "30")
    page.click('#create-cluster button[type="submit"]')
    row = page.locator("#clusters tbody tr", has_text="ui-cluster")
    expect(row).to_have_count(1)
    expect(row.locator(".badge")).to_have_text(re.compile("PENDING|RUNNING"))
    # the list polls: RUNNING shows up without a reload once the real master and worker are up
    expect(row.locator(".badge")).to_have_text("RUNNING", timeout=150_000)
    expect(row.locator("a", has_text="Spark UI")).to_have_attribute("href", re.compile(r"^http://127\.0\.0\.1:\d+"))
    screenshot(page, "clusters-list")

    row.locator("a.cluster-name").click()
    expect(page.locator("#cluster-title")).to_have_text("ui-cluster")
    events = page.locator("#cluster-events li")
    expect(events.filter(has_text="CREATING")).to_have_count(1)
    expect(events.filter(has_text="RUNNING")).to_have_count(1)
    expect(page.locator("#cluster-nodes tbody tr")).to_have_count(2)  # the master and one worker

    page.fill('#resize-form input[name="num_workers"]', "2")
    page.click('#resize-form button[type="submit"]')
    expect(page.locator("#cluster-facts")).to_contain_text("workers2")
    expect(events.filter(has_text="RESIZING")).to_have_count(1)
    expect(page.locator("#cluster-nodes tbody tr")).to_have_count(3)  # the second worker is starting
    screenshot(page, "cluster-detail")

    page.click('[data-action="terminate"]')  # the confirm() is accepted by the page watch
    expect(page.locator("#cluster-facts .badge")).to_have_text("TERMINATED", timeout=90_000)
    expect(events.filter(has_text="TERMINATED")).to_have_count(1)
    expect(page.locator('[data-action="start"]')).to_be_enabled()
    assert page_errors(page) == []
