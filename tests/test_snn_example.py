"""benchmarks/snn_example.py end to end, shortened (2 epochs, one seed, a 6-layer
activation MLP): it trains both variants, writes results.json / results.md (and the
plot when matplotlib is installed), and its numbers make sense. Skips without
scikit-learn, the example's optional dependency."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from conftest import DEVICES, require_device

pytest.importorskip("sklearn")

EXAMPLE = Path(__file__).resolve().parent.parent / "benchmarks" / "snn_example.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("snn_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("device", DEVICES)
def test_short_run(device, tmp_path, capsys):
    require_device(device)
    example = _load_example()
    argv = ["--out", str(tmp_path), "--device", device, "--epochs", "2", "--repeats", "1",
            "--depth", "6", "--width", "64", "--batch-size", "64", "--seed", "3"]
    results = example.main(argv)
    stdout = capsys.readouterr().out
    assert "selu_ext: test accuracy" in stdout and "torch   : test accuracy" in stdout

    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["command"] == "python benchmarks/snn_example.py " + " ".join(argv)
    assert on_disk["variants"].keys() == {"selu_ext", "torch"}
    assert on_disk["config"]["epochs"] == 2 and on_disk["config"]["n_test"] == 450
    for name, r in results["variants"].items():
        assert len(r["history"]) == 2
        # Ten classes: chance is 0.1; two epochs of this ConvNet reach far more.
        assert r["test_accuracy_mean"] > 0.6, (name, r["test_accuracy_mean"])
        assert all(h["seconds"] > 0 for h in r["history"])
        if device == "cuda":
            assert r["peak_memory_bytes"] > 0
        else:
            assert r["peak_memory_bytes"] is None
    # The same initial weights for both variants (the manual LeCun init matches).
    assert results["init_max_abs_difference"] == 0.0
    # The fused SELU + AlphaDropout keeps less for backward than torch's two modules.
    ours = results["variants"]["selu_ext"]["saved_for_backward_bytes_per_batch"]
    theirs = results["variants"]["torch"]["saved_for_backward_bytes_per_batch"]
    assert 0 < ours < theirs
    if device == "cuda":
        assert (results["variants"]["selu_ext"]["peak_memory_bytes"]
                <= results["variants"]["torch"]["peak_memory_bytes"])

    # Activations through depth: SELU + LeCun stays near variance 1, ReLU with
    # torch's default init collapses.
    act = results["activations"]
    assert len(act["selu_lecun"]["variance"]) == 6
    assert 0.5 < act["selu_lecun"]["variance"][-1] < 2.0
    assert abs(act["selu_lecun"]["mean"][-1]) < 0.2
    assert act["relu_default"]["variance"][-1] < 0.1

    md = (tmp_path / "results.md").read_text()
    assert "python benchmarks/snn_example.py --out" in md
    assert "| selu_ext |" in md and "| torch |" in md
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert results["plot"] is None
    else:
        png = tmp_path / "activations.png"
        assert results["plot"] == "activations.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_arguments(capsys):
    example = _load_example()
    with pytest.raises(SystemExit):
        example.main(["--epochs", "0"])
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            example.main(["--device", "cuda"])
