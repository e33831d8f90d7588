"""The benchmark harness (python -m selu_ext.bench) on the CPU, at tiny sizes:
rows are produced and stored as JSON and CSV, a wrong implementation is reported
WRONG and not timed, the targets are evaluated from rows, and the stored run can be
re-read (--from-json) and summarized (benchmarks/summarize.py)."""

from __future__ import annotations

import contextlib
import csv
import glob
import importlib.util
import io
import itertools
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import selu_ext
from selu_ext import bench
from selu_ext.bench import candidates, cli, report, targets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY = ["--device", "cpu", "--dtypes", "fp32,fp64", "--sizes", "4096", "--threads", "1",
        "--no-compile", "--no-avx2-peer", "--min-time", "0.002", "--max-time", "0.01",
        "--min-samples", "3"]


def _wrong_impls():
    """Three wrong implementations, one per way of checking: an exact value off by
    1%, a dropout with another seed (the known mask differs), and a random dropout
    with the wrong p (its read-back mask and statistics differ)."""
    return {
        "selu": [bench.Impl("selu_off_by_1pct", "custom", lambda x: selu_ext.selu(x) * 1.01)],
        "fused": [
            bench.Impl("fused_other_seed", "custom",
                       lambda x: selu_ext.selu_alpha_dropout(x, 0.1, True, seed=candidates.SEED + 1)),
            bench.Impl("fused_wrong_p", "custom",
                       lambda x: F.alpha_dropout(F.selu(x), 0.3, training=True), random=True),
        ],
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    paths = {k: str(d / f"bench.{k}") for k in ("json", "csv")}
    out = io.StringIO()
    rc = bench.main(TINY + ["--ops", "selu,fused", "--modes", "forward,backward,fwdbwd,memory",
                            "--json", paths["json"], "--csv", paths["csv"]],
                    out=out, extra_impls=_wrong_impls())
    return rc, out.getvalue(), paths


def test_rows_produced_and_checked(run):
    rc, text, paths = run
    assert rc == 0
    with open(paths["json"]) as f:
        doc = json.load(f)
    rows = doc["rows"]
    assert doc["meta"]["device"] == "cpu" and doc["meta"]["torch_version"] == torch.__version__
    assert doc["meta"]["build_info"]["version"] == selu_ext.__version__
    sweep = [r for r in rows if r["mode"] in ("forward", "backward", "fwdbwd")]
    # selu: F.selu (3 modes) + nn.SELU (forward) + compile (3) + custom (3) + selu_ext (3);
    # fused: eager, compile, 2 custom, selu_ext, 3 modes each.
    assert len(sweep) == 2 * (13 + 15)
    for r in sweep:
        assert r["size"] == 4096 and r["dtype"] in ("float32", "float64") and r["threads"] == 1
        if r["role"] in ("eager", "module", "ext"):
            assert r["status"] == "ok", r
            assert r["median_ms"] > 0 and r["p20_ms"] <= r["median_ms"] <= r["p80_ms"]
            assert r["gbps"] > 0 and r["pct_copy_bw"] > 0
        if r["role"] == "compile":
            assert r["status"].startswith("compile skipped")
            assert r["median_ms"] is None
    ext = [r for r in sweep if r["role"] == "ext"]
    assert all(r["speedup_vs_eager"] > 0 for r in ext)
    checks = {r["impl"]: r["check"] for r in sweep}
    assert checks["F.selu+F.alpha_dropout"] == "inferred-mask+stats"
    assert checks["selu_ext.selu_alpha_dropout"] == "exact-mask+stats"
    mem = {r["impl"]: r["saved_bytes"] for r in rows if r["mode"] == "memory"}
    # The output is the next Linear's input; the rng state is two integers in the graph
    # node, not a saved tensor (csrc/autograd.cpp, SavedRng).
    assert mem["selu_ext.nn.SELUAlphaDropout"] == 0
    assert mem["nn.SELU+nn.AlphaDropout"] > 3 * mem["selu_ext.nn.SELUAlphaDropout"]
    assert "Targets" in text and "WRONG" in text
    table = [ln for ln in text.splitlines() if ln.split()[:1] and ln.split()[0] in ("op", "selu", "fused")]
    assert len(table) > 20 and max(map(len, table)) <= 120
    assert text.rstrip().splitlines()[-1].startswith("Answer: selu_ext is")


def test_wrong_candidates_reported_and_not_timed(run):
    _, _, paths = run
    with open(paths["json"]) as f:
        rows = json.load(f)["rows"]
    wrong = [r for r in rows if r["role"] == "custom"]
    assert {r["impl"] for r in wrong} == {"selu_off_by_1pct", "fused_other_seed", "fused_wrong_p"}
    assert len(wrong) == 2 * 9
    for r in wrong:
        assert r["status"] == "WRONG", r
        assert r["median_ms"] is None and r["gbps"] is None and r["samples"] is None
        assert r["note"]
    by = {(r["impl"], r["mode"]): r for r in wrong if r["dtype"] == "float32"}
    assert "statistics" in by[("fused_wrong_p", "forward")]["note"]
    assert "forward" in by[("selu_off_by_1pct", "forward")]["note"]
    assert "input gradient" in by[("selu_off_by_1pct", "backward")]["note"]


def test_csv_parses(run):
    _, _, paths = run
    with open(paths["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) > 20
    for col in ("op", "mode", "dtype", "size", "device", "impl", "status", "median_ms", "p20_ms",
                "p80_ms", "gbps", "pct_copy_bw", "speedup_vs_eager", "speedup_vs_compile",
                "peak_mem", "saved_bytes", "torch_version", "version", "build_info", "command",
                "date", "threads", "selu_ext_cpu_capability"):
        assert col in rows[0], col
    ok = [r for r in rows if r["impl"] == "selu_ext" and r["mode"] == "forward"]
    assert float(ok[0]["median_ms"]) > 0
    assert json.loads(ok[0]["build_info"])["version"] == selu_ext.__version__


def test_from_json_and_summarize(run, tmp_path):
    _, _, paths = run
    out = io.StringIO()
    csv2 = tmp_path / "again.csv"
    assert bench.main(["--from-json", paths["json"], "--csv", str(csv2)], out=out) == 0
    assert "Targets" in out.getvalue() and csv2.exists()

    results = tmp_path / "results" / "cpu"
    results.mkdir(parents=True)
    with open(paths["json"]) as f:
        (results / "bench.json").write_text(f.read())
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- bench-summary:start -->\nold\n<!-- bench-summary:end -->\ntail\n")
    subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "summarize.py"),
                    "--results", str(tmp_path / "results"), "--into", str(readme)], check=True)
    text = readme.read_text()
    assert "old" not in text and text.endswith("tail\n")
    assert "| selu | forward |" not in text  # no 1M rows in this tiny run
    assert "Targets:" in text and "selu_ext.nn.SELUAlphaDropout 0 B" in text


