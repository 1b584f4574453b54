"""The import rules of docs/architecture.md, read from the source (no module is run to check them)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "minicnn"
ARCHITECTURE_PLUGINS = ("minicnn_lenet", "minicnn_alexnet", "minicnn_vgg", "minicnn_googlenet", "minicnn_resnet")
ABOVE_KERNELS = ("minicnn.autograd", "minicnn.functional", "minicnn.nn", "minicnn.optim", "minicnn.data",
                 "minicnn.plugin", "minicnn.tools", "minicnn.train", "minicnn.cli", "minicnn.testing", "minicnn.inference")
ABOVE_FUNCTIONAL = ABOVE_KERNELS[2:]


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, whether the import is at module level) for each import in `path`.

    `from minicnn import nn` counts as "minicnn.nn"; imports inside functions are lazy, not top level.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, id(node) in top_level))
            found += [(f"{node.module}.{alias.name}", id(node) in top_level) for alias in node.names]
    return found


def modules_under(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py")) if folder else sorted(PACKAGE.rglob("*.py"))


def offending(paths, forbidden, top_level_only: bool = False) -> list[str]:
    return [f"{path.relative_to(PACKAGE.parent)} imports {name}"
            for path in paths for name, top in imports(path)
            if (top or not top_level_only) and any(name == f or name.startswith(f + ".") for f in forbidden)]


def test_the_package_never_imports_an_architecture_plugin():
    assert offending(modules_under(""), ARCHITECTURE_PLUGINS) == []


def test_only_the_cli_imports_the_cli_typer_and_rich():
    outside = [p for p in modules_under("")
               if "cli" not in p.relative_to(PACKAGE).parts and p.name != "__main__.py"]  # `python -m minicnn` is the CLI
    assert offending(outside, ("minicnn.cli", "typer", "rich")) == []


@pytest.mark.parametrize("folder, forbidden", [("kernels", ABOVE_KERNELS), ("functional", ABOVE_FUNCTIONAL)])
def test_lower_layers_never_import_higher_ones(folder, forbidden):
    assert offending(modules_under(folder), forbidden) == []


def test_no_module_imports_cupy_at_import_time():
    assert offending(modules_under(""), ("cupy", "cupyx"), top_level_only=True) == []


def test_no_module_imports_mpi4py_at_import_time():
    assert offending(modules_under(""), ("mpi4py",), top_level_only=True) == []


def test_distributed_sits_below_training():
    """The loop uses minicnn.distributed; distributed never reaches up to training, plugins, tools or the CLI."""
    above = ("minicnn.train", "minicnn.plugin", "minicnn.tools", "minicnn.cli", "minicnn.inference")
    assert offending(modules_under("distributed"), above) == []


def test_a_rule_that_is_broken_is_found(tmp_path):
    """The checker itself: a planted upward import is reported, a lazy one only when asked."""
    planted = tmp_path / "bad.py"
    planted.write_text("import cupy\nfrom minicnn import nn\n\ndef f():\n    import minicnn.train\n", encoding="utf-8")
    assert ("cupy", True) in imports(planted) and ("minicnn.nn", True) in imports(planted)
    assert ("minicnn.train", False) in imports(planted)


def test_import_minicnn_loads_neither_pluggy_nor_cupy():
    code = "import sys, minicnn; print(sorted(m for m in ('pluggy', 'cupy', 'minicnn.plugin') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_importing_minicnn_or_its_distributed_package_loads_no_mpi4py():
    """mpi4py initialises MPI when imported: only `minicnn.distributed.world()` may do that."""
    code = ("import sys, minicnn, minicnn.distributed, minicnn.train; "
            "print(sorted(m for m in ('mpi4py', 'cupy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
