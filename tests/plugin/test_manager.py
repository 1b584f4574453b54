"""Plugin loading: each hook, each failure mode, each environment variable.

Plugins here are real installed distributions as importlib.metadata sees them: a package folder plus
a `*.dist-info` folder with METADATA and entry_points.txt, on a temporary sys.path entry.
"""

import json
import os
import subprocess
import sys
import textwrap

import pluggy
import pytest

import minicnn as mc
import minicnn.plugin.manager
from minicnn.plugin.manager import PluginError, PluginSystem

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

    def install(plugin: str, module: str, code: str, distribution: str | None = None, version: str = "1.0",
                folder: str | None = None):
        """`folder` installs into a new sys.path entry in front of the others (found first)."""
        distribution = distribution or f"{module.replace('_', '-')}"
        root = tmp_path
        if folder is not None:
            root = tmp_path / folder
            root.mkdir()
            monkeypatch.syspath_prepend(str(root))
        (root / module).mkdir()
        (root / module / "__init__.py").write_text(textwrap.dedent(code))
        info = root / f"{distribution.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[minicnn]\n{plugin} = {module}\n")
        installed.append(module)

    yield install
    for module in installed:
        sys.modules.pop(module, None)
    minicnn.plugin.manager._system = None  # the next use loads again, without this folder


def load(**environ) -> PluginSystem:
    return PluginSystem(environ=environ)


def test_builtin_layers_and_lenet_are_there():
    system = load()
    assert "Conv2d" in system.registries["layers"] and "lenet5" in system.registries["models"]
    assert system.plugins["layers"].distribution == "minicnn-framework"
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


IMPOSTOR = """
    import minicnn
    from minicnn import nn

    class Conv2d(nn.Identity):
        pass

    def lenet5(num_classes=10, in_channels=1):
        return nn.Identity()

    def mnist(split="train"):
        return []

    @minicnn.hookimpl
    def minicnn_register_layers(register):
        register("Conv2d", Conv2d)

    @minicnn.hookimpl
    def minicnn_register_models(register):
        register("lenet5", lenet5)

    @minicnn.hookimpl
    def minicnn_register_datasets(register):
        register("mnist", mnist)
        register("own", mnist)

    @minicnn.hookimpl
    def minicnn_register_optimizers(register):
        register("sgd", lambda params, **settings: None, default_lr=1.0)

    @minicnn.hookimpl
    def minicnn_register_schedules(register):
        register("cosine", lambda optimizer, epochs: None)
"""


@pytest.fixture(params=["as pluggy lists them", "reversed"])
def pluggy_order(request, monkeypatch):
    """The precedence rule must not depend on the order pluggy returns hook implementations in."""
    if request.param == "reversed":
        listed = pluggy.HookCaller.get_hookimpls
        monkeypatch.setattr(pluggy.HookCaller, "get_hookimpls", lambda caller: listed(caller)[::-1])


@pytest.mark.parametrize("plugin", ["aaa", "zzz"])  # sorts before and after every plugin that ships with minicnn
def test_a_third_party_plugin_never_takes_a_name_that_ships_with_minicnn(site, plugin, pluggy_order):
    site(plugin, f"{plugin}_impostor", IMPOSTOR, distribution=f"{plugin}-impostor")
    assert mc.get_layer("Conv2d") is mc.nn.Conv2d
    assert type(mc.create_model("lenet5")).__name__ == "LeNet5"
    assert minicnn.plugin.manager.dataset_entry("mnist").plugin == "datasets"
    assert minicnn.plugin.manager.optimizer_entry("sgd").plugin == minicnn.plugin.manager.schedule_entry("cosine").plugin == "optimizers"
    info = mc.plugin_system().plugins[plugin]
    for kind, name, holder in [("layer", "Conv2d", "layers"), ("model", "lenet5", "lenet"), ("dataset", "mnist", "datasets"),
                               ("optimizer", "sgd", "optimizers"), ("schedule", "cosine", "optimizers")]:
        [error] = [e for e in info.errors if f"{kind} '{name}'" in e]
        assert f"from plugin '{plugin}' is refused" in error and f"plugin '{holder}'" in error and "keeps" in error
    assert info.provides == {"datasets": ["own"]} and len(info.errors) == 5
    for holder in ("layers", "lenet", "datasets", "optimizers"):
        assert mc.plugin_system().plugins[holder].errors == []


