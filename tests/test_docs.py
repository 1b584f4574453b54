"""The documentation cannot rot: every Python block in README.md and docs/ runs, every relative link
points to a file that exists, and the English and Chinese tutorials run the same examples. Every
model spec in docs/specs.md builds and runs, and every error it documents is the one minicnn gives;
every minicnn name that docs/plugins.md and docs/specs.md use exists, under its public name.

The blocks of one page run in order in one namespace, as a reader would run them (a tutorial builds
on its earlier blocks). Each block is compiled under the page's path with its own line numbers, so a
traceback points at the line of the page, and a failure names the block.
"""

import re
from pathlib import Path

import numpy as np
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


# -- docs/specs.md: every spec builds and runs, every documented error is the real one ----------------

SPECS = ROOT / "docs" / "specs.md"
SPEC_BLOCK = re.compile(r"^```toml\n(.*?)^```\n(?:\n```text\n(error: .*?)^```\n)?", re.DOTALL | re.MULTILINE)


def spec_examples() -> list[tuple[int, str, str | None]]:
    """(line, TOML, the documented message or None) for each ```toml block of docs/specs.md; a block
    followed by a ```text block starting with "error: " documents the error it raises."""
    text = SPECS.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1), m.group(2)) for m in SPEC_BLOCK.finditer(text)]


def _built_specs() -> list[tuple[int, str]]:
    return [(line, toml) for line, toml, message in spec_examples() if message is None]


@pytest.mark.parametrize("line, toml", _built_specs(), ids=[f"line {line}" for line, _ in _built_specs()])
def test_each_spec_in_the_docs_builds_and_runs_on_its_input_size(tmp_path, monkeypatch, line, toml):
    import minicnn as mc

    monkeypatch.chdir(tmp_path)
    Path("net.toml").write_text(toml, encoding="utf-8")
    model = mc.build_model("net.toml")
    assert model.input_size is not None, f"the spec at line {line} has no input_size to run it on"
    output = model(mc.tensor(np.random.default_rng(0).standard_normal((2, *model.input_size)).astype(np.float32)))
    assert output.shape[0] == 2 and np.isfinite(output.numpy()).all()


@pytest.mark.parametrize("line, toml, message", [e for e in spec_examples() if e[2] is not None],
                         ids=[f"line {e[0]}" for e in spec_examples() if e[2] is not None])
def test_each_documented_spec_error_is_the_message_minicnn_gives(tmp_path, monkeypatch, line, toml, message):
    import minicnn as mc

    monkeypatch.chdir(tmp_path)
    Path("net.toml").write_text(toml, encoding="utf-8")
    with pytest.raises(mc.SpecError) as raised:
        mc.build_model("net.toml")
    documented = " ".join(message.removeprefix("error: ").split())
    pattern = ".*?".join(re.escape(part.strip()).replace(r"\ ", r"\s+") for part in documented.split("..."))
    actual = " ".join(str(raised.value).split())
    assert re.fullmatch(pattern, actual), f"docs/specs.md line {line} documents\n{documented}\nminicnn says\n{actual}"


def test_the_specs_page_shows_every_built_in_layer_in_a_spec_that_builds():
    from minicnn import nn

    used = {m.group(1) for _, toml in _built_specs() for m in re.finditer(r'^type = "(\w+)"', toml, re.MULTILINE)}
    missing = sorted({layer.__name__ for layer in nn.LAYERS} - used)
    assert not missing, f"docs/specs.md has no example spec using {missing}"


def test_the_specs_page_lists_each_layer_s_real_arguments():
    import inspect

    from minicnn import nn

    rows = dict(re.findall(r"^\| `(\w+)` \| `(\(.*\))` \|$", SPECS.read_text(encoding="utf-8"), re.MULTILINE))
    for layer in nn.LAYERS:
        parameters = inspect.signature(layer).parameters.values()
        real = "(" + ", ".join(str(p.replace(annotation=inspect.Parameter.empty)) for p in parameters) + ")"
        assert rows.get(layer.__name__) == real, f"docs/specs.md's row for {layer.__name__}: {rows.get(layer.__name__)} vs {real}"


# -- docs/plugins.md: one public name for each thing it names -------------------------------------------

NAMED = re.compile(r"(?<![\w./-])(?:mc|minicnn)((?:\.\w+)+)")
IMPORTED = re.compile(r"^\s*from (minicnn(?:\.\w+)*) import ([\w, ]+)$", re.MULTILINE)


def named_paths(page: Path) -> set[str]:
    """Every dotted name under minicnn that the page writes: `mc.get_layer`, `minicnn.testing.gradcheck`,
    and what `from minicnn.x import y` imports."""
    text = page.read_text(encoding="utf-8")
    paths = {"minicnn" + m.group(1) for m in NAMED.finditer(text)}
    paths |= {f"{m.group(1)}.{name.strip()}" for m in IMPORTED.finditer(text) for name in m.group(2).split(",")}
    return paths


def _resolve(path: str):
    import importlib

    parts = path.split(".")
    value = importlib.import_module(parts[0])
    for index, part in enumerate(parts[1:], start=2):
        try:
            value = getattr(value, part)
        except AttributeError:
            value = importlib.import_module(".".join(parts[:index]))  # a submodule not imported yet
    return value


@pytest.mark.parametrize("page", [ROOT / "docs" / "plugins.md", SPECS], ids=_name)
def test_every_minicnn_name_a_page_uses_exists_under_its_public_name(page):
    import minicnn

    unresolved, roundabout = [], []
    for path in sorted(named_paths(page)):
        try:
            value = _resolve(path)
        except (ImportError, AttributeError):
            unresolved.append(path)
            continue
        leaf = path.rsplit(".", 1)[1]
        if path.count(".") > 1 and leaf in minicnn.__all__ and getattr(minicnn, leaf) is value:
            roundabout.append(f"{path} (public as minicnn.{leaf})")
    assert not unresolved, f"{_name(page)} names what does not exist: {unresolved}"
    assert not roundabout, f"{_name(page)} names public helpers by a private path: {roundabout}"


def test_the_plugin_pyproject_in_the_docs_depends_on_minicnn_s_distribution():
    import tomllib

    minicnn_s_own = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["name"]
    blocks = re.findall(r"^```toml\n(.*?)^```", (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8"),
                        re.DOTALL | re.MULTILINE)
    [project] = [tomllib.loads(block)["project"] for block in blocks if "[project]" in block]
    for example in ("example-plugin", "broken-plugin"):
        declared = tomllib.loads((ROOT / "examples" / example / "pyproject.toml").read_text(encoding="utf-8"))
        assert declared["project"]["dependencies"] == [f"{minicnn_s_own}>=0.1"], example
    assert project["dependencies"] == [f"{minicnn_s_own}>=0.1"]
