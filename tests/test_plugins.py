"""Plugin loading: each hook, each failure mode, each environment variable.

Plugins here are real installed distributions as importlib.metadata sees them: a package folder plus
a `*.dist-info` folder with METADATA and entry_points.txt, on a temporary sys.path entry.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

import minicnn as mc
import minicnn.plugins
from minicnn.plugins import PluginError, PluginSystem

GOOD = """
    import minicnn
    from minicnn import nn

    class Doubler(nn.Module):
        def forward(self, x):
            return x * 2.0

    def tiny(num_classes=10, in_channels=1):
        return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 4 * 4, num_classes))

    def squares(split="train"):
        return [(i, i * i) for i in range(3)]

    @minicnn.hookimpl
    def minicnn_register_layers(register):
        register("Doubler", Doubler, description="multiplies by two")

    @minicnn.hookimpl
    def minicnn_register_models(register):
        register("tiny", tiny, input_size=(1, 4, 4), description="one linear layer")

    @minicnn.hookimpl
    def minicnn_register_datasets(register):
        register("squares", squares, description="three squares")
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A fresh site-packages folder on sys.path; `site(plugin, module, code)` installs a plugin."""
    monkeypatch.syspath_prepend(str(tmp_path))
    installed = []

    def install(plugin: str, module: str, code: str, distribution: str | None = None, version: str = "1.0"):
        distribution = distribution or f"{module.replace('_', '-')}"
        (tmp_path / module).mkdir()
        (tmp_path / module / "__init__.py").write_text(textwrap.dedent(code))
        info = tmp_path / f"{distribution.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[minicnn]\n{plugin} = {module}\n")
        installed.append(module)

    yield install
    for module in installed:
        sys.modules.pop(module, None)
    minicnn.plugins._system = None  # the next use loads again, without this folder


def load(**environ) -> PluginSystem:
    return PluginSystem(environ=environ)


def test_builtin_layers_and_lenet_are_there():
    system = load()
    assert "Conv2d" in system.registries["layers"] and "lenet5" in system.registries["models"]
    assert system.plugins["layers"].distribution == "minicnn"
    assert system.plugins["lenet"].provides == {"models": ["lenet5"]}


def test_each_hook_registers_its_kind(site):
    site("good", "good_plugin", GOOD, distribution="minicnn-good", version="2.5")
    system = load()
    info = system.plugins["good"]
    assert (info.status, info.distribution, info.version) == ("loaded", "minicnn-good", "2.5")
    assert info.hooks == ["minicnn_register_datasets", "minicnn_register_layers", "minicnn_register_models"]
    assert info.provides == {"layers": ["Doubler"], "models": ["tiny"], "datasets": ["squares"]}
    model = system.registries["models"].get("tiny")
    assert model.input_size == (1, 4, 4) and model.description == "one linear layer"
    assert system.registries["datasets"].get("squares").target() == [(0, 0), (1, 1), (2, 4)]
    doubler = system.registries["layers"].get("Doubler").target()
    assert doubler(mc.tensor([1.5])).item() == 3.0


def test_a_plugin_that_fails_to_import_is_reported_and_others_work(site):
    site("good", "good_plugin", GOOD)
    site("broken", "broken_plugin", "import a_module_that_does_not_exist\n", distribution="minicnn-broken")
    system = load()
    broken = system.plugins["broken"]
    assert broken.status == "failed" and broken.distribution == "minicnn-broken"
    assert "import failed: ModuleNotFoundError" in broken.errors[0] and "a_module_that_does_not_exist" in broken.errors[0]
    assert "tiny" in system.registries["models"] and "lenet5" in system.registries["models"]
    assert system.problems() == [broken]


def test_a_plugin_that_raises_in_its_hook_registers_nothing_from_that_hook(site):
    site("raiser", "raiser_plugin", """
        import minicnn
        from minicnn import nn

        @minicnn.hookimpl
        def minicnn_register_models(register):
            register("half", nn.Identity)
            raise ValueError("weights missing")

        @minicnn.hookimpl
        def minicnn_register_layers(register):
            register("Same", nn.Identity)
    """)
    system = load()
    info = system.plugins["raiser"]
    assert info.status == "failed"
    assert info.errors == ["minicnn_register_models raised ValueError: weights missing"]
    assert "half" not in system.registries["models"]
    assert "Same" in system.registries["layers"] and "lenet5" in system.registries["models"]


def test_a_wrong_hook_signature_is_reported(site):
    site("wrongsig", "wrongsig_plugin", """
        import minicnn

        @minicnn.hookimpl
        def minicnn_register_models(register, device):
            pass
    """)
    info = load().plugins["wrongsig"]
    assert info.status == "failed" and info.errors[0].startswith("invalid hook")
    assert "device" in info.errors[0]


def test_a_misspelled_hook_is_reported(site):
    site("typo", "typo_plugin", """
        import minicnn

        @minicnn.hookimpl
        def minicnn_register_model(register):
            pass
    """)
    system = load()
    info = system.plugins["typo"]
    assert info.status == "failed"
    assert "minicnn_register_model" in info.errors[0] and "minicnn_register_models" in info.errors[0]
    assert "lenet5" in system.registries["models"]


def test_a_plugin_without_decorated_hooks_is_reported(site):
    site("plain", "plain_plugin", "def minicnn_register_models(register):\n    pass\n")
    info = load().plugins["plain"]
    assert info.status == "failed" and "@minicnn.hookimpl" in info.errors[0]


def test_duplicate_names_are_refused_naming_both_plugins(site):
    site("copycat", "copycat_plugin", """
        import minicnn
        from minicnn import nn

        @minicnn.hookimpl
        def minicnn_register_models(register):
            register("lenet5", nn.Identity)
            register("original", nn.Identity)
    """)
    system = load()
    info = system.plugins["copycat"]
    assert len(info.errors) == 1
    assert "model 'lenet5' from plugin 'copycat' is refused" in info.errors[0] and "plugin 'lenet'" in info.errors[0]
    assert system.registries["models"].get("lenet5").plugin == "lenet"
    assert info.provides == {"models": ["original"]}


def test_two_distributions_with_one_plugin_name(site):
    site("twin", "twin_one", GOOD, distribution="twin-one")
    site("twin", "twin_two", GOOD, distribution="twin-two")
    system = load()
    failed = [i for i in system.plugins.values() if i.status == "failed"]
    assert len(failed) == 1 and "already uses the plugin name 'twin'" in failed[0].errors[0]


def test_bad_register_call_is_reported(site):
    site("badcall", "badcall_plugin", """
        import minicnn

        @minicnn.hookimpl
        def minicnn_register_models(register):
            register("nothing", None)
    """)
    info = load().plugins["badcall"]
    assert "needs a class or factory function" in info.errors[0]


def test_strict_mode_makes_failures_fatal(site):
    site("broken", "broken_plugin", "raise RuntimeError('boom')\n", distribution="minicnn-broken")
    with pytest.raises(PluginError, match=r"plugin 'broken' \(distribution minicnn-broken\): import failed: RuntimeError: boom"):
        load(MINICNN_STRICT_PLUGINS="1")
    assert load(MINICNN_STRICT_PLUGINS="0").plugins["broken"].status == "failed"


def test_load_plugins_unset_empty_and_listed(site):
    site("good", "good_plugin", GOOD)
    everything = load()
    assert {"good", "lenet"} <= {n for n, i in everything.plugins.items() if i.status == "loaded"}

    nothing = load(MINICNN_LOAD_PLUGINS="")
    assert nothing.plugins["good"].status == nothing.plugins["lenet"].status == "disabled"
    assert nothing.registries["models"].names() == []
    assert "Conv2d" in nothing.registries["layers"]  # the core's own layers always load

    only_good = load(MINICNN_LOAD_PLUGINS="good, nosuch")
    assert only_good.registries["models"].names() == ["tiny"]


def test_disable_plugins(site):
    site("good", "good_plugin", GOOD)
    system = load(MINICNN_DISABLE_PLUGINS="lenet,good")
    assert system.plugins["lenet"].status == "disabled" and system.plugins["good"].status == "disabled"
    assert "lenet5" not in system.registries["models"] and "tiny" not in system.registries["models"]
    assert "good_plugin" not in sys.modules  # a disabled plugin is never imported


def test_plugins_load_lazily_and_without_cupy():
    code = (
        "import sys, minicnn as mc\n"
        "before = 'minicnn_lenet' in sys.modules\n"
        "models = mc.list_models()\n"
        "print(before, 'minicnn_lenet' in sys.modules, 'cupy' in sys.modules, models)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[:3] == ["False", "True", "False"] and "'lenet5'," in " ".join(out[3:])


def test_registry_api():
    assert "lenet5" in mc.list_models() and mc.list_models("len*") == ["lenet5"] and mc.list_models("zz*") == []
    assert mc.get_layer("Conv2d") is mc.nn.Conv2d
    assert "MaxPool2d" in mc.list_layers("*pool*")
    assert isinstance(mc.list_datasets(), list)
    model = mc.create_model("lenet5", num_classes=7, in_channels=3)
    assert model.features[0].weight.shape == (6, 3, 5, 5) and model.classifier[-1].weight.shape == (7, 84)


def test_unknown_names_suggest_close_matches():
    with pytest.raises(mc.RegistryError, match=r"unknown model 'lenet'; did you mean 'lenet5'"):
        mc.create_model("lenet")
    with pytest.raises(mc.RegistryError, match=r"unknown layer 'conv2d'; did you mean 'Conv2d'\?"):
        mc.get_layer("conv2d")


def test_create_model_with_bad_arguments_names_the_model():
    with pytest.raises(TypeError, match=r"model 'lenet5' \(plugin 'lenet'\) could not be built with \{'depth': 3\}"):
        mc.create_model("lenet5", depth=3)


def test_reload_plugins_sees_a_newly_installed_plugin(site):
    assert "tiny" not in mc.list_models()
    site("good", "good_plugin", GOOD)
    assert "tiny" not in mc.list_models()  # loaded once, on first use
    assert "tiny" in mc.reload_plugins().registries["models"]
    assert "tiny" in mc.list_models()


def run_cli(tmp_path, *args, **environ):
    env = {**os.environ, "PYTHONPATH": str(tmp_path), **environ}
    return subprocess.run([sys.executable, "-m", "minicnn", *args], capture_output=True, text=True, env=env)


def test_cli_lists_a_broken_plugin_and_keeps_working(site, tmp_path):
    site("good", "good_plugin", GOOD)
    site("broken", "broken_plugin", "import a_module_that_does_not_exist\n", distribution="minicnn-broken")
    listing = run_cli(tmp_path, "plugins", "--json")
    assert listing.returncode == 0, listing.stderr
    by_name = {p["name"]: p for p in json.loads(listing.stdout)}
    assert by_name["broken"]["status"] == "failed" and "a_module_that_does_not_exist" in by_name["broken"]["errors"][0]
    assert by_name["good"]["provides"]["models"] == ["tiny"]

    models = run_cli(tmp_path, "models", "--json")
    assert models.returncode == 0 and {m["name"] for m in json.loads(models.stdout)} >= {"lenet5", "tiny"}
    assert "plugin 'broken' (minicnn-broken)" in models.stderr
    assert run_cli(tmp_path, "layers").returncode == 0
    datasets = run_cli(tmp_path, "datasets", "--json")
    assert {"squares", "mnist", "digits"} <= {d["name"] for d in json.loads(datasets.stdout)}


def test_cli_respects_the_environment(site, tmp_path):
    site("good", "good_plugin", GOOD)
    only = run_cli(tmp_path, "models", "--json", MINICNN_LOAD_PLUGINS="good")
    assert [m["name"] for m in json.loads(only.stdout)] == ["tiny"]
    table = run_cli(tmp_path, "plugins", MINICNN_DISABLE_PLUGINS="good")
    assert "disabled" in table.stdout
