"""Every Python block in README.md and docs/ runs, so the documentation cannot rot."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def _blocks():
    for page in PAGES:
        for number, code in enumerate(BLOCK.findall(page.read_text(encoding="utf-8")), start=1):
            yield pytest.param(code, id=f"{page.relative_to(ROOT)}#{number}")


@pytest.mark.parametrize("code", list(_blocks()))
def test_code_block_runs(code):
    exec(compile(code, "<doc>", "exec"), {"__name__": "doc_example"})
