"""The GoogLeNet plugin: torchvision's layout, names and counts, the small-input variant, auxiliary heads,
and the same function as torchvision's model when torchvision is installed."""

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn.tools.conformance import check_model
from minicnn_googlenet import GoogLeNetOutputs
from minicnn_googlenet.googlenet import INCEPTION_STAGES

ALEXNET_PARAMETERS = 61_100_840  # torchvision's AlexNet, for the "fraction of AlexNet" comparison


def random_input(shape, seed=0):
    return mc.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def test_both_models_registered_by_the_googlenet_plugin():
    models = mc.plugin_system().registries["models"]
    assert models.get("googlenet").plugin == "googlenet" and models.get("googlenet").input_size == (3, 224, 224)
    assert models.get("googlenet_small").plugin == "googlenet" and models.get("googlenet_small").input_size == (3, 32, 32)


def test_torchvisions_parameter_counts_with_and_without_auxiliary_heads():
    assert mc.create_model("googlenet").num_parameters() == 6_624_904
    assert mc.create_model("googlenet", aux_logits=True).num_parameters() == 13_004_888


def test_a_ninth_of_alexnets_parameters_not_the_papers_twelfth():
    ratio = ALEXNET_PARAMETERS / mc.create_model("googlenet").num_parameters()
    assert round(ratio, 1) == 9.2  # the usual "1/12" is the paper's ~5M against AlexNet's ~60M


def test_the_papers_5x5_branch_changes_that_kernel_and_the_count():
    paper = mc.create_model("googlenet", paper_5x5=True)
    assert paper.inception3a.branch3[1].conv.weight.shape == (32, 16, 5, 5)
    assert paper.inception3a.branch2[1].conv.weight.shape == (128, 96, 3, 3)
    extra = sum(red * out * (25 - 9) for _, _, _, _, red, out, _ in INCEPTION_STAGES)
    assert paper.num_parameters() == 6_624_904 + extra == 7_005_832


def test_state_dict_names_follow_torchvision():
    names = list(mc.create_model("googlenet").state_dict())
    assert names[:6] == ["conv1.conv.weight", "conv1.bn.weight", "conv1.bn.bias", "conv1.bn.running_mean",
                         "conv1.bn.running_var", "conv1.bn.num_batches_tracked"]
    for name in ("inception3a.branch1.conv.weight", "inception3a.branch2.1.conv.weight",
                 "inception4e.branch3.0.bn.running_var", "inception5b.branch4.1.bn.num_batches_tracked"):
        assert name in names
    assert names[-2:] == ["fc.weight", "fc.bias"] and not any(n.startswith("aux") for n in names)
    assert len(names) == 57 * 6 + 2  # 57 BasicConv2d (conv weight, 5 batch-norm tensors) and fc


def test_auxiliary_heads_sit_between_inception5b_and_fc():
    state = mc.create_model("googlenet", aux_logits=True).state_dict()
    names = list(state)
    assert names.index("inception5b.branch4.1.bn.num_batches_tracked") < names.index("aux1.conv.conv.weight")
    assert names.index("aux1.fc2.bias") < names.index("aux2.conv.conv.weight") < names.index("fc.weight")
    assert state["aux1.conv.conv.weight"].shape == (128, 512, 1, 1)
    assert state["aux2.conv.conv.weight"].shape == (128, 528, 1, 1)
    assert state["aux1.fc1.weight"].shape == (1024, 2048) and state["aux2.fc2.bias"].shape == (1000,)


def test_stage_shapes_and_multiply_adds_at_224():
    model = mc.create_model("googlenet")
    shapes = {}
    for name in ("conv1", "maxpool1", "maxpool2", "inception3a", "inception3b", "maxpool3", "inception4a",
                 "inception4d", "inception4e", "maxpool4", "inception5b"):
        getattr(model, name).register_forward_hook(lambda m, args, out, name=name: shapes.__setitem__(name, out.shape[1:]))
    result = mc.summarize(model, (3, 224, 224))  # the one forward pass at 224
    assert shapes == {
        "conv1": (64, 112, 112), "maxpool1": (64, 56, 56), "maxpool2": (192, 28, 28),
        "inception3a": (256, 28, 28), "inception3b": (480, 28, 28), "maxpool3": (480, 14, 14),
        "inception4a": (512, 14, 14), "inception4d": (528, 14, 14), "inception4e": (832, 14, 14),
        "maxpool4": (832, 7, 7), "inception5b": (1024, 7, 7),
    }
    assert result.output_shape == (1000,) and result.parameters == 6_624_904
    assert result.multiply_adds == 1_498_376_192  # torchvision's documentation says 1.50 GFLOPS


@pytest.mark.parametrize("in_channels, size", [(1, 28), (3, 32)])
def test_small_variant_forward_and_backward_reach_every_parameter(in_channels, size):
    mc.manual_seed(0)
    model = mc.create_model("googlenet_small", num_classes=10, in_channels=in_channels)
    x = random_input((2, in_channels, size, size))
    logits = model(x)
    assert logits.shape == (2, 10)
    loss = F.cross_entropy(logits, np.array([3, 7]))
    loss.backward()
    assert np.isfinite(loss.item())
    for name, p in model.named_parameters():
        assert p.grad is not None and np.isfinite(p.grad.numpy()).all() and np.abs(p.grad.numpy()).sum() > 0, name


