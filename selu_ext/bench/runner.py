"""The run: its state (config, metadata, rows, copy bandwidth, budget) and its loop
over thread counts, ops, dtypes and sizes. The modes are measured by sweep.py and
memory.py, the other parts by percall.py (--percall) and train.py (--train).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import sys
import time
from dataclasses import dataclass
from typing import Optional, TextIO

import torch

from . import avx2_peer, machine, memory, percall, report, sweep, targets, timing, train
from .candidates import OP_DEFS, Impl, build_impls


# A run's settings: the flags' values, made by cli.config_from_args, which holds every
# default (``python -m selu_ext.bench --help`` lists them).
Config = argparse.Namespace


@dataclass
class Result:
    meta: dict
    rows: list
    targets: list
    plot_ok: bool = True


class Runner:
    def __init__(self, cfg: Config, out: TextIO, extra_impls: Optional[dict] = None):
        self.cfg, self.out, self.extra_impls = cfg, out, extra_impls or {}
        self.rows: list[dict] = []
        self.meta = machine.collect_meta(cfg)
        self.copy_gbps: dict = {}
        self.t_start = time.perf_counter()
        self.budget_hit = False
        self.avx2_rows: dict = {}
        self.saved_cache: dict = {}

    def say(self, text: str = "", indent: str = "") -> None:
        print(report.wrap(text, indent), file=self.out)
        self.out.flush()

    def emit(self, row: dict, show: bool = True) -> None:
        """Store a row; the per-call and training-step parts print their own."""
        self.rows.append(row)
        key = lambda r: (r["op"], r["mode"], r["dtype"], r["size"], r.get("threads"))  # noqa: E731
        report.fill_speedups([r for r in self.rows[-64:] if key(r) == key(row)])
        if self.cfg.emit_rows:
            print("@row " + json.dumps(row, default=str), file=self.out)
        if show:
            print(report.format_row(row), file=self.out)
        self.out.flush()

    @contextlib.contextmanager
    def measuring(self, row: dict):
        """Emit ``row`` after the block; an error in the block becomes its status."""
        try:
            yield row
        except Exception as e:
            row["status"] = "ERROR: " + report.first_line(e)
        self.emit(row)

    def new_row(self, op, mode, dtype, size, threads, impl: Impl, **fields) -> dict:
        return report.new_row(op, mode, dtype, size, self.cfg.device, threads, impl.name, impl.role, **fields)

    def over_budget(self) -> bool:
        if self.cfg.budget and not self.budget_hit and time.perf_counter() - self.t_start > self.cfg.budget:
            self.budget_hit = self.meta["budget_hit"] = True
            self.say(f"\n*** time budget of {self.cfg.budget:.0f} s used up: the remaining rows "
                     "are skipped ***\n")
        return self.budget_hit

    def wanted(self, impl: Impl) -> bool:
        """The F.selu[avx2] subprocess times torch's eager rows only."""
        return not self.cfg.emit_rows or impl.role == "eager"

    def impls_for(self, op: str) -> list[Impl]:
        cfg = self.cfg
        # None: try torch.compile; a failure at the first call is the row's status.
        cmode = None if cfg.compile is not False else (
            "compile skipped (--no-compile" + (", --quick on CPU)" if cfg.quick else ")"))
        impls = build_impls(op, cfg.device, cfg.p, compile_mode=cmode, cpu_variants=cfg.cpu_variants)
        impls[-1:-1] = self.extra_impls.get(op, [])
        return [i for i in impls if self.wanted(i)]

    def sync(self):
        timing.sync(self.cfg.device)

    def run(self) -> Result:
        cfg, talk = self.cfg, not self.cfg.emit_rows
        if talk:
            report.print_header(self.meta, self.out)
        if cfg.device == "cpu" and cfg.avx2_peer and talk:
            avx2_peer.run(self)
        try:
            self.measure()
        except KeyboardInterrupt:
            self.say("\ninterrupted: writing what was measured")
            self.meta["interrupted"] = True
        except Exception as e:  # a bug here should not lose the rows measured so far
            import traceback

            traceback.print_exc(file=self.out)
            self.meta["error"] = report.first_line(e)
        machine.canary_verdict(self.meta, self.out)
        report.fill_speedups(self.rows)
        tg = targets.evaluate(self.rows, self.meta) if talk else []
        if talk:
            report.print_targets(tg, self.out)
            self.meta["answer"] = report.answer(self.rows, self.meta)
        self.meta["elapsed_s"] = round(time.perf_counter() - self.t_start, 1)
        res = Result(self.meta, self.rows, tg, report.write(cfg, self.meta, self.rows, tg, self.out))
        self.say(f"done in {self.meta['elapsed_s']:.0f} s")
        if talk:
            report.print_answer(self.rows, self.meta, self.out)
        if "error" in self.meta:
            raise SystemExit(f"selu_ext.bench: stopped by an error ({self.meta['error']}); "
                             "the rows measured before it were written")
        return res

    def measure(self) -> None:
        cfg = self.cfg
        machine.measure_copy_bandwidth(self)
        machine.canary(self.meta, cfg.device, "start")
        print("\n" + report.HEADER, file=self.out)
        if "accuracy" in cfg.modes and "selu" in cfg.ops:
            sweep.run_accuracy(self, cfg.threads[0])
        if "memory" in cfg.modes and not cfg.emit_rows:
            memory.run(self, cfg.threads[0])
        if "percall" in cfg.modes and "selu" in cfg.ops:
            for threads in cfg.threads:
                self.set_threads(threads)
                impls = self.impls_for("selu")
                for dtype, size in itertools.product(cfg.dtypes, cfg.percall_sizes):
                    if not self.over_budget():
                        sweep.run_point(self, "selu", impls, dtype, size, threads, ("percall",))
        if cfg.per_call:
            percall.run(self)
        if cfg.train:
            train.run(self)
        # dtype, then op, then threads: a run cut short by its budget still has every
        # op in the first dtypes (float32 first), and the thread counts of one op and
        # dtype are measured next to each other, in one state of the process (see
        # machine.canary).
        for dtype, op, threads in itertools.product(cfg.dtypes, cfg.ops, cfg.threads):
            if self.over_budget():
                break
            self.set_threads(threads)  # fresh torch.compile per thread count
            impls = self.impls_for(op)
            print(f"\n{OP_DEFS[op].title}, {dtype}, {threads} thread(s)\n{report.HEADER}", file=self.out)
            for size in cfg.sizes:
                if self.over_budget():
                    break
                sweep.run_point(self, op, impls, dtype, size, threads)
            machine.canary(self.meta, cfg.device, f"after {op} {dtype} {threads}thr")
            self.checkpoint()

    def checkpoint(self):  # a run cut short keeps what it measured
        if self.cfg.json:
            report.fill_speedups(self.rows)
            report.write_json(self.cfg.json, self.meta, self.rows, [], {"partial": True})

    def set_threads(self, threads: int) -> None:
        torch.set_num_threads(threads)
        if self.cfg.compile is False:
            return
        # Inductor's C++ kernels take their thread count at code generation: compile
        # afresh for each thread count.
        try:
            from torch import _dynamo

            _dynamo.reset()
            for name in ("recompile_limit", "cache_size_limit"):
                if hasattr(_dynamo.config, name):
                    setattr(_dynamo.config, name, 64)
            if self.cfg.device == "cpu":
                from torch._inductor import config as ic

                ic.cpp.threads = threads
            # AOTAutograd may donate saved buffers to the backward, which then refuses
            # retain_graph=True; the backward mode re-runs one graph's backward.
            from torch._functorch import config as fc

            fc.donated_buffer = False
        except Exception:
            pass


def run(cfg: Config, out: Optional[TextIO] = None, extra_impls: Optional[dict] = None) -> Result:
    """Run the benchmark; ``extra_impls`` ({op: [Impl, ...]}) adds implementations
    of your own, checked and timed next to the others (before selu_ext)."""
    out = out or sys.stdout
    runner = Runner(cfg, out, extra_impls)
    if cfg.emit_rows:
        print("@meta " + json.dumps({"torch_cpu_capability": runner.meta["torch_cpu_capability"]}),
              file=out)
    return runner.run()
