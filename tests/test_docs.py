"""The documentation cannot rot: every Python block in README.md and docs/ runs, every relative link
points to a file that exists, and the English and Chinese tutorials run the same examples.

The blocks of one page run in order in one namespace, as a reader would run them (a tutorial builds
on its earlier blocks). Each block is compiled under the page's path with its own line numbers, so a
traceback points at the line of the page, and a failure names the block.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)


def python_blocks(page: Path) -> list[tuple[int, str]]:
    """(line number of the block's first code line, code) for each ```python block, in order."""
    text = page.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in BLOCK.finditer(text)]


def _name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=_name)
def test_python_blocks_run(page):
    namespace = {"__name__": "doc_example"}
    for number, (line, code) in enumerate(python_blocks(page), start=1):
        code = "\n" * (line - 1) + code  # tracebacks then show the page's own line numbers
        try:
            exec(compile(code, _name(page), "exec"), namespace)
        except Exception as error:
            pytest.fail(f"{_name(page)}: python block {number} (line {line}) failed: {type(error).__name__}: {error}")


def relative_links(page: Path) -> list[str]:
    """Link and image targets outside code blocks that are not URLs or in-page anchors."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    targets = [m.group(1) for m in LINK.finditer(text)]
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:|#", t)]


@pytest.mark.parametrize("page", [p for p in PAGES if relative_links(p)], ids=_name)
def test_relative_links_resolve(page):
    broken = [t for t in relative_links(page) if not (page.parent / t.split("#")[0]).exists()]
    assert not broken, f"{_name(page)} links to files that do not exist: {broken}"


def test_index_links_every_page():
    index = ROOT / "docs" / "index.md"
    linked = {(index.parent / t.split("#")[0]).resolve() for t in relative_links(index)}
    pages = {p.resolve() for p in (ROOT / "docs").rglob("*.md") if p != index}
    missing = sorted(_name(p) for p in pages - linked)
    assert not missing, f"docs/index.md does not link to {missing}"


def _without_comments(code: str) -> str:
    return "\n".join(line.split("  #")[0].rstrip() for line in code.splitlines() if not line.lstrip().startswith("#"))


def test_tutorials_run_the_same_examples():
    english, chinese = (python_blocks(ROOT / "docs" / lang / "tutorial.md") for lang in ("en", "zh"))
    assert len(english) == len(chinese)
    for number, ((_, en), (_, zh)) in enumerate(zip(english, chinese), start=1):
        assert _without_comments(en) == _without_comments(zh), f"python block {number} differs beyond its comments"
