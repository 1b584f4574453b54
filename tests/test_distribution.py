"""The distribution's name: `minicnn` on PyPI is an unrelated project, so minicnn installs as
`minicnn-framework`, and no message or page may tell a user to `pip install minicnn`."""

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest

from minicnn import distribution

ROOT = Path(__file__).resolve().parents[1]
SEARCHED = ("minicnn", "plugins", "docs", "examples", "benchmarks", ".ci", "README.md", "pyproject.toml")
TEXT_SUFFIXES = {".py", ".md", ".toml", ".sh", ".txt", ".cfg", ""}
# `pip install` then, after any options, the bare name `minicnn`: alone, quoted or with extras.
WRONG_INSTALL = re.compile(r"""pip3?\s+install(?:\s+-{1,2}[\w-]+(?:=\S+)?)*\s+['"]?minicnn(?![\w.-])""")


def searched_files() -> list[Path]:
    files = []
    for name in SEARCHED:
        path = ROOT / name
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files += [p for p in path.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES
                      and "__pycache__" not in p.parts and "results" not in p.parts]
    return files


def wrong_install_hints(text: str) -> list[str]:
    return [match.group(0) for match in WRONG_INSTALL.finditer(text)]


@pytest.mark.parametrize("text, found", [
    ("install it with `pip install 'minicnn[cuda]'`", True),
    ('pip install "minicnn[plot]"', True),
    ("pip install minicnn", True),
    ("pip install -U minicnn\n", True),
    ('pip install "minicnn-framework[cuda]"', False),
    ('pip install -e ".[cuda]"', False),
    ("pip install examples/example-plugin", False),
    ("pip install minicnn_example_plugin", False),
])
def test_the_pattern_finds_exactly_the_wrong_hints(text, found):
    assert bool(wrong_install_hints(text)) is found


def test_no_message_or_page_says_pip_install_minicnn():
    files = searched_files()
    assert any(p.name == "backend.py" for p in files) and any(p.suffix == ".md" for p in files)
    wrong = {str(p.relative_to(ROOT)): hints for p in files
             if (hints := wrong_install_hints(p.read_text(encoding="utf-8", errors="replace")))}
    assert wrong == {}


def test_pyproject_names_the_distribution_and_keeps_the_command_and_entry_point_group():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["name"] == distribution.NAME == "minicnn-framework"
    assert project["scripts"] == {"minicnn": "minicnn.cli:app"}
    assert set(project["entry-points"]) == {"minicnn"}


def test_the_installed_distribution_is_minicnn_framework():
    installed = importlib.metadata.distribution("minicnn-framework")
    assert installed.version == project_version()
    assert {ep.name for ep in installed.entry_points if ep.group == "minicnn"} == {
        "lenet", "alexnet", "vgg", "googlenet", "resnet"}


def test_the_install_command_works_from_a_checkout_and_from_the_index():
    assert distribution.install_command("cuda") == (
        '`pip install "minicnn-framework[cuda]"` (from a source checkout: `pip install -e ".[cuda]"`)')


def project_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
