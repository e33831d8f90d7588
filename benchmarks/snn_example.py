"""The SELU ConvNet of the MachineCurve tutorial "Using SELU with TensorFlow and
Keras", in PyTorch, on real handwritten digits: scikit-learn's 8x8 digits
(``sklearn.datasets.load_digits``, 1797 images shipped inside the package, no
download). Trains the model twice with identical initial weights, data order and
hyper-parameters:

  selu_ext  selu_ext.nn modules: Conv2d -> SELUAlphaDropout(0.25) (SELU and
            AlphaDropout in one kernel) -> Flatten -> Linear -> SELU -> Linear,
            LeCun init by selu_ext.init.lecun_normal_(truncated=True)
  torch     torch.nn.SELU and torch.nn.AlphaDropout, the same LeCun init written
            out by hand with torch.nn.init.trunc_normal_

and reports test accuracy, time per epoch, peak memory and the bytes autograd
keeps per batch. Then it propagates standardized digits through a 32-layer MLP
and plots each layer's activation mean and variance: SELU + LeCun init (selu_ext's
SelfNormalizingMLP) against ReLU and SELU with PyTorch's default init.

    python benchmarks/snn_example.py --out benchmarks/results/example --device cpu --threads 1
    python benchmarks/snn_example.py --device cuda --epochs 10 --seed 0 --repeats 1

The tutorial's model, adapted to 8x8 inputs: Conv2d(1, 32, 3x3) gives 32x6x6, so
the Dense(256) layer is Linear(1152, 256). As in Keras: LeCun-normal (truncated)
kernels for the SELU layers, Glorot-uniform for the softmax layer, zero biases,
Adam(lr=1e-3), categorical cross-entropy (here on logits). The tutorial trains on
48,000 MNIST images in batches of 250; with 1,078 training digits this uses
batches of 32 so an epoch still has a few dozen steps.

Needs scikit-learn (``pip install scikit-learn``); matplotlib for the plot
(optional: without it, results.json still holds the numbers).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch
from torch import nn

import selu_ext
from selu_ext.bench.memory import saved_bytes
from selu_ext.init import KERAS_TRUNCATION_STD, lecun_normal_

DROPOUT = 0.25
HIDDEN = 256
N_CLASSES = 10


# ---------------------------------------------------------------------------
# Data


def load_data(device, split_seed=0):
    """The 8x8 digits, scaled to [0, 1] as the tutorial scales MNIST, with a fixed
    stratified split: 25% test, then 20% of the rest for validation (the
    tutorial's validation_split)."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as e:  # scikit-learn is an optional extra
        raise SystemExit("snn_example.py needs scikit-learn: pip install scikit-learn") from e
    digits = load_digits()
    x = digits.data.astype("float32") / 16.0
    y = digits.target.astype("int64")
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=0.25, random_state=split_seed, stratify=y)
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=0.2, random_state=split_seed, stratify=y_rest)

    def t(a, b):
        return (torch.from_numpy(a).view(-1, 1, 8, 8).to(device), torch.from_numpy(b).to(device))

    return {"train": t(x_train, y_train), "val": t(x_val, y_val), "test": t(x_test, y_test)}


# ---------------------------------------------------------------------------
# The two models


def build_selu_ext(generator):
    model = nn.Sequential(
        nn.Conv2d(1, 32, kernel_size=3),
        selu_ext.nn.SELUAlphaDropout(DROPOUT),
        nn.Flatten(),
        nn.Linear(32 * 6 * 6, HIDDEN),
        selu_ext.nn.SELU(),
        nn.Linear(HIDDEN, N_CLASSES),
    )
    for layer in (model[0], model[3]):
        lecun_normal_(layer.weight, truncated=True, generator=generator)
    nn.init.xavier_uniform_(model[5].weight, generator=generator)
    for layer in (model[0], model[3], model[5]):
        nn.init.zeros_(layer.bias)
    return model


