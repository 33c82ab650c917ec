"""Timing helpers shared by the benchmark scripts (``python benchmarks/bench_*.py`` puts this folder
on ``sys.path``). CUDA work is synchronised before each clock read, so the helpers time GPUs too."""
from __future__ import annotations

import statistics
import time

import torch


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn):
    """(output, CPU seconds of this process, wall seconds) of one call."""
    _sync()
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn()
    _sync()
    return out, time.process_time() - cpu, time.perf_counter() - wall


def medians(fn, repeats: int):
    """(last output, median CPU seconds, median wall seconds) of ``repeats`` calls."""
    runs = [timed(fn) for _ in range(repeats)]
    return runs[-1][0], statistics.median(r[1] for r in runs), statistics.median(r[2] for r in runs)


def best_wall(fn, repeats: int) -> float:
    """The fastest wall-clock time of ``repeats`` calls, after one untimed warm-up call."""
    fn()
    return min(timed(fn)[2] for _ in range(repeats))


def ab(first, second, repeats: int):
    """Alternate two calls after one warm-up each, so that a busy machine slows both alike.

    The order alternates too (A B, B A, A B, ...): whichever call runs first in a pair meets a different
    allocator and cache state, and on a CPU that order effect alone moved a ratio of two identical
    computations by about 2 % (ResNet-50 saliency, ours vs Captum: 1.020 with ours first, 0.997 with
    Captum first). Returns ((median CPU s, median wall s) of ``first``, the same of ``second``, last output
    of ``first``, last output of ``second``).
    """
    first()
    second()
    runs = {0: [], 1: []}
    out = [None, None]
    for i in range(repeats):
        order = ((0, first), (1, second)) if i % 2 == 0 else ((1, second), (0, first))
        for side, fn in order:
            out[side], cpu, wall = timed(fn)
            runs[side].append((cpu, wall))
    med = [(statistics.median(c for c, _ in v), statistics.median(w for _, w in v)) for v in runs.values()]
    return med[0], med[1], out[0], out[1]