@pytest.fixture(scope="module")
def variants_run(tmp_path_factory):
    """The parts the other runs leave out: the F.selu[avx2] subprocess (where torch's
    CPU path is not already AVX2), accuracy, percall mode and --cpu-variants."""
    path = str(tmp_path_factory.mktemp("variants") / "bench.json")
    out = io.StringIO()
    argv = [a for a in TINY if a != "--no-avx2-peer"]
    rc = bench.main(argv + ["--ops", "selu", "--modes", "forward,percall,accuracy", "--cpu-variants",
                            "--json", path], out=out)
    with open(path) as f:
        return rc, out.getvalue(), json.load(f)


def test_cpu_variants_rows(variants_run):
    rc, text, doc = variants_run
    assert rc == 0, text
    others = [c for c in selu_ext.build_info()["cpu_capabilities_supported"].split(",")
              if c and c != selu_ext._C.cpu_capability()]
    timed = [r for r in doc["rows"] if r["role"] == "ext_variant" and r["mode"] == "forward"
             and r["dtype"] == "float32"]
    assert sorted(r["impl"] for r in timed) == sorted(f"selu_ext[{c}]" for c in others)
    assert all(r["status"] == "ok" and r["median_ms"] > 0 for r in timed), timed


def test_every_printed_line_fits_120_columns(run, step_run, variants_run):
    """What the CLI prints fits 120 columns (build_info and the answer in one line are
    in the JSON's meta): the sweep with WRONG rows, the per-call and training-step
    parts, the avx2/accuracy/percall run, and every stored run re-read, the GPU's too."""
    texts = [run[1], step_run[1], variants_run[1]]
    for path in [run[2]["json"]] + sorted(glob.glob(os.path.join(ROOT, "benchmarks", "results", "*",
                                                                  "*.json"))):
        out = io.StringIO()
        if "rows" in json.load(open(path)):
            assert bench.main(["--from-json", path], out=out) == 0
            texts.append(out.getvalue())
    wide = [line for text in texts for line in text.splitlines() if len(line) > 120]
    assert not wide, "\n".join(wide[:5])
    assert step_run[2]["meta"]["answer"].startswith("Answer: per call, selu_ext is ")


