"""The workspace and notebook pages in a real Chromium against a real `sparkplane up` running real Spark:
make a notebook, attach it to a running cluster, run a pyspark and a SQL cell, see the table and the chart,
sort, reload, detach, export it as .ipynb and import it back, outputs shown as text, and bob kept out of
alice's notebook."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import Up

pytestmark = pytest.mark.browser
SPARK = 180_000  # ms: the first statement may wait for its session's Spark driver to start


def cell(page: Page, index: int) -> Locator:
    return page.locator("section.cell").nth(index)


def test_a_notebook_from_creation_to_export_and_import(
    up: Up,
    alice_page: Page,
    bob_page: Page,
    running_cluster: dict[str, Any],
    screenshot: Callable[[Page, str], Path],
    tmp_path: Path,
) -> None:
    """The first seed's user: a notebook attached to their cluster runs its cells on that cluster's Spark."""
    page = alice_page
    alerts: list[str] = []
    page.on("dialog", lambda dialog: alerts.append(dialog.message) if dialog.type == "alert" else None)

    page.goto("/ui/workspace")
    page.fill('#new-folder input[name="name"]', "reports")
    page.click('#new-folder button[type="submit"]')
    expect(page.locator("#ws-tree")).to_contain_text("reports")
    page.locator("#ws-items a", has_text="reports").click()
    expect(page.locator("#ws-breadcrumb")).to_contain_text("reports")
    page.fill('#new-notebook input[name="name"]', "counts")
    page.click('#new-notebook button[type="submit"]')
    page.wait_for_url(re.compile(r"/ui/notebooks/\d+$"))
    notebook_id = int(page.url.rsplit("/", 1)[1])

    # three cells: pyspark (the one a new notebook starts with), SQL, and one that prints markup
    expect(page.locator("section.cell")).to_have_count(1)
    cell(page, 0).locator("textarea").fill("print(spark.range(3).count())")
    page.click('button[data-add="sql"]')
    expect(page.locator("section.cell")).to_have_count(2)
    cell(page, 1).locator("textarea").fill("SELECT id, id*2 AS twice FROM range(4)")
    page.click('button[data-add="pyspark"]')
    expect(page.locator("section.cell")).to_have_count(3)
    cell(page, 2).locator("textarea").fill("print('<script>alert(1)</script>')")

    # not attached: running says so
    cell(page, 0).locator("button.run").click()
    expect(page.locator("#messages")).to_contain_text("attach")

    cluster_id = str(running_cluster["cluster_id"])
    # the selector lists the clusters running when the page loaded: this one runs since before the test
    expect(page.locator(f'#attach-target option[value="{cluster_id}"]')).to_have_count(1)
    page.select_option("#attach-target", cluster_id)
    page.click("#attach")
    expect(page.locator("#detach")).to_be_visible()
    expect(page.locator("#session-state")).to_contain_text("session")
    expect(page.locator("#session-state")).to_contain_text(f"on cluster {cluster_id}")

    cell(page, 0).locator("button.run").click()
    expect(cell(page, 0)).to_have_attribute("data-state", "done", timeout=SPARK)
    expect(cell(page, 0).locator(".output")).to_contain_text("3")
    expect(cell(page, 0).locator(".count")).to_have_text("[1]")

    cell(page, 1).locator("button.run").click()
    expect(cell(page, 1)).to_have_attribute("data-state", "done", timeout=SPARK)
    table = cell(page, 1).locator("table.results")
    expect(table.locator("tbody tr")).to_have_count(4)
    expect(cell(page, 1).locator(".row-count")).to_contain_text("4 rows")
    twice = table.locator("th", has_text="twice")
    twice.click()
    twice.click()  # descending
    expect(twice).to_have_attribute("aria-sort", "descending")
    expect(table.locator("tbody tr").first.locator("td").nth(1)).to_have_text("6")

    cell(page, 1).locator("details.output-chart summary").click()
    chart = cell(page, 1).locator(".chart svg")
    expect(chart.locator("rect.bar")).to_have_count(4)
    cell(page, 1).get_by_label("chart type").select_option("line")
    expect(chart.locator("path.line")).to_have_count(1)
    expect(chart.locator("circle.dot")).to_have_count(4)
    screenshot(page, "notebook-sql-chart")

    cell(page, 2).locator("button.run").click()
    expect(cell(page, 2)).to_have_attribute("data-state", "done", timeout=SPARK)
    expect(cell(page, 2).locator("pre.output-text")).to_have_text("<script>alert(1)</script>")
    assert page.locator(".output script").count() == 0 and alerts == []

    # an error is shown readably
    page.click('button[data-add="pyspark"]')
    expect(page.locator("section.cell")).to_have_count(4)
    cell(page, 3).locator("textarea").fill("1/0")
    cell(page, 3).locator("button.run").click()
    expect(cell(page, 3)).to_have_attribute("data-state", "error", timeout=SPARK)
    expect(cell(page, 3).locator(".output-error")).to_contain_text("ZeroDivisionError")
    screenshot(page, "notebook-cells")

    # a reload shows the outputs: they are the cells' own
    page.reload()
    expect(cell(page, 0).locator(".output")).to_contain_text("3")
    expect(cell(page, 1).locator("table.results tbody tr")).to_have_count(4)

    page.click("#detach")
    expect(page.locator("#session-state")).to_contain_text("detached")
    expect(page.locator("#attach")).to_be_visible()

    with page.expect_download() as download:
        page.click("#export-ipynb")
    exported = tmp_path / "counts.ipynb"
    download.value.save_as(exported)
    data = json.loads(exported.read_text())
    assert data["nbformat"] == 4 and [c["source"][:1] for c in data["cells"]][1] == ["%%sql\n"]

    page.goto("/ui/workspace")
    page.set_input_files('#import-notebook input[type="file"]', str(exported))
    page.click('#import-notebook button[type="submit"]')
    # at the top, where no 'counts' is yet (the original is in "reports"), so it keeps its name
    imported = page.locator("#ws-items a.notebook-name", has_text="counts")
    expect(imported).to_be_visible()
    screenshot(page, "workspace")
    imported.click()
    expect(page.locator("section.cell")).to_have_count(4)
    assert [cell(page, i).locator("textarea").input_value() for i in range(4)] == [
        "print(spark.range(3).count())",
        "SELECT id, id*2 AS twice FROM range(4)",
        "print('<script>alert(1)</script>')",
        "1/0",
    ]
    expect(cell(page, 1).locator("table.results tbody tr")).to_have_count(4)  # outputs came along

    # bob: alice's notebook does not exist for him
    response = bob_page.goto(f"/ui/notebooks/{notebook_id}")
    assert response is not None and response.status == 404
    expect(bob_page.locator("#not-found-message")).to_contain_text("not found")
    screenshot(bob_page, "notebook-not-found")
    bob_page.goto("/ui/workspace")
    expect(bob_page.locator("#ws-items")).to_contain_text("This folder is empty")


def test_the_workspace_tree_rename_move_and_delete(alice_page: Page, screenshot: Callable[[Page, str], Path]) -> None:
    page = alice_page
    page.goto("/ui/workspace")
    for name in ("projects", "drafts"):
        page.fill('#new-folder input[name="name"]', name)
        page.click('#new-folder button[type="submit"]')
        expect(page.locator("#ws-tree")).to_contain_text(name)
    page.fill('#new-folder input[name="name"]', "drafts")  # taken: the API's 409 is shown
    page.click('#new-folder button[type="submit"]')
    expect(page.locator("#messages")).to_contain_text("already taken")

    drafts = page.locator("#ws-items tr", has_text="drafts")
    drafts.get_by_role("button", name="Rename").click()
    drafts.get_by_label("new name").fill("old drafts")
    drafts.get_by_role("button", name="Save").click()
    moved = page.locator("#ws-items tr", has_text="old drafts")
    moved.get_by_role("button", name="Move").click()
    moved.get_by_label("move to").select_option(label="projects")
    moved.get_by_role("button", name="Move here").click()
    expect(page.locator("#ws-items tr", has_text="old drafts")).to_have_count(0)
    expect(page.locator("#ws-tree li li li")).to_contain_text("old drafts")  # Workspace > projects > old drafts

    page.locator("#ws-tree a", has_text="projects").click()
    expect(page.locator("#ws-breadcrumb")).to_contain_text("projects")
    expect(page.locator("#ws-items")).to_contain_text("old drafts")
    screenshot(page, "workspace-folder")
    page.locator("#ws-items tr", has_text="old drafts").get_by_role("button", name="Delete").click()  # confirm: yes
    expect(page.locator("#ws-items")).to_contain_text("This folder is empty")
    expect(page.locator("#ws-tree")).not_to_contain_text("old drafts")