OPTIMIZING = """
    import minicnn
    from minicnn import optim

    def plain(params, *, lr, momentum, weight_decay):
        return optim.SGD(params, lr=lr)

    def halving(optimizer, *, epochs):
        return optim.StepLR(optimizer, step_size=1, gamma=0.5)

    @minicnn.hookimpl
    def minicnn_register_optimizers(register):
        register("plain", plain, default_lr=0.25, description="SGD without momentum")

    @minicnn.hookimpl
    def minicnn_register_schedules(register):
        register("halving", halving, description="x0.5 every epoch")
        register("broken", lambda optimizer, epochs: "not a schedule")
"""


def test_optimizers_and_schedules_are_registered_and_built_like_the_built_in_ones(site, monkeypatch):
    from minicnn.plugin.manager import create_optimizer, create_schedule

    site("optimizing", "optimizing_plugin", OPTIMIZING)
    system = load()
    monkeypatch.setattr(minicnn.plugin.manager, "_system", system)
    info = system.plugins["optimizing"]
    assert info.hooks == ["minicnn_register_optimizers", "minicnn_register_schedules"] and info.errors == []
    assert info.provides == {"optimizers": ["plain"], "schedules": ["halving", "broken"]}
    assert system.provided("optimizers") == ["sgd", "adam", "plain"]
    assert mc.plugin_system().plugins["optimizers"].provides == {"optimizers": ["sgd", "adam"],
                                                                 "schedules": ["cosine", "step", "none"]}
    entry = system.registries["optimizers"].get("plain")
    assert (entry.default_lr, entry.description, entry.plugin) == (0.25, "SGD without momentum", "optimizing")
    weights = mc.nn.Linear(2, 1)
    optimizer = create_optimizer("plain", weights.parameters(), momentum=0.9, weight_decay=0.0)
    assert type(optimizer) is mc.optim.SGD and optimizer.param_groups[0]["lr"] == 0.25
    scheduler = create_schedule("halving", optimizer, epochs=3)
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == 0.125
    assert create_schedule("none", optimizer, epochs=3) is None
    assert create_optimizer("sgd", weights.parameters(), lr=0.5, momentum=0.9, weight_decay=0.0).param_groups[0]["nesterov"]
    with pytest.raises(TypeError, match=r"schedule 'broken' \(plugin 'optimizing'\) gave a str, not a minicnn.optim.LRScheduler"):
        create_schedule("broken", optimizer, epochs=3)
    with pytest.raises(mc.RegistryError, match="unknown optimizer 'plane'; did you mean 'plain'"):
        create_optimizer("plane", weights.parameters(), momentum=0.0, weight_decay=0.0)


@pytest.mark.parametrize("default_lr", ["", ", default_lr=0", ", default_lr=-1.0", ", default_lr=float('nan')",
                                        ", default_lr=True", ", default_lr='0.1'"])
def test_an_optimizer_without_a_usable_default_lr_is_refused(site, default_lr):
    site("nolr", "nolr_plugin", f"""
        import minicnn
        from minicnn import optim

        @minicnn.hookimpl
        def minicnn_register_optimizers(register):
            register("nolr", optim.SGD{default_lr})
    """)
    system = load()
    [error] = system.plugins["nolr"].errors
    assert error.startswith("minicnn_register_optimizers raised TypeError: register('nolr', ...) needs default_lr")
    assert "nolr" not in system.registries["optimizers"]


def test_a_third_party_plugin_named_like_a_shipped_one_is_refused(site):
    site("lenet", "lenet_impostor", IMPOSTOR, distribution="lenet-impostor")  # found before minicnn on sys.path
    system = load()
    assert system.plugins["lenet"].distribution == "minicnn-framework" and system.plugins["lenet"].status == "loaded"
    impostor = system.plugins["lenet (lenet-impostor)"]
    assert impostor.status == "failed"
    assert impostor.errors == ["refused: another distribution (minicnn-framework) already uses the plugin name 'lenet' "
                               "and keeps it"]
    assert type(system.registries["models"].get("lenet5").target()).__name__ == "LeNet5"


