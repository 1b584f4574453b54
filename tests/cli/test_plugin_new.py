"""`minicnn plugin new NAME` (minicnn/cli/plugin_new.py, writing from minicnn/tools/plugin_template.py).

The package it writes is installed by pip, as a user installs it, into a folder of its own that only
the subprocesses here see (PYTHONPATH), so this environment stays as it was; there it must pass
`minicnn check` and its own tests exactly as written. A NAME that cannot work, and a folder that
already holds something, are refused with a message and nothing is written.
"""

import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

import minicnn as mc
from minicnn.cli import app
from minicnn.plugin.registry import Entry

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
FILES = ["pyproject.toml", "README.md", "minicnn_scaled_tanh/__init__.py", "minicnn_scaled_tanh/scaled_tanh.py",
         "minicnn_scaled_tanh/scaled_tanh_net.py", "tests/test_scaled_tanh.py"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, Path, str]:
    """(the plugin's folder, the folder pip installed it into, the command's output) for `scaled-tanh`."""
    work = tmp_path_factory.mktemp("plugin_new")
    result = runner.invoke(app, ["plugin", "new", "scaled-tanh", "--dir", str(work)])
    assert result.exit_code == 0, result.output
    folder, site = work / "minicnn-scaled-tanh", work / "site-packages"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-cache-dir",
         "--disable-pip-version-check", "--quiet", "--target", str(site), str(folder)],
        capture_output=True, text=True,
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr
    return folder, site, result.output


def run_with_plugin(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`python ARGS` in a fresh process that sees the installed plugin through PYTHONPATH, no MINICNN_* set."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MINICNN_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, encoding="utf-8", env=env,
                          cwd=cwd, timeout=300)


def test_the_command_writes_the_package_and_says_what_to_run_next(generated):
    folder, _, output = generated
    written = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                     if p.is_file() and "egg-info" not in str(p) and "build" not in p.relative_to(folder).parts)
    assert written == sorted(FILES)
    lines = output.splitlines()
    assert lines[0] == f"wrote plugin 'scaled_tanh' (distribution minicnn-scaled-tanh) in {folder}:"
    assert [line.strip() for line in lines[1:1 + len(FILES)]] == FILES
    assert f"pip install -e {folder}" in output and "minicnn check ScaledTanh" in output
    assert "minicnn check scaled_tanh_net" in output


def test_the_generated_plugin_passes_minicnn_check(generated):
    folder, site, _ = generated
    for name in ("ScaledTanh", "scaled_tanh_net"):
        result = run_with_plugin(site, "-m", "minicnn", "check", name, cwd=folder.parent)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "(plugin 'scaled_tanh')" in result.stdout and f"{name}: passed" in result.stdout
        assert "✓ gradcheck" in result.stdout and "scaled_tanh" not in result.stderr  # no plugin problem


def test_the_generated_tests_pass_against_the_installed_plugin(generated):
    folder, site, _ = generated
    result = run_with_plugin(site, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder / "tests"),
                             cwd=folder.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 passed" in result.stdout


def test_the_package_declares_its_entry_point_and_depends_on_minicnn_s_own_distribution(generated):
    folder, site, _ = generated
    project = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["name"] == "minicnn-scaled-tanh"
    assert project["entry-points"]["minicnn"] == {"scaled_tanh": "minicnn_scaled_tanh"}
    minicnn_s_own = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["name"]
    assert minicnn_s_own != "minicnn"  # an unrelated project has that name on the package index
    assert project["dependencies"] == [f"{minicnn_s_own}>={'.'.join(mc.__version__.split('.')[:2])}"]
    [installed] = importlib.metadata.distributions(path=[str(site)])
    assert installed.metadata["Name"] == "minicnn-scaled-tanh"
    assert [(ep.group, ep.name, ep.value) for ep in installed.entry_points] == [
        ("minicnn", "scaled_tanh", "minicnn_scaled_tanh")]


def test_the_docs_show_what_the_command_prints(tmp_path, monkeypatch):
    page = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    shown = re.search(r"```text\n\$ minicnn plugin new scaled-tanh\n(.*?)```", page, re.DOTALL).group(1)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["plugin", "new", "scaled-tanh"])
    assert result.exit_code == 0 and result.output == shown


@pytest.mark.parametrize("name", ["Scaled_Tanh", "minicnn-scaled-tanh", " scaled-tanh "])
def test_spellings_of_one_name_make_the_same_plugin(tmp_path, name):
    result = runner.invoke(app, ["plugin", "new", name, "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert [p.name for p in tmp_path.iterdir()] == ["minicnn-scaled-tanh"]
    assert (tmp_path / "minicnn-scaled-tanh" / "minicnn_scaled_tanh" / "scaled_tanh.py").is_file()


@pytest.mark.parametrize("name, message", [
    ("3d", "cannot name a Python package"),
    ("my plugin", "cannot name a Python package"),
    ("scaled-tanh!", "cannot name a Python package"),
    ("café", "cannot name a Python package"),
    ("class", "cannot name a Python package"),
    ("minicnn", "cannot name a Python package"),
    ("-", "cannot name a Python package"),
    ("nn", "a name the generated code itself uses ('nn')"),
    ("range", "a name the generated code itself uses ('range')"),
    ("lenet", "has a plugin named 'lenet'"),
    ("layers", "has a plugin named 'layers'"),
    ("conv2d", "would register the layer 'Conv2d', which plugin 'layers' already provides"),
])
def test_a_name_that_cannot_work_is_refused_and_nothing_is_written(tmp_path, name, message):
    result = runner.invoke(app, ["plugin", "new", name, "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert message in " ".join(result.output.split()) and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_a_model_name_already_registered_is_refused(tmp_path):
    models = mc.plugin_system().registries["models"]
    try:
        models.add(Entry("model", "taken_net", lambda **options: None, "someone"))
        result = runner.invoke(app, ["plugin", "new", "taken", "--dir", str(tmp_path)])
    finally:
        mc.reload_plugins()
    assert result.exit_code == 1 and list(tmp_path.iterdir()) == []
    assert "would register the model 'taken_net', which plugin 'someone' already provides" in " ".join(result.output.split())


def test_a_folder_that_holds_something_is_left_as_it_was(tmp_path):
    notes = tmp_path / "minicnn-scaled-tanh" / "notes.txt"
    notes.parent.mkdir()
    notes.write_text("mine", encoding="utf-8")
    result = runner.invoke(app, ["plugin", "new", "scaled-tanh", "--dir", str(tmp_path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "already exists and is not an empty folder: nothing was written" in " ".join(result.output.split())
    assert list(notes.parent.iterdir()) == [notes] and notes.read_text(encoding="utf-8") == "mine"


def test_an_empty_folder_of_that_name_is_used(tmp_path):
    (tmp_path / "minicnn-scaled-tanh").mkdir()
    result = runner.invoke(app, ["plugin", "new", "scaled-tanh", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "minicnn-scaled-tanh" / "pyproject.toml").is_file()
