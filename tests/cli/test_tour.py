"""The command line: `minicnn tour` shows the tutorial's worked examples (docs/en/tutorial.md) computed by minicnn."""

from typer.testing import CliRunner

from minicnn.cli import app


def test_tour_shows_the_seed_examples():
    result = CliRunner().invoke(app, ["tour"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "[3.0, 1.0, 2.0]" in text  # 1-D valid convolution (tutorial §1)
    assert "[1.0, 3.0, 1.0, 2.0, 3.0]" in text  # 1-D same convolution
    assert "bar [10.0, 20, 10]: response 0" in text  # the edge kernel's hand computation
    assert "[[6.0, 8.0], [14.0, 16.0]]" in text  # 4x4 grid, 2x2 max pooling
    assert "(6, 28, 28)" in text
    assert "10,000,000 weights" in text


def test_no_arguments_shows_help():
    result = CliRunner().invoke(app, [])
    assert "tour" in result.output
