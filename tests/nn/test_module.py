"""Module: registration, traversal, state_dict, loading, modes, dtypes, hooks and repr.

The conventions are PyTorch's, so where torch is importable the same architecture is built in
torch.nn and the names, orders and outputs are compared with it; without torch those tests skip and
the hand-written expectations below still run.
"""

from __future__ import annotations

import numpy as np
import pytest

import minicnn as mc
from minicnn import nn


def lenet_bn(lib):
    """The same LeNet-like model with batch norm, in minicnn.nn or torch.nn (the names match)."""
    return lib.Sequential(
        lib.Conv2d(1, 6, 5, padding=2), lib.BatchNorm2d(6), lib.ReLU(), lib.MaxPool2d(2),
        lib.Conv2d(6, 16, 5), lib.ReLU(), lib.MaxPool2d(2), lib.Flatten(),
        lib.Linear(400, 120), lib.ReLU(), lib.Linear(120, 84), lib.ReLU(), lib.Linear(84, 10),
    )


LENET_BN_STATE = [
    "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked",
    "4.weight", "4.bias", "8.weight", "8.bias", "10.weight", "10.bias", "12.weight", "12.bias",
]


class Block(nn.Module):
    """A parameter of its own, a buffer, two children (one nested) and a plain attribute."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.scale = nn.Parameter(np.full(3, 2.0, dtype=np.float32))
        self.register_buffer("steps", np.zeros((), dtype=np.int64))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
        self.note = "plain"

    def forward(self, x):
        return self.head(self.conv(x) * self.scale.reshape(1, 3, 1, 1))


def torch_block(torch):
    class TorchBlock(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(2, 3, 3, padding=1)
            self.scale = torch.nn.Parameter(torch.full((3,), 2.0))
            self.register_buffer("steps", torch.zeros((), dtype=torch.int64))
            self.head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5))
            self.note = "plain"

    return TorchBlock()


def torch_state_as_numpy(module):
    return {name: value.detach().numpy() for name, value in module.state_dict().items()}


def random_state(model, seed=0):
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(value.shape).astype(value.dtype) for name, value in model.state_dict().items()}


# --- registration ---------------------------------------------------------------------------------


def test_assignment_registers_parameters_and_modules_but_not_plain_values():
    block = Block()
    assert isinstance(block.scale, nn.Parameter) and block.scale.requires_grad
    assert isinstance(block.conv, nn.Conv2d)
    assert [name for name, _ in block.named_children()] == ["conv", "head"]
    assert block.note == "plain"
    assert "note" not in block.state_dict()
    assert all(isinstance(p, nn.Parameter) for p in block.parameters())


def test_named_parameters_are_dotted_in_registration_order():
    names = [name for name, _ in Block().named_parameters()]
    assert names == ["scale", "conv.weight", "conv.bias", "head.1.weight", "head.1.bias"]


def test_named_parameters_prefix_and_recurse():
    block = Block()
    assert [n for n, _ in block.named_parameters(prefix="model")][:2] == ["model.scale", "model.conv.weight"]
    assert [n for n, _ in block.named_parameters(recurse=False)] == ["scale"]
    assert list(block.parameters(recurse=False)) == [block.scale]


def test_named_parameters_match_torch():
    torch = pytest.importorskip("torch")
    assert [n for n, _ in Block().named_parameters()] == [n for n, _ in torch_block(torch).named_parameters()]
    assert [n for n, _ in lenet_bn(nn).named_parameters()] == [n for n, _ in lenet_bn(torch.nn).named_parameters()]


def test_shared_parameter_is_listed_once():
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    model[1].weight = model[0].weight
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.bias"]
    assert model.num_parameters() == 9 + 3 + 3


def test_shared_module_is_listed_once_in_modules_and_parameters():
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert [name for name, _ in model.named_modules()] == ["", "0", "1"]
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "0.bias"]


def test_register_buffer_is_state_but_not_a_parameter():
    block = Block()
    assert isinstance(block.steps, mc.Tensor) and not isinstance(block.steps, nn.Parameter)
    assert not block.steps.requires_grad
    assert block.steps.dtype == np.int64
    assert [name for name, _ in block.named_buffers()] == ["steps"]
    assert list(block.buffers()) == [block.steps]
    assert all(p is not block.steps for p in block.parameters())
    assert "steps" in block.state_dict()


def test_buffers_of_children_are_dotted():
    names = [name for name, _ in lenet_bn(nn).named_buffers()]
    assert names == ["1.running_mean", "1.running_var", "1.num_batches_tracked"]


def test_assigning_a_tensor_to_a_buffer_name_keeps_it_a_buffer():
    """PyTorch: `module.running_mean = tensor` replaces the buffer; it stays in state_dict."""
    norm = nn.BatchNorm2d(3)
    norm.running_mean = mc.tensor(np.full(3, 4.0, dtype=np.float32))
    assert list(norm.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    np.testing.assert_array_equal(norm.state_dict()["running_mean"], [4.0, 4.0, 4.0])


def test_assigning_a_parameter_over_a_plain_attribute_makes_it_the_attribute():
    """A Conv2d built with bias=False holds bias=None; assigning a Parameter later must be what
    `conv.bias` returns and what forward adds, not only an entry in named_parameters."""
    conv = nn.Conv2d(1, 2, 3, bias=False)
    bias = nn.Parameter(np.array([1.0, -2.0], dtype=np.float32))
    conv.bias = bias
    assert [name for name, _ in conv.named_parameters()] == ["weight", "bias"]
    assert conv.bias is bias
    out = conv(mc.tensor(np.zeros((1, 1, 3, 3), dtype=np.float32)))
    np.testing.assert_array_equal(out.numpy().ravel(), [1.0, -2.0])


def test_delattr_unregisters_a_parameter():
    block = Block()
    del block.scale
    assert "scale" not in [name for name, _ in block.named_parameters()]
    with pytest.raises(AttributeError):
        block.scale


def test_assigning_before_super_init_is_a_clear_error():
    class Forgetful(nn.Module):
        def __init__(self):
            self.layer = nn.Linear(2, 2)
            super().__init__()

    with pytest.raises(AttributeError, match=r"Forgetful.*super\(\).__init__\(\).*'layer'"):
        Forgetful()


def test_missing_attribute_names_the_class_and_the_attribute():
    with pytest.raises(AttributeError, match=r"'Block' has no attribute 'missing'"):
        Block().missing
    assert not hasattr(Block(), "missing")


def test_forward_must_be_defined():
    with pytest.raises(NotImplementedError, match="Empty"):
        type("Empty", (nn.Module,), {})()(mc.tensor([1.0]))


# --- traversal ------------------------------------------------------------------------------------


def test_named_modules_are_depth_first_with_self_first():
    block = Block()
    named = list(block.named_modules())
    assert [name for name, _ in named] == ["", "conv", "head", "head.0", "head.1"]
    assert named[0][1] is block and named[3][1] is block.head[0]
    assert list(block.modules()) == [m for _, m in named]


def test_children_are_direct_only():
    block = Block()
    assert list(block.children()) == [block.conv, block.head]
    assert list(block.conv.children()) == []


def test_named_modules_match_torch():
    torch = pytest.importorskip("torch")
    nested = nn.Sequential(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()), nn.Flatten(), nn.Linear(2, 3))
    reference = torch.nn.Sequential(
        torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU()), torch.nn.Flatten(), torch.nn.Linear(2, 3)
    )
    assert [n for n, _ in nested.named_modules()] == [n for n, _ in reference.named_modules()]
    assert [n for n, _ in nested.named_children()] == [n for n, _ in reference.named_children()]


# --- state_dict -----------------------------------------------------------------------------------


def test_state_dict_order_is_parameters_then_buffers_then_children():
    assert list(Block().state_dict()) == ["scale", "steps", "conv.weight", "conv.bias", "head.1.weight", "head.1.bias"]
    assert list(lenet_bn(nn).state_dict()) == LENET_BN_STATE


def test_state_dict_names_match_torch():
    torch = pytest.importorskip("torch")
    assert list(lenet_bn(nn).state_dict()) == list(lenet_bn(torch.nn).state_dict())
    assert list(Block().state_dict()) == list(torch_block(torch).state_dict())


def test_state_dict_of_a_shared_module_lists_every_name_as_torch_does():
    """PyTorch's state_dict walks every child name, so a module reachable twice is saved under
    both names (and a torch state_dict of such a model loads only if both are expected)."""
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_state_dict_values_are_numpy_copies():
    block = Block()
    state = block.state_dict()
    assert all(type(value) is np.ndarray for value in state.values())
    assert state["conv.weight"].shape == (3, 2, 3, 3) and state["conv.weight"].dtype == np.float32
    assert state["steps"].shape == () and state["steps"].dtype == np.int64
    before = block.conv.weight.numpy().copy()
    state["conv.weight"][...] = 123.0
    np.testing.assert_array_equal(block.conv.weight.numpy(), before)
    assert not np.shares_memory(state["scale"], block.scale.data)


# --- load_state_dict ------------------------------------------------------------------------------


def test_load_state_dict_from_arrays_writes_in_place():
    model = lenet_bn(nn)
    parameters = dict(model.named_parameters())
    arrays = {name: p.data for name, p in parameters.items()}
    state = random_state(model, seed=1)
    state["1.num_batches_tracked"] = np.array(7, dtype=np.int64)
    assert model.load_state_dict(state) == ([], [])
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, state[name], err_msg=name)
    for name, p in model.named_parameters():
        assert p is parameters[name] and p.data is arrays[name], f"{name} was replaced, not written in place"
    assert model[1].num_batches_tracked.item() == 7


def test_load_state_dict_keeps_the_model_dtype():
    model = nn.Linear(3, 2)
    model.load_state_dict({"weight": np.ones((2, 3)), "bias": np.zeros(2)})
    assert model.weight.dtype == np.float32
    np.testing.assert_array_equal(model.weight.numpy(), np.ones((2, 3)))


def test_load_state_dict_from_tensors():
    model, source = lenet_bn(nn), lenet_bn(nn)
    source.load_state_dict(random_state(source, seed=2))
    model.load_state_dict({name: mc.tensor(value) for name, value in source.state_dict().items()})
    for (name, mine), theirs in zip(model.state_dict().items(), source.state_dict().values()):
        np.testing.assert_array_equal(mine, theirs, err_msg=name)


def test_load_strict_error_lists_missing_and_unexpected_names():
    model = lenet_bn(nn)
    state = random_state(model)
    del state["4.bias"]
    state["13.weight"] = np.zeros((2, 2), dtype=np.float32)
    with pytest.raises((KeyError, RuntimeError)) as error:
        model.load_state_dict(state)
    message = str(error.value)
    assert "4.bias" in message and "13.weight" in message
    assert "missing" in message and "unexpected" in message


def test_load_strict_rejects_either_kind_alone():
    model = nn.Linear(2, 2)
    state = model.state_dict()
    with pytest.raises((KeyError, RuntimeError), match="extra"):
        model.load_state_dict({**state, "extra": np.zeros(1, dtype=np.float32)})
    with pytest.raises((KeyError, RuntimeError), match="bias"):
        model.load_state_dict({"weight": state["weight"]})


def test_load_non_strict_returns_missing_and_unexpected_and_loads_the_rest():
    model = lenet_bn(nn)
    state = random_state(model, seed=3)
    del state["4.bias"], state["1.running_var"]
    state["extra"] = np.zeros(3, dtype=np.float32)
    bias_before = model[4].bias.numpy().copy()
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert list(missing) == ["1.running_var", "4.bias"]
    assert list(unexpected) == ["extra"]
    np.testing.assert_array_equal(model[4].weight.numpy(), state["4.weight"])
    np.testing.assert_array_equal(model[4].bias.numpy(), bias_before)


def test_load_shape_mismatch_names_the_key_and_both_shapes():
    model = lenet_bn(nn)
    state = model.state_dict()
    state["8.weight"] = np.zeros((120, 399), dtype=np.float32)
    with pytest.raises(ValueError, match=r"'8\.weight'.*\(120, 399\).*\(120, 400\)"):
        model.load_state_dict(state)


def test_torch_state_dict_loads_and_gives_torch_outputs():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    reference = lenet_bn(torch.nn)
    rng = np.random.default_rng(0)
    with torch.no_grad():  # move batch norm's running statistics away from their initial values
        for _ in range(3):
            reference(torch.from_numpy(rng.standard_normal((8, 1, 28, 28)).astype(np.float32) * 2 + 1))
    model = lenet_bn(nn)
    model.load_state_dict(torch_state_as_numpy(reference))
    np.testing.assert_array_equal(model[1].num_batches_tracked.numpy(), 3)

    x = rng.standard_normal((4, 1, 28, 28)).astype(np.float32)
    for mode in ("eval", "train"):
        getattr(reference, mode)(), getattr(model, mode)()
        with torch.no_grad():
            expected = reference(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(model(mc.tensor(x)).numpy(), expected, rtol=1e-4, atol=1e-5, err_msg=mode)


def test_minicnn_state_dict_loads_strictly_into_torch():
    torch = pytest.importorskip("torch")
    model = lenet_bn(nn)
    reference = lenet_bn(torch.nn)
    reference.load_state_dict({name: torch.from_numpy(value) for name, value in model.state_dict().items()})
    model.eval(), reference.eval()
    x = np.random.default_rng(1).standard_normal((2, 1, 28, 28)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model(mc.tensor(x)).numpy(), expected, rtol=1e-4, atol=1e-5)


# --- modes, devices, dtypes -----------------------------------------------------------------------


def test_train_and_eval_reach_every_descendant():
    model = nn.Sequential(nn.Sequential(nn.Dropout(), nn.BatchNorm1d(3)), nn.Linear(3, 3))
    assert all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    assert model.train() is model
    assert all(m.training for m in model.modules())
    model.train(False)
    assert not any(m.training for m in model.modules())


def test_to_cpu_returns_the_module_and_keeps_its_parameters():
    model = lenet_bn(nn)
    parameters = list(model.parameters())
    assert model.to("cpu") is model
    assert list(model.parameters()) == parameters
    assert all(p.device == mc.device("cpu") for p in model.parameters())


def test_double_and_float_convert_floating_state_and_grads_only():
    model = lenet_bn(nn)
    parameters = list(model.parameters())
    model(mc.tensor(np.ones((2, 1, 28, 28), dtype=np.float32))).sum().backward()
    assert model.double() is model
    assert list(model.parameters()) == parameters
    assert all(p.dtype == np.float64 and p.grad.dtype == np.float64 for p in model.parameters())
    state = model.state_dict()
    assert state["1.running_mean"].dtype == np.float64
    assert state["1.num_batches_tracked"].dtype == np.int64
    assert model(mc.tensor(np.ones((2, 1, 28, 28)))).dtype == np.float64

    assert model.float() is model
    assert all(p.dtype == np.float32 and p.grad.dtype == np.float32 for p in model.parameters())
    assert model.state_dict()["1.num_batches_tracked"].dtype == np.int64


def test_zero_grad_clears_every_gradient():
    model = Block()
    model(mc.tensor(np.ones((1, 2, 4, 4), dtype=np.float32))).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_num_parameters_counts_elements():
    assert Block().num_parameters() == 3 + (3 * 2 * 9 + 3) + (5 * 48 + 5)


# --- hooks ----------------------------------------------------------------------------------------


def test_forward_hook_gets_module_inputs_and_output_and_can_be_removed():
    layer = nn.Linear(3, 2)
    calls = []
    handle = layer.register_forward_hook(lambda module, inputs, output: calls.append((module, inputs, output)))
    x = mc.tensor(np.ones((4, 3), dtype=np.float32))
    out = layer(x)
    assert len(calls) == 1
    module, inputs, output = calls[0]
    assert module is layer and isinstance(inputs, tuple) and inputs[0] is x and output is out
    handle.remove()
    layer(x)
    assert len(calls) == 1


def test_forward_hooks_run_in_registration_order_on_children():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    seen = []
    for name, module in model.named_children():
        module.register_forward_hook(lambda m, i, o, name=name: seen.append((name, o.shape)))
    model.register_forward_hook(lambda m, i, o: seen.append(("model", o.shape)))
    model(mc.tensor(np.ones((5, 3), dtype=np.float32)))
    assert seen == [("0", (5, 4)), ("1", (5, 4)), ("2", (5, 2)), ("model", (5, 2))]


def test_removing_a_handle_twice_leaves_later_hooks_alone():
    """PyTorch's handles have unique ids: remove() is idempotent and never removes another hook."""
    layer = nn.ReLU()
    calls = []
    first = layer.register_forward_hook(lambda *args: calls.append("first"))
    first.remove()
    layer.register_forward_hook(lambda *args: calls.append("second"))
    first.remove()
    layer(mc.tensor([1.0]))
    assert calls == ["second"]


