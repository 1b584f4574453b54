"""summarize(): shapes, parameters, multiply-adds and receptive fields checked against hand counts."""

from pathlib import Path

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn import nn
from minicnn.tools.spec import build_model
from minicnn.tools.summary import LayerRow, ModelSummary, SummaryError, summarize

LENET_SPEC = Path(__file__).resolve().parents[2] / "examples" / "lenet5.toml"

# The tutorial's LeNet-5 (docs/en/tutorial.md §8) on 1x28x28, counted by hand.
# multiply-adds: outputs x (inputs per output): C1 28*28*6 * 1*5*5, C3 10*10*16 * 6*5*5, F5 120*400, F6 84*120, out 10*84.
# receptive field: C1 5; S2 5 + (2-1)*1 = 6 (jump 2); C3 6 + (5-1)*2 = 14; S4 14 + (2-1)*2 = 16 (jump 4);
# F5 sees all 5x5 positions of S4: 16 + (5-1)*4 = 32, the 28x28 input padded by 2 (the paper's 32x32).
LENET_ROWS = [
    ("features.0", "Conv2d", (6, 28, 28), 156, 117_600, 5),
    ("features.1", "ReLU", (6, 28, 28), 0, 0, 5),
    ("features.2", "MaxPool2d", (6, 14, 14), 0, 0, 6),
    ("features.3", "Conv2d", (16, 10, 10), 2_416, 240_000, 14),
    ("features.4", "ReLU", (16, 10, 10), 0, 0, 14),
    ("features.5", "MaxPool2d", (16, 5, 5), 0, 0, 16),
    ("classifier.0", "Flatten", (400,), 0, 0, 16),
    ("classifier.1", "Linear", (120,), 48_120, 48_000, 32),
    ("classifier.2", "ReLU", (120,), 0, 0, 32),
    ("classifier.3", "Linear", (84,), 10_164, 10_080, 32),
    ("classifier.4", "ReLU", (84,), 0, 0, 32),
    ("classifier.5", "Linear", (10,), 850, 840, 32),
]


def as_tuples(summary):
    return [(r.name, r.type, r.output_shape, r.parameters, r.multiply_adds, r.receptive_field[0]) for r in summary.rows]


def test_lenet_matches_the_hand_counts():
    summary = summarize(mc.create_model("lenet5"), (1, 28, 28))
    assert as_tuples(summary) == LENET_ROWS
    assert all(r.receptive_field[0] == r.receptive_field[1] for r in summary.rows)
    assert summary.parameters == summary.trainable_parameters == 61_706
    assert summary.multiply_adds == 117_600 + 240_000 + 48_000 + 10_080 + 840 == 416_520
    assert (summary.model, summary.input_size, summary.output_shape) == ("LeNet5", (1, 28, 28), (10,))


def test_the_spec_lenet_has_the_same_summary_under_its_own_names():
    summary = summarize(build_model(LENET_SPEC), (1, 28, 28))
    assert [r.name for r in summary.rows] == [str(i) for i in range(12)]
    assert [row[1:] for row in as_tuples(summary)] == [row[1:] for row in LENET_ROWS]
    assert (summary.model, summary.parameters, summary.multiply_adds) == ("Sequential", 61_706, 416_520)


def test_as_dict_is_plain_data():
    data = summarize(mc.create_model("lenet5"), [1, 28, 28]).as_dict()
    assert data["rows"][0] == {
        "name": "features.0", "type": "Conv2d", "output_shape": (6, 28, 28), "parameters": 156,
        "multiply_adds": 117_600, "receptive_field": (5, 5),
    }
    assert data["parameters"] == 61_706 and data["input_size"] == (1, 28, 28)


def test_stride_dilation_and_rectangular_windows():
    model = nn.Sequential(
        nn.Conv2d(1, 2, kernel_size=3, stride=2, dilation=2),     # rf 1 + 2*2*1 = 5, jump 2
        nn.Conv2d(2, 2, kernel_size=(3, 1)),                      # rf 5 + 2*2 = 9 by 5, jump 2
        nn.AvgPool2d(kernel_size=2, stride=1),                    # rf 9 + 2 = 11 by 7, jump 2
    )
    summary = summarize(model, (1, 15, 15))
    assert [r.receptive_field for r in summary.rows] == [(5, 5), (9, 5), (11, 7)]
    assert [r.output_shape for r in summary.rows] == [(2, 6, 6), (2, 4, 6), (2, 3, 5)]
    assert [r.multiply_adds for r in summary.rows] == [2 * 6 * 6 * 9, 2 * 4 * 6 * 6, 0]