def _lecun_normal_by_hand(weight, generator):
    # Keras' LecunNormal: a normal cut at two standard deviations, the standard
    # deviation scaled so the variance is 1 / fan_in.
    fan_in = weight[0].numel()
    std = 1.0 / math.sqrt(fan_in) / KERAS_TRUNCATION_STD
    with torch.no_grad():
        nn.init.trunc_normal_(weight, 0.0, std, -2 * std, 2 * std, generator=generator)


def build_torch(generator):
    model = nn.Sequential(
        nn.Conv2d(1, 32, kernel_size=3),
        nn.SELU(),
        nn.AlphaDropout(DROPOUT),
        nn.Flatten(),
        nn.Linear(32 * 6 * 6, HIDDEN),
        nn.SELU(),
        nn.Linear(HIDDEN, N_CLASSES),
    )
    for layer in (model[0], model[4]):
        _lecun_normal_by_hand(layer.weight, generator)
    nn.init.xavier_uniform_(model[6].weight, generator=generator)
    for layer in (model[0], model[4], model[6]):
        nn.init.zeros_(layer.bias)
    return model


VARIANTS = {"selu_ext": build_selu_ext, "torch": build_torch}


# ---------------------------------------------------------------------------
# Training


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def accuracy(model, data, batch=512):
    model.eval()
    x, y = data
    correct = sum(int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
                  for i in range(0, len(x), batch))
    return correct / len(x)


def saved_bytes_per_batch(model, x, y):
    """Bytes of the distinct non-parameter storages autograd keeps for one training
    batch's backward (the activation memory the model costs per batch)."""
    model.train()
    return saved_bytes(lambda: nn.functional.cross_entropy(model(x), y),
                       exclude=model.parameters())


