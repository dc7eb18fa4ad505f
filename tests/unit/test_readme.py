"""The README's configuration table is generated from the settings model; this keeps it true."""

from __future__ import annotations

import re
from pathlib import Path

from sparkplane.settings import env_table

README = Path(__file__).parents[2] / "README.md"


def test_readme_settings_table_matches_the_model() -> None:
    match = re.search(r"<!-- settings-table:start -->\n(.*?)\n<!-- settings-table:end -->", README.read_text(), re.S)
    assert match, "the README lost its settings-table markers"
    assert match.group(1) == env_table(), "README settings table is stale: run python scripts/update_readme.py"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = (README.parent / ".ci" / "run").read_text()
    assert "exec scripts/test\n" in ci
    assert "| run the whole test suite (lint, types, import layers, tests) | `scripts/test` |" in README.read_text()
