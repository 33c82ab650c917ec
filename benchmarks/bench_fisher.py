"""Speed of the lesson-01/04 machinery, side by side with the obvious per-sample loop.

    python benchmarks/bench_fisher.py            # full run (1 000 images, 10 000 training signs)
    python benchmarks/bench_fisher.py --quick    # smaller sizes, for a smoke test

Rows:

* per-sample gradients of ``signs_cnn`` for 1 000 test images (all parameters, and the last layer
  only): :func:`inferml_course.fisher.per_sample_grads` (``method="auto"``: the closed form of
  :mod:`inferml_course.fisher.closed_form`, one batched forward + backward) against a Python loop of
  batch-1 forward + ``torch.autograd.grad`` calls. Target: ratio >= 10.
* the same call with ``method="vmap"`` (``torch.func``, the route for layers the closed form does
  not cover) as the reference for the closed form, and the closed form against the summed-gradient
  bound below (target: within 1.5 times it).
* two bounds, timed on the same 1 000 images: one batched forward pass without gradients, and one
  batched forward + backward with the gradients summed over the batch (what per-sample gradients cost
  at the very least). Their "ratio" against the loop is the most that ANY batched per-sample method
  could reach on this machine: if the batched forward alone takes more than a tenth of the loop's
  time, the 10x target cannot be met here whatever the implementation.
* the peer library: Opacus's ``GradSampleModule`` (forward/backward hooks with unfold + einsum) on
  the same images, when Opacus is installed. Opacus refuses batch norm, so this row uses a copy of
  signs_cnn without batch norm, normalisation and dropout, for both sides.
* the same for a small MLP on 1 000 vectors, where per-call overhead dominates.
* introspective features of the 10 000 training signs (all K questions): the closed form in
  :func:`inferml_course.introspection.introspective_features` against K autograd backward passes
  per image (extrapolated from a subset). Target: the closed form <= 20 s.

Every row checks that both routes agree before it reports a time. Timings are the best of
``--repeat`` runs after one warm-up.
"""
from __future__ import annotations

import argparse
import copy

import torch
import torch.nn.functional as F
from torch import nn

from _timing import best_wall
from inferml_course import config, datasets, fisher, introspection, models


def loop_grads(model, x, y, params):
    rows = []
    for i in range(x.shape[0]):
        loss = F.cross_entropy(model(x[i:i + 1]), y[i:i + 1])
        rows.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)]))
    return torch.stack(rows)


@torch.no_grad()
def batched_forward(model, x, batch_size=256):
    for start in range(0, x.shape[0], batch_size):
        model(x[start:start + batch_size])


def batched_summed_grads(model, x, y, batch_size=256):
    params = list(model.parameters())
    for start in range(0, x.shape[0], batch_size):
        loss = F.cross_entropy(model(x[start:start + batch_size]), y[start:start + batch_size], reduction="sum")
        torch.autograd.grad(loss, params)


def opacus_comparison(model, x, y, repeat, batch_size=128):
    """Ours vs Opacus's GradSampleModule (hooks + unfold/einsum), the peer library, on the same images.

    Opacus refuses batch-norm layers (and needs train mode to record activations), so both run on a
    copy of the model with batch norm, normalisation and dropout replaced by identities. Returns a
    table row, or None when Opacus is not installed (``pip install opacus``).
    """
    try:
        from opacus import GradSampleModule
    except ImportError:
        print("opacus not installed: the peer-library row is skipped (pip install opacus)")
        return None
    plain = copy.deepcopy(model)
    for block in (plain.features.block1, plain.features.block2, plain.features.block3):
        block.bn1, block.bn2 = nn.Identity(), nn.Identity()
    plain.normalize, plain.classifier.dropout1, plain.classifier.dropout2 = nn.Identity(), nn.Identity(), nn.Identity()
    peer = GradSampleModule(copy.deepcopy(plain), batch_first=True, loss_reduction="sum").train()

    def opacus_grads():
        out = []
        for start in range(0, x.shape[0], batch_size):
            for p in peer.parameters():
                p.grad_sample, p.grad = None, None
            F.cross_entropy(peer(x[start:start + batch_size]), y[start:start + batch_size], reduction="sum").backward()
            out.append(torch.cat([p.grad_sample.flatten(1) for p in peer.parameters()], 1))
        return torch.cat(out)

    assert torch.allclose(opacus_grads()[:20], fisher.per_sample_grads(plain, x[:20], y[:20]), atol=1e-4)
    t_peer = best_wall(opacus_grads, repeat)
    t_ours = best_wall(lambda: fisher.per_sample_grads(plain, x, y, batch_size=batch_size), repeat)
    return (f"per-sample grads, signs_cnn without batch norm, {x.shape[0]} images: Opacus as reference",
            t_peer, t_ours, "peer library")


