"""Time the batched insertion / deletion games of inferml_course.evaluate against per-step loops.

    python benchmarks/bench_evaluate.py            # 100 images, 8 methods, 64 steps (the speed target)
    python benchmarks/bench_evaluate.py --quick    # 20 images, 4 methods, 32 steps

The same curves are computed four ways on signs_cnn, in one run:

* ``ours``: :func:`inferml_course.evaluate.insertion_deletion` with every (map, image, step) of both
  games batched (``batch_size="auto"``) and the shared end points computed once;
* ``ours, frozen model``: the same call with a frozen TorchScript copy of the model passed in
  (conv + batch-norm folded by ``torch.jit.optimize_for_inference``); the package itself never does
  this, the row shows what a caller can add;
* ``per-step loop``: RISE's reference ``evaluate`` in batch form: for each map and game, one
  forward pass per step over all N images (N x 1 batches of images, (steps + 1) x maps x 2 calls);
* ``naive loop``: one image and one step per forward pass, the literal definition. It is far too
  slow for the whole workload, so it runs on the first ``--naive-images`` images and its time is
  scaled to N (marked "extrapolated").

On a machine shared with other jobs, run it as ``OMP_NUM_THREADS=1 python benchmarks/bench_evaluate.py``:
with two torch threads competing for busy cores we measured three times the CPU seconds for the
same work. Measured here on an idle 2-core machine with torch's default two threads: ours 13.8 s
(27.5 CPU s), the per-step loop 1.4x and the naive loop 5.0x slower, the frozen model 0.7x of ours;
on the same machine shared with other jobs (one thread, load about 3): ours 31 s.

Reported: wall and CPU seconds of the process (medians of ``--repeats``; with one thread the CPU
time is the work done and stays steady on a busy machine), images per second (wall), the speed-up
of ours over each loop (wall), and the largest difference between their curves and ours. Torch uses its default thread count
(the target machine has 2 cores); a busy machine slows every row alike, so compare the ratios.
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
import warnings
from pathlib import Path

import torch

from _timing import medians
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inferml_course import datasets, evaluate as ev, explain, models  # noqa: E402
from inferml_course.evaluate._common import substrate_images  # noqa: E402

METHODS = ("saliency", "input_x_gradient", "guided_backprop", "deconvnet", "fullgrad", "grad_cam",
           "grad_cam_plus_plus", "contrast_cam")


@torch.no_grad()
def per_step_loop(model, x, maps, steps, sub):
    """For each map, game and step: one forward pass over all N images."""
    n, c, h, w = x.shape
    t = model(x).argmax(1)
    out = {}
    for name, heat in maps.items():
        order = torch.argsort(heat.flatten(1), dim=1, descending=True, stable=True)
        for game in ("insertion", "deletion"):
            curve = []
            for k in range(steps + 1):
                count = int(round(k * h * w / steps))
                moved = torch.zeros(n, h * w, dtype=torch.bool, device=x.device)
                moved.scatter_(1, order[:, :count], True)
                keep = (moved if game == "insertion" else ~moved).view(n, 1, h, w)
                p = torch.softmax(model(torch.where(keep, x, sub)), 1)
                curve.append(p.gather(1, t[:, None])[:, 0])
            out[(name, game)] = torch.stack(curve, 1)
    return out


@torch.no_grad()
def naive_loop(model, x, maps, steps, sub):
    """One image and one step per forward pass."""
    n, c, h, w = x.shape
    out = {}
    for name, heat in maps.items():
        for game in ("insertion", "deletion"):
            rows = []
            for i in range(n):
                t = int(model(x[i:i + 1]).argmax(1))
                order = torch.argsort(heat[i].flatten(), descending=True, stable=True)
                row = []
                for k in range(steps + 1):
                    moved = torch.zeros(h * w, dtype=torch.bool, device=x.device)
                    moved[order[:int(round(k * h * w / steps))]] = True
                    keep = (moved if game == "insertion" else ~moved).view(1, h, w)
                    row.append(float(torch.softmax(model(torch.where(keep, x[i], sub[i])[None]), 1)[0, t]))
                rows.append(row)
            out[(name, game)] = torch.tensor(rows)
    return out


def frozen(model, x):
    """A frozen TorchScript copy of the model (None when tracing is not possible here)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(copy.deepcopy(model).eval(), x[:8])
            return torch.jit.optimize_for_inference(torch.jit.freeze(traced))
    except Exception as error:  # pragma: no cover - depends on the torch build
        print(f"(frozen model unavailable: {error})")
        return None