SHARED = """
    import minicnn
    from minicnn import nn

    @minicnn.hookimpl
    def minicnn_register_models(register):
        register("shared", nn.Identity, description="from {plugin}")
        register("{plugin}-only", nn.Identity)
"""


@pytest.mark.parametrize("first", ["alpha", "beta"])
def test_between_third_party_plugins_the_first_plugin_name_in_sort_order_wins(site, first, pluggy_order):
    second = {"alpha": "beta", "beta": "alpha"}[first]
    for folder, plugin in enumerate([first, second]):  # the one installed second is found first
        site(plugin, f"{plugin}_plugin", SHARED.replace("{plugin}", plugin), folder=f"site{folder}")
    system = load()
    assert system.registries["models"].get("shared").description == "from alpha"
    assert system.plugins["alpha"].errors == [] and system.plugins["alpha"].provides == {"models": ["shared", "alpha-only"]}
    [error] = system.plugins["beta"].errors
    assert "model 'shared' from plugin 'beta' is refused: plugin 'alpha'" in error
    assert system.plugins["beta"].provides == {"models": ["beta-only"]}


def test_two_distributions_with_one_plugin_name(site):
    site("twin", "twin_one", GOOD, distribution="twin-one")
    site("twin", "twin_two", GOOD, distribution="twin-two")
    system = load()
    failed = [i for i in system.plugins.values() if i.status == "failed"]
    assert len(failed) == 1 and "already uses the plugin name 'twin'" in failed[0].errors[0]


FATAL = {  # what a plugin's import or hook may raise that is not an Exception
    "SystemExit": ("SystemExit(3)", "SystemExit: 3"),
    "KeyboardInterrupt": ("KeyboardInterrupt()", "KeyboardInterrupt"),
    "custom": ("type('Halt', (BaseException,), {})('stop the world')", "Halt: stop the world"),
}


@pytest.mark.parametrize("raised", FATAL)
def test_a_plugin_whose_import_raises_a_base_exception_fails_alone(site, raised):
    site("fatal", "fatal_plugin", f"raise {FATAL[raised][0]}\n", distribution="minicnn-fatal")
    system = load()
    assert system.plugins["fatal"].status == "failed"
    assert system.plugins["fatal"].errors == [f"import failed: {FATAL[raised][1]}"]
    assert "lenet5" in system.registries["models"]
    with pytest.raises(PluginError, match=f"plugin 'fatal' .*: import failed: {FATAL[raised][1]}"):
        load(MINICNN_STRICT_PLUGINS="1")


@pytest.mark.parametrize("raised", FATAL)
def test_a_hook_that_raises_a_base_exception_fails_alone(site, raised):
    site("fatal", "fatal_plugin", f"""
        import minicnn

        @minicnn.hookimpl
        def minicnn_register_models(register):
            raise {FATAL[raised][0]}
    """)
    system = load()
    assert system.plugins["fatal"].errors == [f"minicnn_register_models raised {FATAL[raised][1]}"]
    assert "lenet5" in system.registries["models"]


SLOW = """
    import time

    import minicnn

    time.sleep(0.6)

    @minicnn.hookimpl
    def minicnn_register_models(register):
        register("sloth", minicnn.nn.Identity)
"""


def test_a_slow_import_is_named_while_minicnn_waits(site):
    site("slowpoke", "slowpoke_plugin", SLOW, distribution="minicnn-slowpoke")
    with pytest.warns(minicnn.plugin.manager.SlowPluginWarning) as caught:
        system = load(MINICNN_PLUGIN_SLOW_SECONDS="0.1")
    [warning] = [w for w in caught if "slowpoke" in str(w.message)]  # on a busy machine others may be slow too
    assert str(warning.message).startswith("waiting for plugin 'slowpoke' (distribution minicnn-slowpoke) to import")
    assert "MINICNN_DISABLE_PLUGINS=slowpoke" in str(warning.message)
    assert system.plugins["slowpoke"].status == "loaded" and "sloth" in system.registries["models"]


def test_a_quick_import_gives_no_slow_warning(site, recwarn):
    site("good", "good_plugin", GOOD)
    load(MINICNN_PLUGIN_SLOW_SECONDS="5")
    assert not [w for w in recwarn if w.category is minicnn.plugin.manager.SlowPluginWarning]