def loop_question_grads(model, x):
    fc = model.last_layer
    out = []
    for i in range(x.shape[0]):
        z = model(x[i:i + 1])
        k = z.shape[1]
        total_w, total_b = 0, 0
        for q in range(k):
            gw, gb = torch.autograd.grad(F.cross_entropy(z, torch.tensor([q], device=x.device)), [fc.weight, fc.bias],
                                         retain_graph=q < k - 1)
            total_w, total_b = total_w + gw, total_b + gb
        out.append(torch.cat([total_w.flatten(), total_b]))
    return torch.stack(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    device = config.default_device()
    n = 200 if args.quick else 1000
    n_train = 2000 if args.quick else 10000
    torch.manual_seed(0)

    model = models.load_model("signs_cnn", device=device)
    test = datasets.load("signs", "test")
    x, y = test.images[:n].to(device), test.labels[:n].to(device)
    rows = []

    for label, params in [("all parameters", None), ("last layer", "last_layer")]:
        chosen = list(fisher.select_parameters(model, params).values())
        fast = fisher.per_sample_grads(model, x[:20], y[:20], params=params)
        assert torch.allclose(fast, loop_grads(model, x[:20], y[:20], chosen), atol=1e-5), label
        t_loop = best_wall(lambda: loop_grads(model, x, y, chosen), args.repeat)
        t_fast = best_wall(lambda: fisher.per_sample_grads(model, x, y, params=params), args.repeat)
        size = sum(p.numel() for p in chosen)
        rows.append((f"per-sample grads, signs_cnn, {label} ({size} params), {n} images", t_loop, t_fast,
                     "ratio >= 10"))
        if params is None:
            t_all_loop, t_all_fast = t_loop, t_fast
            assert torch.allclose(fast, fisher.per_sample_grads(model, x[:20], y[:20], method="vmap"), atol=1e-5)
            t_vmap = best_wall(lambda: fisher.per_sample_grads(model, x, y, method="vmap"), args.repeat)

    # Lower bounds on the time of ANY batched per-sample-gradient method for the same images: it must at
    # least run the network forward over them, and per-sample gradients cost at least a batched backward.
    t_forward = best_wall(lambda: batched_forward(model, x), args.repeat)
    t_summed = best_wall(lambda: batched_summed_grads(model, x, y), args.repeat)
    rows.append((f"  bound: batched forward only, no gradients, {n} images", t_all_loop, t_forward,
                 "the most any method can reach"))
    rows.append(("  bound: batched forward + backward, summed (not per-sample) grads", t_all_loop, t_summed,
                 "the most a backward-based method can reach"))
    rows.append(("per-sample grads, all parameters: ref = torch.func vmap, ours = closed form", t_vmap, t_all_fast,
                 "ratio >= 1"))
    rows.append(("per-sample grads, all parameters: ref = the summed-grads bound, ours = closed form", t_summed,
                 t_all_fast, "ratio >= 0.67 (<= 1.5x the bound)"))

    opacus_row = opacus_comparison(model, x, y, args.repeat)
    if opacus_row is not None:
        rows.append(opacus_row)

    mlp = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 5)).to(device).eval()
    xv = torch.randn(n, 20, device=device)
    yv = torch.randint(0, 5, (n,), device=device)
    params = list(mlp.parameters())
    assert torch.allclose(fisher.per_sample_grads(mlp, xv[:20], yv[:20]), loop_grads(mlp, xv[:20], yv[:20], params),
                          atol=1e-5)
    rows.append((f"per-sample grads, MLP 20-64-64-5, {n} vectors",
                 best_wall(lambda: loop_grads(mlp, xv, yv, params), args.repeat),
                 best_wall(lambda: fisher.per_sample_grads(mlp, xv, yv), args.repeat), "ratio >= 10"))

    train = datasets.load("signs", "train")
    xt = train.images[:n_train].to(device)
    closed = introspection.introspective_features(model, xt[:20])
    assert torch.allclose(closed, loop_question_grads(model, xt[:20]), atol=1e-5)
    subset = 200 if args.quick else 500
    t_loop_subset = best_wall(lambda: loop_question_grads(model, xt[:subset]), 1)
    t_closed = best_wall(lambda: introspection.introspective_features(model, xt), args.repeat)
    rows.append((f"introspective features, all 9 questions, {n_train} signs (loop extrapolated from {subset})",
                 t_loop_subset * n_train / subset, t_closed, "ours <= 20 s"))

    print(f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, best of {args.repeat}; "
          "ref = the batch-1 loop unless the row names another reference")
    width = max(len(r[0]) for r in rows)
    print(f"{'task'.ljust(width)} |  ref (s) | ours (s) | ratio (higher is better) | target")
    print("-" * (width + 60))
    for name, t_ref, t_ours, target in rows:
        print(f"{name.ljust(width)} | {t_ref:8.3f} | {t_ours:8.3f} | {t_ref / t_ours:24.1f} | {target}")


if __name__ == "__main__":
    main()