def max_diff(ours, theirs, rows=None):
    worst = 0.0
    for (name, game), curve in theirs.items():
        mine = getattr(ours, game)[name][:rows].cpu().double()
        worst = max(worst, float((mine - curve.cpu().double()).abs().max()))
    return worst


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--images", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--naive-images", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    n = args.images or (20 if args.quick else 100)
    steps = args.steps or (32 if args.quick else 64)
    methods = METHODS[:4] if args.quick else METHODS
    naive_n = args.naive_images or (2 if args.quick else 4)
    device = torch.device(args.device) if args.device else torch.device("cuda" if torch.cuda.is_available() else "cpu")

    model = models.load_model("signs_cnn", device=device)
    x = datasets.load("signs", "test").images[:n].to(device)
    maps = {m: explain.explain(m, model, x) for m in methods}
    sub = substrate_images(model, x, "blur")
    images = len(methods) * n * 2 * (steps - 1) + 2 * n  # forward images of ours (shared end points)
    print(f"{n} images, {len(methods)} methods, {steps} steps, both games, blur substrate, probability; "
          f"device {device}, torch threads {torch.get_num_threads()}")

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def ours_call(m):
        def run():
            out = ev.insertion_deletion(m, x, maps, steps=steps, substrate="blur")
            sync()
            return out
        return run

    ours_call(model)()  # warm-up
    result, c_ours, t_ours = medians(ours_call(model), args.repeats)
    rows = [("ours (batched)", t_ours, c_ours, images, None, "")]
    fast = frozen(model, x)
    if fast is not None:
        ours_call(fast)()
        res_fast, c_fast, t_fast = medians(ours_call(fast), args.repeats)
        diff = max(float((getattr(res_fast, g)[k] - getattr(result, g)[k]).abs().max())
                   for g in ("insertion", "deletion") for k in maps)
        rows.append(("ours, frozen model", t_fast, c_fast, images, diff, ""))

    def loop_call():
        out = per_step_loop(model, x, maps, steps, sub)
        sync()
        return out

    loop_out, c_loop, t_loop = medians(loop_call, args.repeats)
    rows.append(("per-step loop (N images per pass)", t_loop, c_loop, len(methods) * 2 * (steps + 1) * n + n,
                 max_diff(result, loop_out), ""))

    xs, subs = x[:naive_n], sub[:naive_n]
    start, cpu = time.perf_counter(), time.process_time()
    naive_out = naive_loop(model, xs, {k: v[:naive_n] for k, v in maps.items()}, steps, subs)
    sync()
    t_naive = (time.perf_counter() - start) * n / naive_n
    c_naive = (time.process_time() - cpu) * n / naive_n
    rows.append(("naive loop (1 image per pass)", t_naive, c_naive, len(methods) * 2 * (steps + 2) * n,
                 max_diff(result, naive_out, naive_n), f"extrapolated from {naive_n} images"))

    print(f"\n{'implementation':<36} {'wall s':>8} {'CPU s':>8} {'images/s':>10} {'ours is x faster':>17} "
          f"{'max |diff|':>11}  note")
    for name, seconds, cpu_s, count, diff, note in rows:
        ratio = seconds / t_ours
        d = "-" if diff is None else f"{diff:.1e}"
        print(f"{name:<36} {seconds:>8.2f} {cpu_s:>8.2f} {count / seconds:>10.0f} {ratio:>17.1f} {d:>11}  {note}")
    print(f"\nspeed target: <= 30 s for 100 images x 8 methods x 64 steps; ours took {t_ours:.1f} s"
          + ("" if (n, len(methods), steps) == (100, 8, 64) else " (not the target configuration)"))


if __name__ == "__main__":
    main()
