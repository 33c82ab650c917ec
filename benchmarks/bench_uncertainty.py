"""Time the uncertainty package: every score on 2 000 signs, batched vs per-sample loops, and metrics vs peers.

    python benchmarks/bench_uncertainty.py            # 2 000 test signs, loops on 200 of them
    python benchmarks/bench_uncertainty.py --quick    # 500 signs, loops on 50

Three tables, printed in one run:

1. **All scores** of lessons 05/06 on N signs (signs_cnn; the ensemble for the ensemble scores), each
   timed on its own, and ``compute_scores`` doing all single-network scores at once (it shares one
   forward pass among the softmax/logit scores, GradTrust, GradNorm and Mahalanobis). Target: all
   scores for 2 000 signs in <= 30 s on a 2-core CPU.
2. **Per-sample loop vs batched** for the gradient scores: the loop is the authors' batch-size-1
   algorithm (a forward and a ``torch.autograd.grad`` call per image); the batched version is the
   package's (``torch.func`` per-sample gradients or a closed form). "speed-up" = loop / batched.
   Outputs are compared (max relative difference).
3. **Metrics vs peer libraries** on the same inputs: ECE (torchmetrics, with the matching bin rule)
   and AUROC (scikit-learn). "speed-up" = peer / ours. Peers that are not installed are skipped.

Calls alternate between the two sides where two sides exist, and the median of the repeats is
reported, so that a busy machine slows both alike. Table 1 also prints the CPU (process) time of
``compute_scores``: on a shared machine wall-clock time overstates the cost.
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from _timing import ab, medians
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inferml_course import datasets, models  # noqa: E402
from inferml_course.uncertainty import calibration, metrics, scores, trust  # noqa: E402


# ------------------------------------------------------------------- per-sample loops (the originals)
def loop_gradtrust(model, x):
    m = copy.deepcopy(model).eval()
    w = m.last_layer.weight
    out = []
    for xi in x:
        z = m(xi[None])
        (g,) = torch.autograd.grad(F.mse_loss(z, torch.full_like(z, 1 / z.shape[1])), w)
        e = g.pow(2).var(dim=1)
        out.append(e.max() / e.mean())
    return torch.stack(out)


def loop_gradnorm(model, x):
    m = copy.deepcopy(model).eval()
    w = m.last_layer.weight
    out = []
    for xi in x:
        log_p = torch.log_softmax(m(xi[None]), 1)
        (g,) = torch.autograd.grad(-(log_p + torch.log(torch.tensor(float(log_p.shape[1])))).mean(), w)
        out.append(g.abs().sum())
    return torch.stack(out)


def loop_purview(model, x):
    m = copy.deepcopy(model).eval()
    params = list(m.parameters())
    j = len(params) - 1
    out = []
    for xi in x:
        z = m(xi[None])
        grads = torch.autograd.grad(F.binary_cross_entropy_with_logits(z, torch.ones_like(z)), params)
        s = torch.stack([g.pow(2).sum() for g in grads])
        out.append(s[(j + 1) // 2:].mean())
    return torch.stack(out)


def loop_odin(model, x, temperature=1000.0, epsilon=0.0014):
    m = copy.deepcopy(model).eval()
    out = []
    for xi in x:
        xi = xi[None].clone().requires_grad_(True)
        z = m(xi)
        (g,) = torch.autograd.grad(F.cross_entropy(z / temperature, z.argmax(1)), xi)
        with torch.no_grad():
            out.append(torch.softmax(m(xi - epsilon * torch.where(g >= 0, 1.0, -1.0)) / temperature, 1).max())
    return torch.stack(out)


def rel_diff(a, b):
    return float(((a - b).abs() / b.abs().clamp_min(1e-12)).max())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n, n_loop, repeats = (500, 50, 1) if args.quick else (2000, 200, 3)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; N = {n} signs, loops on {n_loop}")

    model = models.load_model("signs_cnn", device="cpu")
    ensemble = models.load_model("signs_ensemble", device="cpu")
    test = datasets.load("signs", "test")
    val = datasets.load("signs", "val")
    x = test.images[:n]
    stats = scores.fit_mahalanobis(model, val.images[:1000], val.labels[:1000])

    # ------------------------------------------------------------------------------- 1. all scores
    single = ["msp", "entropy", "margin", "nll", "max_logit", "energy", "odin", "mahalanobis", "mc_dropout",
              "mc_dropout_mi", "gradnorm", "purview", "gradtrust", "gradtrust_topk"]
    rows, total = [], 0.0
    for name in single:
        options = {"stats": stats} if name == "mahalanobis" else {}
        _, _, t = medians(lambda: scores.uncertainty(name, model, x, **options), 1)
        rows.append((name, t))
        total += t
    for name in ("ensemble", "ensemble_mi"):
        _, _, t = medians(lambda: scores.uncertainty(name, ensemble, x), 1)
        rows.append((f"{name} (5 members)", t))
        total += t
    cpu0 = time.process_time()
    _, _, t_shared = medians(lambda: scores.compute_scores(model, x, single, mahalanobis_stats=stats), 1)
    _, _, t_ens = medians(lambda: scores.compute_scores(ensemble, x, ["ensemble", "ensemble_mi"]), 1)
    cpu = time.process_time() - cpu0
    print(f"\n1. every score on {n} signs, one call each (seconds, lower is better)")
    print(f"{'score':<28}{'time (s)':>10}{'ms / image':>12}")
    for name, t in rows:
        print(f"{name:<28}{t:>10.2f}{1000 * t / n:>12.3f}")
    print(f"{'sum of separate calls':<28}{total:>10.2f}")
    print(f"{'compute_scores (shared)':<28}{t_shared + t_ens:>10.2f}   "
          f"(single network {t_shared:.2f} s + ensemble {t_ens:.2f} s; target <= 30 s for 2 000 signs)")
    print(f"{'  the same, CPU time':<28}{cpu:>10.2f}   (process time: what the work costs when the machine "
          "is shared)")

    # ------------------------------------------------------------------------ 2. loop vs batched
    xl = x[:n_loop]
    cases = [
        ("gradtrust", lambda: loop_gradtrust(model, xl), lambda: trust.gradtrust(model, xl)),
        ("gradtrust (closed form)", lambda: loop_gradtrust(model, xl),
         lambda: trust.gradtrust(model, xl, method="closed_form")),
        ("gradnorm", lambda: loop_gradnorm(model, xl), lambda: trust.gradnorm(model, xl)),
        ("gradnorm (closed form)", lambda: loop_gradnorm(model, xl),
         lambda: trust.gradnorm(model, xl, method="closed_form")),
        ("purview (final layers)", lambda: loop_purview(model, xl), lambda: trust.purview(model, xl)),
        ("odin", lambda: loop_odin(model, xl), lambda: scores.odin(model, xl)),
    ]
    print(f"\n2. per-sample loop (authors' batch size 1) vs batched, {n_loop} signs (seconds, lower is better)")
    print(f"{'score':<26}{'loop':>9}{'batched':>9}{'speed-up':>10}{'max rel diff':>14}")
    for name, loop, batched in cases:
        (_, t_loop), (_, t_batch), o_loop, o_batch = ab(loop, batched, repeats)
        print(f"{name:<26}{t_loop:>9.3f}{t_batch:>9.3f}{t_loop / t_batch:>9.1f}x{rel_diff(o_batch, o_loop):>14.1e}")

    # ------------------------------------------------------------------------------- 3. metrics
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(50_000, 10, generator=g) * 3, 1)
    labels = torch.randint(0, 10, (50_000,), generator=g)
    s = torch.randn(50_000, generator=g, dtype=torch.float64)
    y = torch.rand(50_000, generator=g) < 0.3
    print("\n3. metrics vs peer libraries, 50 000 samples (seconds, lower is better; speed-up = peer / ours)")
    print(f"{'metric':<34}{'ours':>9}{'peer':>9}{'speed-up':>10}{'|diff|':>10}")
    try:
        from torchmetrics.functional.classification import multiclass_calibration_error

        (_, t_o), (_, t_p), o, p = ab(lambda: calibration.ece(probs, labels, 15, rule="torchmetrics"),
                            lambda: multiclass_calibration_error(probs, labels, num_classes=10, n_bins=15),
                            repeats)
        print(f"{'ECE (15 bins) vs torchmetrics':<34}{t_o:>9.4f}{t_p:>9.4f}{t_p / t_o:>9.1f}x{abs(o - float(p)):>10.1e}")
    except ImportError:
        print("ECE vs torchmetrics: skipped (pip install torchmetrics)")
    try:
        from sklearn.metrics import roc_auc_score

        (_, t_o), (_, t_p), o, p = ab(lambda: metrics.auroc(s, y), lambda: roc_auc_score(y.numpy(), s.numpy()), repeats)
        print(f"{'AUROC vs scikit-learn':<34}{t_o:>9.4f}{t_p:>9.4f}{t_p / t_o:>9.1f}x{abs(o - p):>10.1e}")
    except ImportError:
        print("AUROC vs scikit-learn: skipped")
    _, _, t_auac = medians(lambda: metrics.auac(s, y), repeats)
    print(f"{'AUAC (100 percentiles, tie-aware)':<34}{t_auac:>9.4f}{'-':>9}{'-':>10}{'-':>10}")


if __name__ == "__main__":
    main()
