"""Speed of VOICE and uncertainty attribution against naive loops (A/B in one run), with the speed targets.

    python benchmarks/bench_attribution.py            # the full sizes of the speed targets
    python benchmarks/bench_attribution.py --quick    # one repeat, smaller naive references

Rows (``ours`` vs a reference that computes the same numbers, checked with max |diff|):

* UA-Backprop, signs_cnn with MC dropout (S = 20), 64 images: the default (a loop over the K
  classes on one retained graph per posterior sample, on CPUs) vs ``vectorize=True`` (one
  ``is_grads_batched`` backward per sample) vs a naive per-image loop with one backward per sample
  and class. Target: <= 10 s.
* UA-Backprop with the ensemble (S = 5), 64 images.
* Optimisation-based UA, 32 images batched vs the same optimisation one image at a time (the
  objective is a sum over images, so only the Gumbel draws differ); target <= 1 s per image.
* VOICE with Contrast-CAM (64 images) and SmoothGrad (16 images, 10 samples): the default
  (vectorised over the classes for Contrast-CAM, a loop on one retained graph for SmoothGrad on
  CPUs) vs the other choice of ``vectorize`` vs the reference loop over contrast classes through the
  explain package (one forward and backward pass per class).

Times are medians over the repeats, in CPU seconds of this process and in wall seconds (the wall
time is what the targets are about; the CPU time is steadier on a shared machine, and with one
torch thread, the default, it is the work done). "ratio" = reference wall time / ours (> 1: ours
is faster). ``--threads 2`` uses both cores of the course machine; on a busy machine two threads
spin and wait, so compare like with like.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

from _timing import medians
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inferml_course import datasets, explain, models  # noqa: E402
from inferml_course._core.hooks import capture_many  # noqa: E402
from inferml_course.uncertainty import attribution as ua, voice as ve  # noqa: E402


def naive_ua_backprop(bayes, x):
    """UA-Backprop one image, one posterior sample and one logit at a time (same rules)."""
    out = []
    biased = ua.methods._spatial_biases(bayes)
    for i in range(x.shape[0]):
        xi = x[i:i + 1].detach().requires_grad_(True)
        with torch.enable_grad(), capture_many([m for m, _ in biased]) as outputs:
            zs = bayes.sample_logit_list(xi)
            captured = [(o, b) for outs, (_, b) in zip(outputs, biased) for o in outs]
            inputs = [xi] + [o for o, _ in captured]
            probs = torch.softmax(torch.stack(zs).detach(), -1).double()
            shares = ua.logit_shares(probs, ua.TAU1)["total"]
            acc = torch.zeros(x.shape[-2:], dtype=torch.float64)
            for s, z in enumerate(zs):
                for k in range(z.shape[1]):
                    grads = torch.autograd.grad(z[0, k], inputs, retain_graph=True, allow_unused=True)
                    ev = ua.methods._evidence_map(grads, x[i:i + 1], captured, x.shape[-2:])[0].double()
                    acc += shares[s, 0, k] * ua.psi(ev, ua.TAU2)
        out.append(acc / len(zs))
    return torch.stack(out).float()


def voice_loop(model, x, explainer, samples):
    """VOICE as the authors compute it: one contrast class at a time (through the explain package)."""
    p = model(x).argmax(1)
    others = ve.contrast_classes(p, model(x).shape[1])
    maps = []
    for j in range(others.shape[1]):
        if explainer == "contrast_cam":
            m = explain.contrast_cam(model, x, target=p, contrast=others[:, j])
        else:
            log_probs = nn.Sequential(model, nn.LogSoftmax(dim=1))  # log softmax(z)_Q = -cross-entropy(z, Q)
            m = explain.smoothgrad(log_probs, x, target=others[:, j], samples=samples, channels="abs")
        maps.append(explain.normalize_maps(m))
    return explain.normalize_maps(torch.stack(maps, 1).var(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared machine CPU time then measures the work done)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats = 1 if args.quick else 3
    cnn = models.load_model("signs_cnn", "cpu")
    ens = models.load_model("signs_ensemble", "cpu")
    pool = datasets.anomalies(64, seed=0)
    x = pool.images
    rows = []

    def row(task, ours, reference, scale=1.0, target=None, diff=None):
        (o_cpu, o_wall), (r_cpu, r_wall) = ours, reference
        rows.append((task, o_wall, o_cpu, r_wall * scale, r_cpu * scale, (r_wall * scale) / o_wall, target, diff))

    bayes = ua.BayesianModel(cnn, samples=20)
    m_loop, *t_loop = medians(lambda: ua.ua_backprop(bayes, x, vectorize=False), repeats)
    m_vec, *t_vec = medians(lambda: ua.ua_backprop(bayes, x, vectorize=True), repeats)
    n_naive = 8 if args.quick else 16
    m_naive, *t_naive = medians(lambda: naive_ua_backprop(bayes, x[:n_naive]), 1)
    row("UA-Backprop MC S=20, 64 img: default vs naive per-image loop*", t_loop, t_naive, 64 / n_naive, "<= 10 s",
        float((m_loop[:n_naive] - m_naive).abs().max()))
    row("UA-Backprop MC S=20, 64 img: default vs vectorize=True", t_loop, t_vec, 1.0, "<= 10 s",
        float((m_loop - m_vec).abs().max()))
    e_loop, *te = medians(lambda: ua.ua_backprop(ens, x), repeats)
    e_naive, *te_naive = medians(lambda: naive_ua_backprop(ua.BayesianModel(ens), x[:n_naive]), 1)
    row("UA-Backprop ensemble S=5, 64 img: default vs naive*", te, te_naive, 64 / n_naive, None,
        float((e_loop[:n_naive] - e_naive).abs().max()))

    xo = x[:32]
    umodel = ua.UncertaintyModel(cnn, samples=20)
    segs = [explain.superpixels(xo, k) for k in (12, 40, 100)]
    _, *t_opt = medians(lambda: ua.optimization_ua(umodel, xo, segments=segs), repeats)
    n_single = 4 if args.quick else 8
    _, *t_single = medians(lambda: [ua.optimization_ua(umodel, xo[i:i + 1], segments=[s[i:i + 1] for s in segs])
                                  for i in range(n_single)], 1)
    row("Optimisation UA, 32 img batched vs one at a time*", t_opt, t_single, 32 / n_single,
        f"<= 1 s/img (ours {t_opt[1] / 32:.2f})")

    for explainer, n, samples in (("contrast_cam", 64, 10), ("smoothgrad", 16, 10)):
        xv = x[:n]
        v_def, *tv = medians(lambda: ve.voice(cnn, xv, explainer=explainer, samples=samples), repeats)
        other = explainer == "smoothgrad"   # the default vectorises Contrast-CAM and loops SmoothGrad on CPUs
        v_vec, *tvv = medians(lambda: ve.voice(cnn, xv, explainer=explainer, samples=samples, vectorize=other), repeats)
        v_ref, *tr = medians(lambda: voice_loop(cnn, xv, explainer, samples), repeats)
        row(f"VOICE {explainer}, {n} img: default vs loop over classes", tv, tr, 1.0, None,
            float((v_def.uncertainty - v_ref).abs().max()))
        row(f"VOICE {explainer}, {n} img: default vs vectorize={other}", tv, tvv, 1.0, None,
            float((v_def.uncertainty - v_vec.uncertainty).abs().max()))

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU; median of {repeats} run(s); "
          "* = reference timed on a subset and scaled linearly")
    head = (f"{'task':<62} {'ours wall':>9} {'ours cpu':>9} {'ref wall':>9} {'ref cpu':>9} {'ratio':>6}  "
            f"{'target':<22} max|diff|")
    print(head)
    print("-" * len(head))
    for task, ow, oc, rw, rc, ratio, target, diff in rows:
        d = "" if diff is None else f"{diff:.1e}"
        print(f"{task:<62} {ow:9.2f} {oc:9.2f} {rw:9.2f} {rc:9.2f} {ratio:6.2f}  {target or '':<22} {d}")


if __name__ == "__main__":
    main()
