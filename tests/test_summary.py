"""The summary table: the lecture's FLOPs against XLA's, and the CLI."""

import subprocess
import sys

import pytest

from jaxnets.models import AlexNet, LeNet, summary


@pytest.mark.parametrize("factory", [LeNet, AlexNet])
def test_flops_equal_xla_with_padding_accounted(factory):
    model = factory()
    rows = summary.summarize(model.layers, model.input_shape)
    computing = [r for r in rows if r.kind in ("Conv", "Dense")]
    assert computing and all(r.xla_agrees for r in computing)
    for row in computing:
        assert row.xla_flops == 2 * row.flops_on_input
        if row.name in ("CONV1", "FC6", "FC7", "FC8") or factory is LeNet:
            assert row.xla_flops == 2 * row.flops  # no padding: exactly 2x the lecture
    padded = [r for r in computing if r.flops_on_input < r.flops]
    assert [r.name for r in padded] == (
        ["CONV2", "CONV3", "CONV4", "CONV5"] if factory is AlexNet else [])


def test_alexnet_conv1_flops_as_measured_by_xla():
    row = summary.summarize(AlexNet().layers, (227, 227, 3))[0]
    assert (row.name, row.flops, row.xla_flops) == ("CONV1", 105_415_200, 210_830_400)


def test_weights_and_biases_as_the_lecture_counts_them():
    rows = summary.summarize(AlexNet().layers, (227, 227, 3), check_xla=False)
    conv1 = rows[0]
    assert (conv1.weights, conv1.biases, conv1.params) == (11 * 11 * 3 * 96, 96, 34_944)
    assert (rows[-1].name, rows[-1].weights, rows[-1].biases) == ("FC8", 4096 * 1000, 1000)
    assert all(r.weights == r.biases == 0 for r in rows if r.kind in ("MaxPool",
                                                                       "LocalResponseNorm"))
    assert sum(r.weights + r.biases for r in rows) == 62_378_344


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "jaxnets.experiments.summary", *args],
                          capture_output=True, text=True, timeout=120)


def test_cli_prints_alexnet_table():
    result = _cli("--model=alexnet")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for text in ("55x55x96", "27x27x96", "6x6x256", "62,378,344", "34,944"):
        assert text in out
    conv1 = next(line for line in out.splitlines() if line.startswith("CONV1"))
    assert conv1.split()[2:5] == ["34,848", "96", "34,944"]  # weights, biases, params
    total = next(line for line in out.splitlines() if line.startswith("TOTAL"))
    assert total.split()[1:4] == ["62,367,776", "10,568", "62,378,344"]
    assert "MISMATCH" not in out


def test_cli_bad_shape_exits_2_with_one_line():
    result = _cli("--model=lenet", "--input_shape=27x27x1", "--noxla")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: POOL1: (23 - 2 + 2*0)/2 + 1 = 11.5 is not an integer: "
        "change stride or padding (or the input size)"]
    assert "Traceback" not in result.stderr