def test_small_variant_keeps_the_inception_stages_at_useful_sizes():
    model = mc.create_model("googlenet_small", in_channels=1)
    shapes = {}
    for name in ("conv1", "inception3b", "inception4e", "inception5b"):
        getattr(model, name).register_forward_hook(lambda m, args, out, name=name: shapes.__setitem__(name, out.shape[1:]))
    result = mc.summarize(model, (1, 28, 28))
    assert shapes == {"conv1": (48, 28, 28), "inception3b": (120, 28, 28), "inception4e": (208, 14, 14),
                      "inception5b": (256, 7, 7)}  # a quarter of GoogLeNet's channels
    assert result.output_shape == (10,)
    assert mc.create_model("googlenet_small", width=1).inception5b.out_channels == 1024


def test_auxiliary_outputs_in_training_mode_only():
    mc.manual_seed(0)
    model = mc.create_model("googlenet_small", aux_logits=True)
    x = random_input((2, 3, 32, 32))
    out = model(x)
    assert isinstance(out, GoogLeNetOutputs) and [o.shape for o in out] == [(2, 10)] * 3
    labels = np.array([1, 2])
    loss = F.cross_entropy(out.logits, labels)
    loss = loss + 0.3 * (F.cross_entropy(out.aux_logits1, labels) + F.cross_entropy(out.aux_logits2, labels))
    loss.backward()
    assert model.aux1.fc2.weight.grad is not None and model.aux2.conv.conv.weight.grad is not None
    model.eval()
    assert isinstance(model(x), mc.Tensor) and model(x).shape == (2, 10)


def test_full_model_auxiliary_heads_on_a_64x64_batch():
    model = mc.create_model("googlenet", num_classes=5, aux_logits=True)
    with mc.no_grad():
        out = model(random_input((2, 3, 64, 64)))
    assert [o.shape for o in out] == [(2, 5)] * 3


def test_small_variant_passes_the_conformance_check(conforms):
    # max_elements=0: the directional gradient check over the input and all 167 parameters only. The
    # element-wise pass at the default 16 (482 elements, two float64 forwards each) takes about 20
    # minutes here; `minicnn check googlenet_small` runs it.
    conforms(check_model("googlenet_small", max_elements=0))


@pytest.mark.parametrize("paper_5x5", [False, True])
def test_inception_block_matches_a_torch_twin(paper_5x5):
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    from minicnn_googlenet import Inception

    def basic(cin, cout, k, padding=0):
        layer = tnn.Sequential()
        layer.conv = tnn.Conv2d(cin, cout, k, padding=padding, bias=False)
        layer.bn, layer.relu = tnn.BatchNorm2d(cout, eps=0.001), tnn.ReLU()
        return layer

    k = 5 if paper_5x5 else 3
    twin = tnn.ModuleDict({
        "branch1": basic(32, 8, 1),
        "branch2": tnn.Sequential(basic(32, 12, 1), basic(12, 16, 3, 1)),
        "branch3": tnn.Sequential(basic(32, 4, 1), basic(4, 6, k, k // 2)),
        "branch4": tnn.Sequential(tnn.MaxPool2d(3, 1, 1, ceil_mode=True), basic(32, 8, 1)),
    })
    with torch.no_grad():
        for bn in (m for m in twin.modules() if isinstance(m, tnn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
    block = Inception(32, 8, 12, 16, 4, 6, 8, branch3_kernel_size=k)
    block.load_state_dict({name: value.numpy() for name, value in twin.state_dict().items()})
    x = np.random.default_rng(2).standard_normal((2, 32, 9, 9)).astype(np.float32)

    def twin_forward(x):
        return torch.cat([twin[name](x) for name in ("branch1", "branch2", "branch3", "branch4")], 1)

    twin.eval()
    block.eval()
    expected = twin_forward(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(block(mc.tensor(x)).numpy(), expected, rtol=1e-4, atol=1e-5)
    twin.train()
    block.train()
    expected = twin_forward(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(block(mc.tensor(x)).numpy(), expected, rtol=1e-4, atol=1e-5)
    for name, value in twin.state_dict().items():  # running statistics updated alike
        np.testing.assert_allclose(block.state_dict()[name], value.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)


def torchvision_googlenet(torch, torchvision, aux_logits):
    """torchvision's randomly initialised GoogLeNet with batch-norm running statistics from one
    calibration batch, so activations keep their scale through 22 layers in eval mode (with the
    initial mean 0 and variance 1 they shrink until the fc bias is all that is left to compare)."""
    torch.manual_seed(0)
    model = torchvision.models.googlenet(weights=None, aux_logits=aux_logits, init_weights=True)
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.momentum = 1.0
    with torch.no_grad():
        model.train()(torch.randn(4, 3, 224, 224))
    return model.eval()


def test_same_function_as_torchvision(same_as_torch):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    theirs = torchvision_googlenet(torch, torchvision, aux_logits=False)
    same_as_torch(mc.create_model("googlenet"), theirs, seed=3)


def test_torchvision_auxiliary_heads_load_and_compute_the_same():
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    theirs = torchvision_googlenet(torch, torchvision, aux_logits=True)
    ours = mc.create_model("googlenet", aux_logits=True).eval()
    state = {name: value.detach().numpy() for name, value in theirs.state_dict().items()}
    assert [(n, v.shape) for n, v in ours.state_dict().items()] == [(n, v.shape) for n, v in state.items()]
    ours.load_state_dict(state)
    x = np.random.default_rng(4).standard_normal((2, 528, 14, 14)).astype(np.float32)
    with torch.no_grad():
        expected = theirs.aux2(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours.aux2(mc.tensor(x)).numpy(), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