def test_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for action in cli.build_parser()._actions:
        for opt in action.option_strings:
            assert opt in text
        if action.option_strings and action.dest != "help":
            assert action.help, action.option_strings


def test_help_as_module():
    r = subprocess.run([sys.executable, "-m", "selu_ext.bench", "--help"], capture_output=True,
                       text=True, env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    assert r.returncode == 0 and "--sizes" in r.stdout and "--threads" in r.stdout


def test_parse_sizes():
    assert cli.parse_sizes("4096,64K,1M,2^20,1<<3") == [4096, 65536, 2**20, 8]
    assert cli.parse_sizes("2^12..2^16") == [2**12, 2**13, 2**14, 2**15, 2**16]
    assert cli.parse_sizes("2^12..2^24:4") == [2**12, 2**16, 2**20, 2**24]
    with pytest.raises(Exception):
        cli.parse_sizes("12x")


def test_targets_from_rows():
    def row(**kw):
        base = dict(op="selu", mode="forward", dtype="float32", size=2**20, device="cpu", threads=1,
                    impl="selu_ext", role="ext", status="ok", median_ms=1.0)
        return {**base, **kw}

    rows = [row(speedup_vs_eager=12.0), row(size=2**24, speedup_vs_eager=9.0),
            row(mode="accuracy", max_ulp=1.5)]
    # Where torch runs its AVX-512 SELU (a slow expm1), the forward is held to 10x eager.
    res = {t["target"]: t for t in targets.evaluate(rows, {"torch_cpu_capability": "AVX512"})}
    assert res["cpu.selu.forward.vs_eager.2^20.1thr"]["result"] == "PASS"
    assert res["cpu.selu.forward.vs_eager.2^24.1thr"]["result"] == "MISS"
    assert res["cpu.selu.forward.vs_eager.2^24.1thr"]["value"] == 9.0
    assert "AVX512" in res["cpu.selu.forward.vs_eager.2^24.1thr"]["text"]
    assert res["cpu.selu.accuracy"]["result"] == "PASS"
    assert res["cpu.selu.backward.vs_eager.2^20.1thr"]["result"] == "n/a"
    # On its AVX2 path, to never being slower (and to the copy bandwidth).
    res = {t["target"]: t for t in targets.evaluate(rows, {"torch_cpu_capability": "AVX2"})}
    assert res["cpu.selu.forward.vs_eager.2^24.1thr"]["result"] == "PASS"
    assert "AVX2" in res["cpu.selu.forward.vs_eager.2^24.1thr"]["text"]
    assert "cpu.selu.forward.vs_avx2.2^20.1thr" not in res  # no F.selu[avx2] rows


def test_cpu_verdict_shows_every_slower_row_and_copy_targets():
    def row(**kw):
        base = dict(op="selu", mode="forward", dtype="float32", size=2**20, device="cpu", threads=1,
                    impl="selu_ext", role="ext", status="ok", median_ms=1.0)
        return {**base, **kw}

    rows = [row(op="dropout", mode="backward", speedup_vs_eager=0.49),
            row(op="dropout", mode="backward", size=2**24, threads=2, speedup_vs_eager=0.7),
            row(op="dropout", mode="forward", speedup_vs_eager=3.0),
            row(dtype="bfloat16", size=2**16, pct_copy_bw=40.0, speedup_vs_eager=3.0),
            row(dtype="bfloat16", size=2**20, pct_copy_bw=60.0, speedup_vs_eager=3.0),
            row(dtype="float16", size=2**20, pct_copy_bw=60.0, speedup_vs_eager=3.0),
            row(speedup_vs_eager=3.0), row(threads=2, median_ms=0.6, speedup_vs_eager=3.0)]
    tg = targets.evaluate(rows, {"torch_cpu_capability": "AVX2"})
    res = {t["target"]: t for t in tg}
    never = res["cpu.dropout.backward.never_slower"]
    assert never["result"] == "MISS" and never["value"] == 0.49
    assert never["detail"].startswith("2 of 2 rows slower") and "2^24 2thr 0.70x" in never["detail"]
    assert res["cpu.dropout.forward.never_slower"]["result"] == "PASS"
    assert res["cpu.dropout.backward.vs_eager.2^20.1thr"]["result"] == "MISS"
    assert res["cpu.selu.forward.copy_bw.bfloat16.1thr"]["result"] == "MISS"
    assert res["cpu.selu.forward.copy_bw.bfloat16.1thr"]["where"] == "bfloat16 2^16 1thr"
    assert res["cpu.selu.forward.copy_bw.float16.1thr"]["result"] == "PASS"
    scale = res["cpu.selu.forward.scaling.2^20"]
    assert scale["kind"] == "info" and abs(scale["value"] - 1 / 0.6) < 1e-9

    out = io.StringIO()
    report.print_targets(tg, out)
    text = out.getvalue()
    assert "n/a" not in text.replace("0 n/a", "")  # targets with no rows are counted, not listed
    assert "not measured by this run" in text
    line = report.answer(rows, {"device": "cpu", "torch_cpu_capability": "AVX2"})
    assert "\n" not in line and line.startswith("Answer: selu_ext is 3.00x faster")
    assert ", slower in 2, worst dropout backward float32 2^20 1thr 0.49x." in line


def test_plot(run, tmp_path):
    if importlib.util.find_spec("matplotlib") is None:
        pytest.skip("matplotlib not installed (an optional extra)")
    _, _, paths = run
    png = tmp_path / "bench.png"
    with contextlib.redirect_stderr(io.StringIO()):
        assert bench.main(["--from-json", paths["json"], "--plot", str(png)], out=io.StringIO()) == 0
    assert png.stat().st_size > 1000


def test_cuda_graphs_needs_cuda():
    with pytest.raises(SystemExit, match="--cuda-graphs times CUDA graphs; it needs --device cuda"):
        bench.main(TINY + ["--cuda-graphs"], out=io.StringIO())


def test_time_cuda_graph_rotates_whole_periods():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU visible")
    from selu_ext.bench import timing

    bufs = [torch.zeros(1024, device="cuda") for _ in range(3)]
    state = {"i": 0, "calls": 0}

    def call():
        i = state["i"]
        state["i"] = (i + 1) % 3
        state["calls"] += 1
        bufs[i].add_(1)

    tm = timing.time_cuda_graph(call, period=3, min_time=0.01, max_time=0.05, min_samples=5)
    assert tm.calls_per_sample % 3 == 0 and len(tm.times) >= 5
    assert all(0 < t < 1e-3 for t in tm.times)
    torch.cuda.synchronize()
    # Every replay ran whole rotations: the three buffers were added to equally.
    counts = [int(b[0].item()) for b in bufs]
    assert counts[0] == counts[1] == counts[2] > state["calls"]


def test_bench_cuda_graphs_rows():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU visible")
    out = io.StringIO()
    rc = bench.main(["--device", "cuda", "--cuda-graphs", "--ops", "selu,fused,dropout",
                     "--modes", "forward,backward,fwdbwd", "--dtypes", "fp32,bf16",
                     "--sizes", "2^16", "--min-time", "0.005", "--max-time", "0.05",
                     "--min-samples", "3", "--budget", "0"], out=out)
    text = out.getvalue()
    assert rc == 0, text
    assert "replays of a CUDA graph" in text
    rows = [line for line in text.splitlines() if " 2^16 " in line]
    assert rows, text
    # Every candidate, compiled ones included, was captured and timed.
    bad = [line for line in rows if " ok " not in line]
    assert not bad, "\n".join(bad)


# ---------------------------------------------------------------------------
# Per-call rows (percall.py) and the training step (train.py)

from selu_ext.bench import percall, train  # noqa: E402

STEP = ["--device", "cpu", "--quick", "--percall", "--train", "--no-compile", "--train-batches", "8",
        "--train-models", "mlp,convnet", "--train-dtypes", "float32,bfloat16"]


@pytest.fixture(scope="module")
def step_run(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("step") / "train.json")
    out = io.StringIO()
    rc = bench.main(STEP + ["--json", path], out=out)
    with open(path) as f:
        return rc, out.getvalue(), json.load(f), path


def test_percall_rows(step_run):
    rc, text, doc, _ = step_run
    assert rc == 0, text
    rows = [r for r in doc["rows"] if r["mode"].startswith("call_")]
    assert not [r for r in doc["rows"] if r["mode"] in ("forward", "backward", "fwdbwd")]
    assert {(r["op"], r["mode"], r["size"], r["role"]) for r in rows} == {
        (c.op, m, s, role) for c in percall.CASES for m in percall.MODES
        for s in percall.QUICK_SIZES for role in ("eager", "ext")}
    for r in rows:
        assert r["status"] == "ok", r
        assert r["dtype"] == "float32" and r["device"] == "cpu" and r["threads"] == 1
        assert 0 < r["p20_ms"] <= r["median_ms"] <= r["p80_ms"], r
        assert r["samples"] == 7 and r["calls_per_sample"] >= 1
        assert r["version"] == selu_ext.__version__ and r["torch_version"] == torch.__version__
    ext = [r for r in rows if r["role"] == "ext"]
    assert all(r["speedup_vs_eager"] > 0 for r in ext)
    assert {r["check"] for r in ext} == {"vs-torch", "dropout-formula"}
    assert {r["impl"] for r in rows if r["op"] == "selu_alpha_dropout"} == {
        "F.alpha_dropout(F.selu(x))", "selu_ext.selu_alpha_dropout"}
    tg = {t["target"]: t for t in doc["targets"]}
    assert tg["cpu.call.vs_torch"]["result"] in ("PASS", "MISS")
    assert tg["cpu.call.vs_torch"]["n_rows"] == len(ext)


def test_percall_check_catches_a_wrong_output():
    case = next(c for c in percall.CASES if c.op == "selu_alpha_dropout")
    x = torch.randn(4096)
    y = selu_ext.selu_alpha_dropout(x, 0.1, True)
    assert percall.check(case, y, y, x, 0.1) == ("dropout-formula", "")
    kind, wrong = percall.check(case, y * 1.01, y, x, 0.1)
    assert wrong
    sel = percall.CASES[0]
    assert percall.check(sel, selu_ext.selu(x), F.selu(x), x, 0.1) == ("vs-torch", "")
    assert percall.check(sel, selu_ext.selu(x)[:-1], F.selu(x), x, 0.1)[1]


def test_train_rows(step_run):
    rc, text, doc, _ = step_run
    rows = [r for r in doc["rows"] if r["mode"] == "step"]
    assert sorted((r["op"], r["dtype"], r["impl"], r["role"]) for r in rows) == sorted(
        (f"train_{m}", d, impl, role) for m in train.MODELS for d in train.DTYPES
        for impl, role in (("torch.nn", "eager"), ("selu_ext", "ext"), ("floor", "floor")))
    for r in rows:
        assert r["status"] == "ok", r
        assert r["size"] == 8 and r["threads"] == 1
        assert 0 < r["p20_ms"] <= r["median_ms"] <= r["p80_ms"], r
        assert r["saved_bytes"] > 0 and r["peak_mem"] is None and r["first_step_s"] > 0
    for m, d in itertools.product(train.MODELS, train.DTYPES):
        by = {r["role"]: r for r in rows if r["op"] == f"train_{m}" and r["dtype"] == d}
        # torch.nn keeps SELU's input and the dropout's noise; selu_ext keeps what the
        # next layer keeps anyway plus a 16-byte rng state per fused op.
        assert by["eager"]["saved_bytes"] > by["ext"]["saved_bytes"] >= by["floor"]["saved_bytes"]
        assert by["ext"]["saved_bytes"] - by["floor"]["saved_bytes"] <= 16 * 8
        assert by["ext"]["share_mem_pct"] > 99.9
        assert by["ext"]["share_time_pct"] is None or isinstance(by["ext"]["share_time_pct"], float)
        assert "of the attainable time saving" in by["ext"]["note"]
        assert by["ext"]["vs_floor"] == by["ext"]["median_ms"] / by["floor"]["median_ms"]
    tg = {t["target"]: t for t in doc["targets"]}
    for name in ("cpu.train_mlp.share_time.256", "cpu.train_mlp.vs_floor.256.float32",
                 "cpu.train_mlp.vs_floor.256.bfloat16"):
        assert tg[name]["result"] == "n/a"  # batch 8 only
    assert "Training step" in text
    # The one-line answer covers the per-call rows (and, where a share exists, the step).
    assert text.rstrip().splitlines()[-1].startswith("Answer: per call, selu_ext is ")


def test_share_on_synthetic_numbers():
    # The run: torch 80.6 ms, selu_ext 63.6 ms, floor 57.2 ms.
    assert train.share(80.6, 63.6, 57.2) == pytest.approx(100 * 17.0 / 23.4)
    assert train.share(80.6, 57.2, 57.2) == pytest.approx(100.0)
    assert train.share(10.0, 12.0, 8.0) == pytest.approx(-100.0)
    assert train.share(10.0, 9.0, 10.0) is None and train.share(10.0, None, 8.0) is None

    def row(role, impl, ms, kept, size=256):
        return dict(op="train_mlp", mode="step", dtype="float32", size=size, device="cpu",
                    threads=1, impl=impl, role=role, status="ok", median_ms=ms, saved_bytes=kept,
                    note="")

    rows = [row("eager", "torch.nn", 80.6, 1000), row("ext", "selu_ext", 63.6, 400),
            row("floor", "floor", 57.2, 300), row("compile", "compile(torch.nn)", 50.0, 900),
            row("ext_compile", "compile(selu_ext)", 49.0, 300),
            row("floor_compile", "compile(floor)", 40.0, 300)]
    train.fill_shares(rows, "cpu")
    ext, ext_c = rows[1], rows[4]
    assert ext["share_time_pct"] == pytest.approx(72.649, abs=1e-3)
    assert ext["share_mem_pct"] == pytest.approx(100 * 600 / 700)
    assert ext_c["share_time_pct"] == pytest.approx(10.0) and ext_c["share_mem_pct"] == 100.0
    res = {t["target"]: t for t in targets.evaluate(rows)}
    t = res["cpu.train_mlp.share_time.256"]
    assert t["result"] == "MISS" and t["value"] == pytest.approx(72.649, abs=1e-3)
    assert t["where"] == "train_mlp step 2^8"
    line = report.answer(rows, {"device": "cpu", "torch_cpu_capability": "AVX2"})
    assert line == ("Answer: a training step with selu_ext captured 73% of the attainable time "
                    "saving (torch.nn -> floor, cpu AVX2; median of 1 model/batch points, 73%..73%, "
                    "least at mlp batch 256).")
    rows[1]["share_time_pct"] = 95.0
    assert {t["target"]: t for t in targets.evaluate(rows)}["cpu.train_mlp.share_time.256"][
        "result"] == "PASS"
    # The step over the floor's: 63.6 / 57.2 = 1.112 misses float32's 1.04; a bfloat16 row
    # goes to its own target and leaves the float32 share alone.
    assert ext["vs_floor"] == pytest.approx(63.6 / 57.2)
    bf16 = [dict(r, dtype="bfloat16", note="") for r in rows[:3]]
    bf16[1]["median_ms"] = 60.0
    train.fill_shares(bf16, "cpu")
    res = {t["target"]: t for t in targets.evaluate(rows + bf16)}
    t32, t16 = res["cpu.train_mlp.vs_floor.256.float32"], res["cpu.train_mlp.vs_floor.256.bfloat16"]
    assert t32["result"] == "MISS" and t32["value"] == pytest.approx(63.6 / 57.2)
    assert t16["result"] == "PASS" and t16["value"] == pytest.approx(60.0 / 57.2)
    assert res["cpu.train_mlp.share_time.256"]["n_rows"] == 1


def test_percall_target_on_synthetic_rows():
    def row(op, mode, size, speedup, role="ext"):
        return dict(op=op, mode=mode, dtype="float32", size=size, device="cpu", threads=1,
                    impl=op, role=role, status="ok", median_ms=1.0, speedup_vs_eager=speedup)

    rows = [row("selu", "call_nograd", 16, 1.2), row("nn.SELU", "call_fwdbwd", 4096, 0.9),
            row("selu", "call_grad", 65536, 0.5)]  # 65536: not in the target
    t = {t["target"]: t for t in targets.evaluate(rows)}["cpu.call.vs_torch"]
    assert t["result"] == "MISS" and t["value"] == 0.9 and t["n_rows"] == 2
    assert t["where"] == "nn.SELU call_fwdbwd 2^12"
    rows[1]["speedup_vs_eager"] = 1.0
    assert {t["target"]: t for t in targets.evaluate(rows)}["cpu.call.vs_torch"]["result"] == "PASS"


def test_sweep_percall_and_memory_targets_pair_rows_with_eager():
    """CUDA's selu_ext percall row minus eager's at the same dtype, size and threads, 4K..64K only; the fused
    memory row over eager's."""
    def row(op, mode, size, role, **kw):
        return dict(op=op, mode=mode, dtype="float32", size=size, device="cuda", threads=1, impl=role, role=role,
                    status="ok", **kw)

    rows = [row("selu", "percall", s, role, median_ms=ms) for s in (2048, 4096, 65536, 131072)
            for role, ms in (("eager", 0.010), ("ext", 0.010 + s * 1e-9))]
    rows += [row("fused", "memory", 4096, "eager", saved_bytes=300),
             row("fused", "memory", 4096, "ext", saved_bytes=100)]
    by = {t["target"]: t for t in targets.evaluate(rows)}
    pc, mem = by["cuda.selu.percall"], by["cuda.fused.memory"]
    assert pc["n_rows"] == 2 and pc["where"] == "float32 2^16" and abs(pc["value"] - 0.065536) < 1e-9
    assert mem["n_rows"] == 1 and mem["value"] == 1 / 3 and mem["result"] == "PASS"


@pytest.mark.parametrize("argv, parts", [
    ([], (True, True, True)),
    (["--percall"], (False, True, False)),
    (["--train"], (False, False, True)),
    (["--percall", "--train"], (False, True, True)),
    (["--ops", "selu"], (True, False, False)),
    (["--modes", "forward", "--train"], (True, False, True)),
])
def test_parts_of_a_run(argv, parts):
    ns = cli.build_parser().parse_args(["--device", "cpu"] + argv)
    cfg = cli.config_from_args(ns, argv)
    assert (bool(cfg.ops and cfg.modes), cfg.per_call, cfg.train) == parts


def test_train_flags_parse():
    argv = ["--device", "cpu", "--train", "--train-models", "convnet", "--train-batches", "64,2^8",
            "--no-train-compile"]
    cfg = cli.config_from_args(cli.build_parser().parse_args(argv), argv)
    assert cfg.train_models == ["convnet"] and cfg.train_batches == [64, 256]
    assert cfg.train_compile is False and cfg.compile is None
    quick = ["--device", "cpu", "--quick", "--train"]
    cfg = cli.config_from_args(cli.build_parser().parse_args(quick), quick)
    assert cfg.train_models == ["mlp"] and cfg.train_batches is None and cfg.quick
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["--train-models", "resnet"])