# --- repr -----------------------------------------------------------------------------------------


def test_repr_shows_the_tree():
    model = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.Sequential(nn.Linear(3, 4)))
    assert repr(model) == (
        "Sequential(\n"
        "  (0): Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))\n"
        "  (1): ReLU()\n"
        "  (2): Sequential(\n"
        "    (0): Linear(in_features=3, out_features=4, bias=True)\n"
        "  )\n"
        ")"
    )


def test_repr_matches_torch_for_conv_linear_relu():
    torch = pytest.importorskip("torch")

    def build(lib):
        return lib.Sequential(
            lib.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), lib.ReLU(),
            lib.Sequential(lib.Conv2d(8, 8, (3, 1), groups=4, dilation=2), lib.Linear(8, 2, bias=False)),
        )

    assert repr(build(nn)) == repr(build(torch.nn))


def test_evaluating_sets_eval_mode_and_restores_each_flag_even_after_an_error():
    model = nn.Sequential(nn.Dropout(0.5), nn.Sequential(nn.BatchNorm1d(3), nn.Dropout(0.2)))
    model[1][1].eval()  # one submodule already in eval mode, the rest training
    with model.evaluating():
        assert not any(m.training for m in model.modules())
    assert [m.training for m in model.modules()] == [True, True, True, True, False]
    with pytest.raises(RuntimeError):
        with model.evaluating():
            raise RuntimeError("inside")
    assert [m.training for m in model.modules()] == [True, True, True, True, False]
