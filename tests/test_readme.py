"""The README's first command, run as a new user would: a fresh virtual environment, a fresh home,
a copy of the project, no dataset anywhere and no internet (so `minicnn train lenet5` must fall back
to the bundled digits and still train, show its progress and save its run)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(encoding="utf-8"), re.DOTALL)


def test_readme_has_exactly_two_setup_commands():
    commands = readme_commands()
    assert len(commands) == 2
    assert commands[0] == "pip install -e . && minicnn train lenet5"
    assert "pytest" in commands[1]


@pytest.mark.skipif(not shutil.which("git"), reason="needs git to copy the project's tracked files")
def test_first_command_in_a_fresh_virtual_environment(tmp_path):
    project = tmp_path / "minicnn"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, project / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(home),
        "VIRTUAL_ENV": str(venv),
        "MINICNN_MIRROR": "http://127.0.0.1:9",  # no internet here: fail fast instead of waiting for DNS
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT", "PIP_CONFIG_FILE", "LANG"):
        if name in os.environ:
            env[name] = os.environ[name]
    result = subprocess.run(readme_commands()[0], shell=True, cwd=project, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Training on the bundled 'digits' dataset instead" in result.stderr
    assert "epoch 10" in result.stdout and "run saved in runs" in result.stdout
    runs = list((project / "runs").iterdir())
    assert len(runs) == 1 and {"config.json", "metrics.jsonl", "last.safetensors", "best.safetensors"} <= {p.name for p in runs[0].iterdir()}
    accuracy = float(re.search(r"test accuracy ([\d.]+)%", result.stdout).group(1))
    assert accuracy > 90.0