def test_adaptive_pooling_to_one_cell_sees_the_whole_input():
    model = nn.Sequential(nn.Conv2d(1, 1, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1, 2))
    rows = summarize(model, (1, 6, 6)).rows
    assert [r.receptive_field for r in rows] == [(3, 3), (6, 6), (6, 6), (6, 6)]


def test_adaptive_pooling_that_divides_is_average_pooling():
    adaptive = summarize(nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.AdaptiveAvgPool2d(2)), (1, 8, 8))
    windowed = summarize(nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.AvgPool2d(4)), (1, 8, 8))
    assert adaptive.rows[1].receptive_field == windowed.rows[1].receptive_field == (6, 6)


class TwoBranches(nn.Module):
    """A deep branch (rf 5) computed before a shallow one (rf 1), joined by F.cat then by F.add."""

    def __init__(self):
        super().__init__()
        self.deep = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(2, 2, 3, padding=1))
        self.shallow = nn.Conv2d(1, 2, 1)
        self.join = nn.Conv2d(4, 2, 1)
        self.relu = nn.ReLU()

    def forward(self, x):
        joined = self.join(F.cat([self.deep(x), self.shallow(x)], dim=1))
        return self.relu(F.add(joined, self.shallow(x)))


def test_a_join_outside_any_layer_takes_the_largest_field_of_its_branches():
    summary = summarize(TwoBranches(), (1, 8, 8))
    fields = [(r.name, r.receptive_field[0]) for r in summary.rows]
    assert fields == [("deep.0", 3), ("deep.1", 5), ("shallow", 1), ("join", 5), ("shallow", 1), ("relu", 5)]


def test_a_module_called_twice_counts_its_parameters_once():
    summary = summarize(TwoBranches(), (1, 8, 8))
    shallow = [r for r in summary.rows if r.name == "shallow"]
    assert [r.parameters for r in shallow] == [4, 0]
    assert [r.multiply_adds for r in shallow] == [2 * 8 * 8, 2 * 8 * 8]
    assert summary.parameters == sum(r.parameters for r in summary.rows) == 20 + 38 + 4 + 10
    assert summary.output_shape == (2, 8, 8)


def test_shared_and_frozen_parameters_in_the_totals():
    first, second = nn.Linear(4, 4), nn.Linear(4, 4)
    second.weight = first.weight
    second.bias.requires_grad = False
    summary = summarize(nn.Sequential(nn.Flatten(), first, second), (1, 2, 2))
    assert [r.parameters for r in summary.rows] == [0, 20, 20]
    assert summary.parameters == 24 and summary.trainable_parameters == 20


def test_a_leaf_model_is_its_own_row():
    summary = summarize(nn.Conv2d(3, 4, 3), (3, 5, 5))
    assert [(r.name, r.output_shape, r.receptive_field) for r in summary.rows] == [("Conv2d", (4, 3, 3), (3, 3))]


def test_eval_mode_during_the_pass_then_modes_and_state_restored():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Dropout(0.5), nn.Flatten(), nn.Linear(8, 2))
    model[2].eval()
    before = {name: value.copy() for name, value in model.state_dict().items()}
    summarize(model, (1, 4, 4))
    after = model.state_dict()
    assert all(np.array_equal(before[name], after[name]) for name in before)
    assert [m.training for m in model] == [True, True, False, True, True]
    assert all(not m._forward_hooks for m in model.modules())


def test_wrong_input_size_names_the_failing_layer():
    model = mc.create_model("lenet5")
    with pytest.raises(SummaryError, match=(
        r"LeNet5 cannot run on input 1x32x32 \(C, H, W\): layer 'classifier.1' \(Linear\) failed after "
        r"'classifier.0' \(Flatten\) gave 576: ValueError: linear: input has 576 features.*pass the input size"
    )):
        summarize(model, (1, 32, 32))
    assert all(not m._forward_hooks for m in model.modules())
    assert model.training


def test_wrong_channels_fail_in_the_first_layer():
    with pytest.raises(SummaryError, match=r"input 3x28x28 .*its first layer 'features.0' \(Conv2d\) failed: ValueError: conv2d"):
        summarize(mc.create_model("lenet5"), (3, 28, 28))


@pytest.mark.parametrize("size", [(28, 28), (1, 0, 28), (1, 28.0, 28), "1,28,28", None])
def test_malformed_input_size(size):
    with pytest.raises(SummaryError, match=r"input size must be \(C, H, W\), three positive integers"):
        summarize(mc.create_model("lenet5"), size)


def test_rows_and_summary_are_dataclasses():
    summary = summarize(nn.Sequential(nn.ReLU()), (1, 2, 2))
    assert isinstance(summary, ModelSummary) and isinstance(summary.rows[0], LayerRow)
    assert summary.rows[0] == LayerRow("0", "ReLU", (1, 2, 2), 0, 0, (1, 1))
