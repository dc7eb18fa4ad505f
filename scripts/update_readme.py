"""Regenerate the README's settings table from the settings model: python scripts/update_readme.py"""

from __future__ import annotations

import re
from pathlib import Path

from sparkplane.settings import env_table

README = Path(__file__).resolve().parents[1] / "README.md"
text = README.read_text()
updated = re.sub(
    r"(<!-- settings-table:start -->\n).*?(\n<!-- settings-table:end -->)",
    lambda m: m.group(1) + env_table() + m.group(2),
    text,
    flags=re.S,
)
README.write_text(updated)
print("README settings table is up to date" if updated == text else "README settings table regenerated")