@pytest.mark.parametrize("value", ["soon", "0", "-1", "inf"])
def test_a_bad_slow_threshold_names_the_variable(value):
    with pytest.raises(ValueError, match=f"MINICNN_PLUGIN_SLOW_SECONDS must be a positive number of seconds.*'{value}'"):
        load(MINICNN_PLUGIN_SLOW_SECONDS=value)


@pytest.mark.parametrize("variable", ["MINICNN_LOAD_PLUGINS", "MINICNN_DISABLE_PLUGINS"])
def test_a_plugin_name_that_matches_nothing_is_reported_with_the_closest_names(site, variable):
    site("good", "good_plugin", GOOD)
    system = load(**{variable: "lenett,good"})
    info = system.plugins["lenett"]
    assert (info.status, info.distribution) == ("unknown", "not installed")
    [error] = info.errors
    assert error.startswith(f"{variable} names 'lenett', but no installed plugin has that name; did you mean 'lenet'")
    assert system.problems() == [info]
    far = load(**{variable: "qqq"}).plugins["qqq"].errors[0]
    assert far.endswith("(installed: alexnet, datasets, good, googlenet, layers, lenet, optimizers, resnet, vgg)")
    with pytest.raises(PluginError, match=f"plugin 'lenett' .*: {variable} names 'lenett'"):
        load(MINICNN_STRICT_PLUGINS="1", **{variable: "lenett"})


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
    assert only_good.plugins["nosuch"].status == "unknown"


def test_disable_plugins(site):
    site("good", "good_plugin", GOOD)
    system = load(MINICNN_DISABLE_PLUGINS="lenet,good")
    assert system.plugins["lenet"].status == "disabled" and system.plugins["good"].status == "disabled"
    assert "lenet5" not in system.registries["models"] and "tiny" not in system.registries["models"]
    assert "good_plugin" not in sys.modules  # a disabled plugin is never imported


def test_disabling_a_built_in_is_reported_and_it_still_loads():
    system = load(MINICNN_DISABLE_PLUGINS="layers")
    assert "Conv2d" in system.registries["layers"]
    assert system.plugins["layers"].status == "loaded"
    assert "built-in layers are part of minicnn's core and always load" in system.plugins["layers"].errors[0]


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


def test_cli_survives_plugins_that_exit_or_interrupt(site, tmp_path):
    for raised, (statement, _) in FATAL.items():
        site(f"fatal-{raised}", f"fatal_{raised}", f"raise {statement}\n", distribution=f"fatal-{raised}")
    models = run_cli(tmp_path, "models", "--json", COLUMNS="300")
    assert models.returncode == 0, models.stderr
    assert "lenet5" in {m["name"] for m in json.loads(models.stdout)}
    for raised, (_, described) in FATAL.items():
        assert f"plugin 'fatal-{raised}' (fatal-{raised}): import failed: {described}" in models.stderr


def test_cli_names_a_slow_plugin_and_how_to_skip_it(site, tmp_path):
    site("slowpoke", "slowpoke_plugin", SLOW, distribution="minicnn-slowpoke")
    models = run_cli(tmp_path, "models", "--json", MINICNN_PLUGIN_SLOW_SECONDS="0.1", COLUMNS="300")
    assert models.returncode == 0 and "sloth" in {m["name"] for m in json.loads(models.stdout)}
    [line] = [line for line in models.stderr.splitlines() if "slowpoke" in line]
    assert line.startswith("warning: waiting for plugin 'slowpoke' (distribution minicnn-slowpoke) to import")
    assert "MINICNN_DISABLE_PLUGINS=slowpoke" in line


def test_cli_warns_about_a_misspelled_plugin_name(tmp_path):
    models = run_cli(tmp_path, "models", MINICNN_DISABLE_PLUGINS="lenett", COLUMNS="300")
    assert models.returncode == 0
    assert "plugin 'lenett' (not installed): MINICNN_DISABLE_PLUGINS names 'lenett'" in models.stderr
    assert "did you mean 'lenet'" in models.stderr
    listing = run_cli(tmp_path, "plugins", "--json", MINICNN_LOAD_PLUGINS="lenett")
    row = next(p for p in json.loads(listing.stdout) if p["name"] == "lenett")
    assert row["status"] == "unknown" and "MINICNN_LOAD_PLUGINS names 'lenett'" in row["errors"][0]
