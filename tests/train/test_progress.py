"""TextProgress: one line per epoch everywhere, a line redrawn in place only on a terminal."""

import io

from minicnn.train.progress import TextProgress

METRICS = {"epoch": 1, "train_loss": 0.5, "train_accuracy": 0.75, "test_loss": 0.25, "test_accuracy": 0.875,
           "seconds": 2.0, "images_per_second": 1500.0, "lr": 0.1}


class Terminal(io.StringIO):
    def isatty(self):
        return True


def run_one_epoch(stream, metrics=METRICS):
    progress = TextProgress(stream)
    progress.on_epoch_start(1, 3, 2)
    progress.on_batch(1, 1, 0.6, 0.5, 1000.0)
    progress.on_batch(1, 2, 0.5, 0.75, 1500.0)
    progress.on_evaluate_start(1, 1)
    progress.on_epoch_end(metrics)
    return stream.getvalue()


def test_a_file_or_a_notebook_gets_one_line_per_epoch():
    assert run_one_epoch(io.StringIO()) == (
        "epoch  1/3  loss 0.5000 acc 75.00% | test loss 0.2500 acc 87.50% | 2.0s 1,500 img/s\n")


def test_without_a_test_set_the_line_has_no_test_part():
    metrics = {k: v for k, v in METRICS.items() if not k.startswith("test")}
    assert run_one_epoch(io.StringIO(), metrics) == "epoch  1/3  loss 0.5000 acc 75.00% | 2.0s 1,500 img/s\n"


def test_a_terminal_sees_the_batches_in_place_then_the_epoch_s_line():
    text = run_one_epoch(Terminal())
    assert "\repoch 1/3  1/2  loss 0.6000 acc 50.00%  1,000 img/s" in text
    assert "\repoch 1/3  2/2  loss 0.5000 acc 75.00%  1,500 img/s" in text  # the last batch is always drawn
    assert text.endswith("\r\x1b[Kepoch  1/3  loss 0.5000 acc 75.00% | test loss 0.2500 acc 87.50% | 2.0s 1,500 img/s\n")
    assert text.count("\n") == 1