class Run:
    """One variant's training run, advanced an epoch at a time so the variants can
    take turns (on a shared machine, load changes hit both alike). Same initial
    weights (generator seeded with ``seed``) and batch order (its own shuffle
    generator) for every variant; dropout masks come from torch's default
    generator, seeded once in main()."""

    def __init__(self, name, data, device, batch_size, seed):
        self.name, self.data, self.device, self.batch_size = name, data, device, batch_size
        self.model = VARIANTS[name](torch.Generator().manual_seed(seed)).to(device)
        self.init_weights = [p.detach().cpu().clone() for p in self.model.parameters()]
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.shuffle = torch.Generator().manual_seed(seed + 1)
        x, y = data["train"]
        # Clones: a slice's storage is the whole training set.
        self.saved = saved_bytes_per_batch(self.model, x[:batch_size].clone(),
                                           y[:batch_size].clone())
        self.history = []
        self.peak = None

    def epoch(self):
        model, device, bs = self.model, self.device, self.batch_size
        x_train, y_train = self.data["train"]
        model.train()
        order = torch.randperm(len(x_train), generator=self.shuffle).to(device)
        if device.type == "cuda":
            _sync(device)
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        _sync(device)
        t0 = time.perf_counter()
        total = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.int64)
        for i in range(0, len(order), bs):
            idx = order[i:i + bs]
            xb, yb = x_train[idx], y_train[idx]
            logits = model(xb)
            loss = nn.functional.cross_entropy(logits, yb)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            total += loss.detach() * len(idx)
            correct += (logits.detach().argmax(1) == yb).sum()
        _sync(device)
        seconds = time.perf_counter() - t0
        if device.type == "cuda" and self.history:
            # Above the epoch's start: what this variant's steps allocate on top
            # (activations, temporaries), without the data and the weights, gradients
            # and optimizer state of both variants, which stay allocated. Not in a
            # run's first epoch: that one also allocates Adam's state and, for the
            # variant that happens to run first, cuBLAS's workspace (32 MiB on an
            # H100, seen in the first GPU run).
            peak = torch.cuda.max_memory_allocated(device) - base
            self.peak = peak if self.peak is None else max(self.peak, peak)
        n = len(order)
        row = {"epoch": len(self.history) + 1, "seconds": seconds, "loss": total.item() / n,
               "accuracy": correct.item() / n, "val_accuracy": accuracy(model, self.data["val"])}
        self.history.append(row)
        return row

    def summary(self):
        times = sorted(r["seconds"] for r in self.history[1:]) or [self.history[0]["seconds"]]
        return {
            "test_accuracy": accuracy(self.model, self.data["test"]),
            "epoch_seconds_median": times[len(times) // 2],
            "epoch_seconds_first": self.history[0]["seconds"],
            "peak_memory_bytes": self.peak,
            "saved_for_backward_bytes_per_batch": self.saved,
            "history": self.history,
        }


# ---------------------------------------------------------------------------
# Activations through depth


def _standardized_digits(data):
    x_train = data["train"][0].flatten(1)
    mean, std = x_train.mean(0), x_train.std(0)
    std = torch.where(std > 0, std, torch.ones_like(std))  # border pixels are always 0
    x = torch.cat([data[k][0].flatten(1) for k in ("train", "val", "test")])
    return (x - mean) / std


def _deep_mlp(kind, depth, width, seed):
    torch.manual_seed(seed)
    if kind == "selu_lecun":
        return selu_ext.nn.SelfNormalizingMLP(64, width, N_CLASSES, depth,
                                              generator=torch.Generator().manual_seed(seed))
    act = {"relu_default": nn.ReLU, "selu_default": selu_ext.nn.SELU}[kind]
    layers, n_in = [], 64
    for _ in range(depth):
        layers += [nn.Linear(n_in, width), act()]  # PyTorch's default Linear init
        n_in = width
    return nn.Sequential(*layers, nn.Linear(n_in, N_CLASSES))


ACTIVATION_CURVES = {
    "selu_lecun": "SELU + LeCun normal (selu_ext SelfNormalizingMLP)",
    "relu_default": "ReLU + PyTorch default init",
    "selu_default": "SELU + PyTorch default init",
}


@torch.no_grad()
def activation_stats(data, depth, width, seed, device):
    """Mean and variance of each hidden layer's activations (after the
    nonlinearity) for all 1797 standardized digits."""
    x = _standardized_digits(data).to(device)
    out = {}
    for kind in ACTIVATION_CURVES:
        model = _deep_mlp(kind, depth, width, seed).to(device).eval()
        means, variances, h = [], [], x
        for layer in model[:-1]:
            h = layer(h)
            if not isinstance(layer, nn.Linear):
                means.append(h.mean().item())
                variances.append(h.var().item())
        out[kind] = {"mean": means, "variance": variances}
    return out


def plot_activations(stats, path, depth, width):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (ax_m, ax_v) = plt.subplots(1, 2, figsize=(11, 4.2))
    for kind, label in ACTIVATION_CURVES.items():
        layers = range(1, len(stats[kind]["mean"]) + 1)
        style = dict(label=label, marker=".", linewidth=1.5)
        ax_m.plot(layers, stats[kind]["mean"], **style)
        ax_v.plot(layers, stats[kind]["variance"], **style)
    ax_m.axhline(0.0, color="gray", linewidth=0.8, linestyle="--")
    ax_v.axhline(1.0, color="gray", linewidth=0.8, linestyle="--")
    ax_m.set(xlabel="layer", ylabel="activation mean", title="mean")
    ax_v.set(xlabel="layer", ylabel="activation variance (log)", title="variance", yscale="log")
    ax_v.legend(fontsize=8)
    fig.suptitle(f"{depth}-layer MLP (width {width}) on standardized 8x8 digits: activations "
                 "after each hidden layer")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ---------------------------------------------------------------------------
# Reporting


def environment(device):
    info = {"torch": torch.__version__, "selu_ext": selu_ext.__version__,
            "python": platform.python_version(), "device": str(device),
            "cpu_threads": torch.get_num_threads(), "machine": platform.machine()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    else:
        info["cpu_capability"] = selu_ext.build_info().get("cpu_capability")
        info["cpu_count"] = os.cpu_count()
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = [round(v, 2) for v in os.getloadavg()]
    try:
        import sklearn
        info["scikit_learn"] = sklearn.__version__
    except ImportError:
        pass
    return info


def _max_rss_bytes():
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def device_is_cpu(env):
    return env["device"].startswith("cpu")


def _seeds(cfg):
    if cfg["repeats"] == 1:
        return f"seed {cfg['seed']}"
    return f"seeds {cfg['seed']}..{cfg['seed'] + cfg['repeats'] - 1}"


def _acc(r):
    if r.get("test_accuracy_std") is None:
        return f"{r['test_accuracy_mean']:.4f}"
    return f"{r['test_accuracy_mean']:.4f} ± {r['test_accuracy_std']:.4f}"


def _mib(n):
    return "n/a" if n is None else f"{n / 2**20:.2f} MiB"


def write_markdown(path, results, command):
    env, cfg = results["environment"], results["config"]
    lines = [
        "# SELU ConvNet on scikit-learn's 8x8 digits: selu_ext vs PyTorch",
        "",
        "Generated by `benchmarks/snn_example.py` (do not edit by hand). Command:",
        "",
        f"    {command}",
        "",
        f"torch {env['torch']}, selu_ext {env['selu_ext']}, device {env['device']}"
        + (f" ({env['gpu']})" if "gpu" in env else f", {env['cpu_threads']} CPU thread" + ("s" if env["cpu_threads"] != 1 else ""))
        + f"; {cfg['epochs']} epochs, batch {cfg['batch_size']}, {_seeds(cfg)}; "
        f"{cfg['n_train']} train / {cfg['n_val']} validation / {cfg['n_test']} test digits.",
        "",
        "Model (the tutorial's, for 8x8 inputs): Conv2d(1, 32, 3x3) + SELU + "
        "AlphaDropout(0.25) + Flatten + Linear(1152, 256) + SELU + Linear(256, 10); "
        "truncated LeCun-normal init (Keras' LecunNormal), Adam(1e-3). For each seed both "
        "variants start from identical weights (max |difference| "
        f"{results['init_max_abs_difference']:.1e}) and see the same batches; their dropout "
        "masks differ (different random streams).",
        "",
        "| variant | test accuracy | test accuracy by seed | median epoch (ms) [p20, p80] "
        "| first epoch (ms) | peak memory | kept for backward per batch |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in results["variants"].items():
        by_seed = ", ".join(f"{a:.4f}" for a in r["test_accuracy_by_seed"].values())
        lines.append(
            f"| {name} | {_acc(r)} | {by_seed} | {r['epoch_seconds_median'] * 1e3:.1f} "
            f"[{r['epoch_seconds_p20'] * 1e3:.1f}, {r['epoch_seconds_p80'] * 1e3:.1f}] | "
            f"{r['epoch_seconds_first'] * 1e3:.1f} | {_mib(r['peak_memory_bytes'])} | "
            f"{r['saved_for_backward_bytes_per_batch'] / 1024:.1f} KiB |")
    lines += [
        "",
        "Test accuracy: mean ± sample standard deviation over the seeds. Epoch times: over "
        "every epoch of every seed except each run's first (warm-up, shown separately); the "
        "variants train in turns, epoch by epoch, alternating which goes first."
        + (f" Load average (1, 5, 15 min) at the start: {env['load_average_at_start']}, at "
           f"the end: {results['load_average_at_end']}, on {env.get('cpu_count')} CPUs; "
           "other processes' load makes CPU times noisy."
           if device_is_cpu(env) and "load_average_at_start" in env else ""),
        "",
        "Peak memory is `torch.cuda.max_memory_allocated` during a training epoch minus "
        "`torch.cuda.memory_allocated` at its start (what the variant's steps allocate on "
        "top: activations and temporaries; the data and both variants' weights, gradients "
        "and optimizer state stay allocated throughout), the largest over every epoch but each run's first (which also allocates Adam's state and, for whichever variant runs first, cuBLAS's workspace). It is n/a "
        "on CPU (the process's peak RSS, "
        f"{_mib(results['process_max_rss_bytes'])}, is dominated by the torch "
        "library and is not per variant). \"Kept for backward\" is the bytes of the distinct "
        "non-parameter storages autograd saves for one training batch of "
        f"{cfg['batch_size']}, measured with `torch.autograd.graph.saved_tensors_hooks`; it "
        "is the same on every device.",
        "",
        "The tutorial reports 97.5% test accuracy on MNIST after 5 epochs; this is a "
        f"different, much smaller data set (8x8 images, {cfg['n_train']:,} training images), so "
        "the numbers are not directly comparable.",
        "",
        f"Per epoch, seed {cfg['seed']} (loss and accuracy on the training batches, with "
        "dropout; accuracy on validation):",
        "",
        "| variant | epoch | ms | loss | accuracy | val accuracy |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in results["variants"].items():
        for h in r["history"]:
            lines.append(f"| {name} | {h['epoch']} | {h['seconds'] * 1e3:.1f} | {h['loss']:.4f} | "
                         f"{h['accuracy']:.4f} | {h['val_accuracy']:.4f} |")
    act = results["activations"]
    depth = results["config"]["activation_depth"]
    lines += [
        "",
        f"## Activations through a {depth}-layer MLP",
        "",
        f"All 1,797 digits, standardized per pixel, through {depth} hidden layers of width "
        f"{results['config']['activation_width']} (no training). Mean and variance of the "
        "activations after each hidden layer's nonlinearity:",
        "",
        "| network | layer 1 mean / var | layer 8 | layer 16 | last layer |",
        "| --- | --- | --- | --- | --- |",
    ]
    for kind, label in ACTIVATION_CURVES.items():
        m, v = act[kind]["mean"], act[kind]["variance"]
        cells = [f"{m[i]:+.3f} / {v[i]:#.3g}" for i in (0, min(7, depth - 1), min(15, depth - 1),
                                                       depth - 1)]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if results.get("plot"):
        lines += ["", f"![activation mean and variance through depth]({results['plot']})"]
    else:
        lines += ["", "(matplotlib not installed: no plot written)"]
    Path(path).write_text("\n".join(lines) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None,
                        help="write results.json, results.md and activations.png here")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5,
                        help="train each variant with seeds seed .. seed+repeats-1 (the "
                        "per-epoch tables show the first)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads for the CPU (default: torch's choice); on "
                        "a busy machine, 1 avoids OpenMP threads waiting on each other")
    parser.add_argument("--depth", type=int, default=32, help="layers of the activation MLP")
    parser.add_argument("--width", type=int, default=256, help="width of the activation MLP")
    args = parser.parse_args(argv)
    if min(args.epochs, args.depth, args.repeats, args.batch_size, args.threads or 1) < 1:
        parser.error("--epochs, --depth, --repeats, --batch-size and --threads must be at "
                     "least 1")
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA GPU visible")

    def log(msg):
        print(msg, flush=True)

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    data = load_data(device)
    env = environment(device)
    log(f"selu_ext {env['selu_ext']}, torch {env['torch']}, device {device}: "
        f"{len(data['train'][0])} train / {len(data['val'][0])} val / "
        f"{len(data['test'][0])} test digits")

    variants, init_diff = {}, 0.0
    for rep in range(args.repeats):
        seed = args.seed + rep
        runs = [Run(name, data, device, args.batch_size, seed) for name in VARIANTS]
        init_diff = max([init_diff] + [(a - b).abs().max().item()
                                       for a, b in zip(runs[0].init_weights, runs[1].init_weights)])
        torch.manual_seed(seed + 2)
        for epoch in range(args.epochs):
            # Alternate which variant goes first, so neither always runs warm.
            for run in (runs if epoch % 2 == 0 else runs[::-1]):
                r = run.epoch()
                if rep == 0:
                    log(f"  {run.name:8s} epoch {r['epoch']}/{args.epochs}: "
                        f"{r['seconds'] * 1e3:7.1f} ms  loss {r['loss']:.4f}  accuracy "
                        f"{r['accuracy']:.4f}  val_accuracy {r['val_accuracy']:.4f}")
        for run in runs:
            summary = run.summary()
            if rep == 0:
                variants[run.name] = summary
                variants[run.name]["test_accuracy_by_seed"] = {}
                variants[run.name]["epoch_seconds_all"] = []
            v = variants[run.name]
            v["test_accuracy_by_seed"][str(seed)] = summary["test_accuracy"]
            # Every epoch but each run's first (warm-up) counts towards the median.
            v["epoch_seconds_all"] += [h["seconds"] for h in run.history[1:]]
            if summary["peak_memory_bytes"] is not None:
                v["peak_memory_bytes"] = max(v["peak_memory_bytes"], summary["peak_memory_bytes"])
        if args.repeats > 1:
            log(f"  seed {seed}: test accuracy " + ", ".join(
                f"{name} {variants[name]['test_accuracy_by_seed'][str(seed)]:.4f}"
                for name in VARIANTS))
    for v in variants.values():
        accs = list(v["test_accuracy_by_seed"].values())
        v["test_accuracy_mean"] = sum(accs) / len(accs)
        v["test_accuracy_std"] = (math.sqrt(sum((a - v["test_accuracy_mean"]) ** 2 for a in accs)
                                            / (len(accs) - 1)) if len(accs) > 1 else None)
        times = sorted(v.pop("epoch_seconds_all")) or [v["epoch_seconds_first"]]
        v["epoch_seconds_median"] = times[len(times) // 2]
        v["epoch_seconds_p20"] = times[int(0.2 * (len(times) - 1))]
        v["epoch_seconds_p80"] = times[int(0.8 * (len(times) - 1))]

    stats = activation_stats(data, args.depth, args.width, args.seed, device)
    results = {
        "config": {"epochs": args.epochs, "seed": args.seed, "repeats": args.repeats,
                   "batch_size": args.batch_size,
                   "dropout": DROPOUT, "optimizer": "Adam(lr=1e-3)",
                   "n_train": len(data["train"][0]), "n_val": len(data["val"][0]),
                   "n_test": len(data["test"][0]), "activation_depth": args.depth,
                   "activation_width": args.width},
        "environment": env,
        "init_max_abs_difference": init_diff,
        "variants": variants,
        "activations": stats,
        "process_max_rss_bytes": _max_rss_bytes(),
        "wall_seconds": time.perf_counter() - t_start,
        "load_average_at_end": ([round(v, 2) for v in os.getloadavg()]
                                if hasattr(os, "getloadavg") else None),
        "plot": None,
    }

    for name, r in variants.items():
        log(f"{name:8s}: test accuracy {_acc(r)}, median epoch "
            f"{r['epoch_seconds_median'] * 1e3:.1f} ms, peak memory {_mib(r['peak_memory_bytes'])}, "
            f"kept for backward {r['saved_for_backward_bytes_per_batch'] / 1024:.1f} KiB/batch")
    for kind, label in ACTIVATION_CURVES.items():
        log(f"{label}: last layer mean {stats[kind]['mean'][-1]:+.4f}, variance "
            f"{stats[kind]['variance'][-1]:.4g}")

    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        if plot_activations(stats, args.out / "activations.png", args.depth, args.width):
            results["plot"] = "activations.png"
        command = "python benchmarks/snn_example.py " + " ".join(
            sys.argv[1:] if argv is None else argv)
        results["command"] = command
        (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
        write_markdown(args.out / "results.md", results, command)
        log(f"wrote {args.out / 'results.json'}, {args.out / 'results.md'}"
            + (f", {args.out / 'activations.png'}" if results["plot"] else
               " (no plot: matplotlib not installed)"))
    return results


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