def test_train_floor_and_convert():
    model = train.build_model("mlp")
    kinds = lambda m: [type(c).__name__ for c in m]  # noqa: E731
    assert kinds(train.floor(model)).count("Identity") == 16
    assert "SELU" in kinds(model) and "SELU" not in kinds(train.floor(model))
    variants = train.build_variants("convnet", "cpu", compile_=False)
    assert set(variants) == {"torch.nn", "selu_ext", "floor"}
    # convert(): the pair stays in its slots; the Sequential's forward fuses it.
    converted = variants["selu_ext"][1]
    assert type(converted) is selu_ext.nn.Sequential
    assert kinds(converted)[1:3] == ["SELU", "AlphaDropout"]
    assert type(converted[1]) is selu_ext.nn.SELU
    assert train.eval_check(variants, train.make_input("convnet", 4, "cpu")[0]) == ""


def test_summarize_training_step(step_run, tmp_path):
    _, _, _, path = step_run
    results = tmp_path / "results" / "cpu_train"
    results.mkdir(parents=True)
    with open(path) as f:
        (results / "train.json").write_text(f.read())
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- bench-summary:start -->\n<!-- bench-summary:end -->\n"
                      "## Training step\n<!-- train-summary:start -->\nold\n"
                      "<!-- train-summary:end -->\ntail\n")
    subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "summarize.py"),
                    "--results", str(tmp_path / "results"), "--into", str(readme)], check=True)
    text = readme.read_text()
    section = text.split("<!-- train-summary:start -->")[1].split("<!-- train-summary:end -->")[0]
    assert "old" not in section and text.endswith("tail\n")
    assert "### cpu_train:" in section and "results/cpu_train/train.json" in section
    for model, dtype in itertools.product(("MLP", "ConvNet"), train.DTYPES):
        assert f"| {model} | {dtype} | 8 |" in section
    assert "| `F.alpha_dropout(F.selu(x))` |" in section and "| `nn.SELU` |" in section
    assert "selu_ext's speedup over torch" in section and "| first step s" not in section


def test_time_interleaved_lead_times_a_call_after_its_own(monkeypatch):
    """With lead=1 every timed call follows a call of the same candidate. The fake
    clock charges a call 5 units after another candidate's call and 1 after its own
    (what a step pays for the heap another model left), so the medians show which
    calls were timed."""
    from selu_ext.bench import timing

    now, last = [0.0], [None]

    def make(name):
        def call():
            now[0] += 1.0 if last[0] == name else 5.0
            last[0] = name
        return call

    monkeypatch.setattr(timing.time, "perf_counter", lambda: now[0])
    calls = {"a": make("a"), "b": make("b")}
    # block_s below one call's time: blocks of one call, as for a training step.
    tms = timing.time_interleaved(calls, "cpu", threads=None, rounds=6, block_s=0.5, warmup=1)
    assert all(max(tm.times) == 5.0 for tm in tms.values())  # some followed the other
    tms = timing.time_interleaved(calls, "cpu", threads=None, rounds=6, block_s=0.5, warmup=1,
                                  lead=1)
    assert {name: tm.times for name, tm in tms.items()} == {"a": [1.0] * 6, "b": [1.0] * 6}


def test_time_calls_blocks_of_a_millisecond_per_call_times(monkeypatch):
    """The CPU timer: blocks of back-to-back calls of >= 1 ms, each sample a block's time divided by its calls.
    A fake clock charges each call 2^-13 s (0.12 ms, exact in binary)."""
    from selu_ext.bench import timing

    cost, now = 2.0**-13, [0.0]

    def call():
        now[0] += cost

    monkeypatch.setattr(timing.time, "perf_counter", lambda: now[0])
    tm = timing.time_calls(call, "cpu", min_time=0.02, max_time=1.0, min_samples=5)
    assert tm.calls_per_sample == 9  # the fewest calls of >= 1 ms
    assert len(tm.times) == 18 and tm.times == [cost] * 18  # 0.02 s of 9-call blocks of 1.1 ms
