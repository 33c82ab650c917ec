"""Every batched method against its forward-pass floor and against the peer library, in one run.

    python benchmarks/bench_batched.py            # the sizes of issue 16 (about 3 minutes on 2 CPU cores)
    python benchmarks/bench_batched.py --quick    # fewer images, one repeat

For each method the **floor** is the same number of forward images (forward + backward to the input for
the gradient methods) through the same model with nothing else: chunks of images built once, before the
clock starts, in the fastest of a few chunk sizes, in the memory layout the methods use
(:func:`inferml_course._core.adapter.forward_images`: channels-last on a CPU). ``ours / floor`` is what image building, chunking
and bookkeeping add (target: at most 1.1x). The **peer** runs the same work where a library has the
same method, with the settings that make the outputs equal (checked, "max |diff|"):

* deletion: Quantus 0.6 ``PixelFlipping`` (black substrate, ``features_in_step`` = pixels / steps,
  softmax) on ``digits_cnn``; its curve is ours without the unperturbed first point;
* occlusion: Captum ``Occlusion`` with every window of an image in one pass (``perturbations_per_eval``),
  logits; Captum's ``FeatureAblation`` is the same code path (``Occlusion`` subclasses it);
* LIME and Kernel SHAP: Captum ``Lime`` / ``KernelShap`` on the same superpixels, samples and baseline
  (different surrogate fits and random coalitions: times only);
* integrated gradients: Captum ``IntegratedGradients`` (its Gauss-Legendre rule is ours);
* SmoothGrad: Captum ``NoiseTunnel(Saliency)`` with absolute noise (different noise draws: times only).

Calls of one row alternate (ours, floor, peer, ours, ...) so that a busy machine slows them alike;
medians of the repeats, wall-clock seconds with torch's default threads. Needs captum and quantus
(``pip install 'inferml-course[bench]'``) for the peer columns; without them those columns say so.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import warnings
from pathlib import Path

import torch

from _timing import timed
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inferml_course import datasets, evaluate, explain  # noqa: E402
from inferml_course._core import batching  # noqa: E402
from inferml_course._core.adapter import forward_images  # noqa: E402
from inferml_course.models import load_model  # noqa: E402

FLOOR_CHUNKS = (64, 128, 256)


def floor_fn(model, x, count, backward):
    """Push ``count`` images like ``x`` (N, C, H, W) through ``model`` (and back to the input when
    ``backward``), in the fastest chunk of :data:`FLOOR_CHUNKS` or ``"auto"``'s choice; images built once."""
    auto = batching.auto_batch_size(model, x, work=count, backward=backward)
    pool = x[torch.arange(max(FLOOR_CHUNKS + (auto,)), device=x.device) % x.shape[0]].contiguous()

    def run(chunk):
        left = count
        while left > 0:
            part = pool[:min(chunk, left)]
            if backward:
                part = part.clone().requires_grad_(True)
                torch.autograd.grad(forward_images(model, part).sum(), part)
            else:
                with torch.no_grad():
                    forward_images(model, part)  # the layout the methods use (channels-last on a CPU)
            left -= part.shape[0]

    best = min(sorted(set(FLOOR_CHUNKS + (auto,))), key=lambda c: min(timed(lambda: run(c))[2] for _ in range(2)))
    return lambda: run(best)


def rotate(fns, repeats):
    """Median wall seconds and last output of each callable, called in turn after one warm-up each."""
    for fn in fns:
        fn()
    walls, outs = [[] for _ in fns], [None] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            outs[i], _, wall = timed(fn)
            walls[i].append(wall)
    return [statistics.median(w) for w in walls], outs


def quantus_deletion(model, x, maps, t, steps):
    import quantus

    metric = quantus.PixelFlipping(features_in_step=x[0, 0].numel() // steps, perturb_baseline=0.0,
                                   normalise=False, disable_warnings=True)
    xs, ys, a = x.numpy(), t.numpy(), maps[:, None].numpy()
    return lambda: torch.tensor(metric(model=model, x_batch=xs, y_batch=ys, a_batch=a, device="cpu",
                                       channel_first=True, softmax=True, batch_size=len(xs)))


def rows(quick):
    """(model, method, ours, forward images, backward?, peer or None, peer name, compare?) per batched method."""
    import importlib.util

    captum = importlib.util.find_spec("captum") is not None
    quantus = importlib.util.find_spec("quantus") is not None
    if captum:
        import captum.attr as ca
    signs, digits = load_model("signs_cnn", device="cpu"), load_model("digits_cnn", device="cpu")
    x_all = datasets.load("signs", "test").images
    xd = datasets.load("digits", "test").images[:30 if quick else 100]
    n = 16 if quick else 64
    xs = x_all[:n]
    with torch.no_grad():
        ts, td = signs(xs).argmax(1), digits(xd).argmax(1)
    base = explain.perturbation.resolve_baseline(signs, xs, "mean").expand_as(xs).contiguous()
    rng = torch.Generator().manual_seed(0)
    out = []

    many = x_all[torch.arange(1600 if quick else 6400) % len(x_all)]
    out.append(("signs_cnn", f"predict_logits ({len(many)} images; accuracy, corruption tables)",
                lambda: signs_logits(signs, many), len(many), False, None, "", False))

    steps = 64
    maps = torch.rand(xd.shape[0], 32, 32, generator=rng)
    out.append(("digits_cnn", f"deletion ({len(xd)} images x {steps} steps, black)",
                lambda: evaluate.insertion_deletion(digits, xd, maps, td, steps=steps, substrate="black",
                                                    games=("deletion",)).deletion["map"][:, 1:],
                len(xd) * (steps + 1), False,
                quantus_deletion(digits, xd, maps, td, steps) if quantus else None, "Quantus PixelFlipping", True))
    sign_maps = torch.rand(n, 32, 32, generator=rng)
    out.append(("signs_cnn", f"insertion + deletion ({n} images x {steps} steps, blur)",
                lambda: evaluate.insertion_deletion(signs, xs, sign_maps, ts, steps=steps), n * 2 * steps, False,
                None, "", False))

    m = n // 2 if quick else 40
    windows = explain.perturbation.occlusion_windows((32, 32), (8, 8), (2, 2)).shape[0]
    per_eval = max(1, 128 // m)
    out.append(("signs_cnn", f"occlusion ({m} images x {windows} windows)",
                lambda: explain.occlusion(signs, xs[:m], ts[:m], window=8, stride=2, output="logit"),
                m * (windows + 1), False,
                (lambda: ca.Occlusion(signs).attribute(xs[:m], sliding_window_shapes=(3, 8, 8), strides=(3, 2, 2),
                                                        baselines=base[:m], target=ts[:m],
                                                        perturbations_per_eval=per_eval)[:, 0]) if captum else None,
                f"Captum Occlusion (perturbations_per_eval={per_eval})", True))

    r = 4 if quick else 8
    out.append(("signs_cnn", f"RISE ({r} images x 1000 masks)", lambda: explain.rise(signs, xs[:r], ts[:r]),
                r * 1001, False, None, "", False))

    k = 4 if quick else 16
    seg = explain.superpixels(xs[:k], n_segments=16)

    def prob(inp):
        return torch.softmax(signs(inp), 1)

    for name, ours, peer in (("LIME", explain.lime, "Lime"), ("Kernel SHAP", explain.kernel_shap, "KernelShap")):
        out.append(("signs_cnn", f"{name} ({k} images x 200 samples)",
                    lambda ours=ours: ours(signs, xs[:k], ts[:k], samples=200, segments=seg), k * 201, False,
                    (lambda peer=peer: getattr(ca, peer)(prob).attribute(
                        xs[:k], target=ts[:k], n_samples=200, feature_mask=seg[:, None], baselines=base[:k],
                        perturbations_per_eval=128)) if captum else None,
                    f"Captum {peer} (perturbations_per_eval=128)", False))

    out.append(("signs_cnn", f"integrated gradients ({n} images x 50 steps)",
                lambda: explain.integrated_gradients(signs, xs, ts, steps=50, channels="keep"), n * 50, True,
                (lambda: ca.IntegratedGradients(signs).attribute(xs, target=ts, n_steps=50, internal_batch_size=128))
                if captum else None, "Captum IntegratedGradients (internal_batch_size=128)", True))
    out.append(("signs_cnn", f"SmoothGrad ({n} images x 25 samples)",
                lambda: explain.smoothgrad(signs, xs, ts, samples=25, noise=0.1, noise_type="absolute",
                                           channels="keep"), n * 25, True,
                (lambda: ca.NoiseTunnel(ca.Saliency(signs)).attribute(
                    xs, target=ts, nt_samples=25, stdevs=0.1, nt_type="smoothgrad", abs=False,
                    nt_samples_batch_size=max(1, 128 // n))) if captum else None,
                f"Captum NoiseTunnel(Saliency) (nt_samples_batch_size={max(1, 128 // n)})", False))
    return out, xs


def signs_logits(model, images):
    from inferml_course.models.training import predict_logits

    return predict_logits(model, images)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer images and one repeat")
    parser.add_argument("--repeats", type=int, default=None, help="alternating repeats (default 5; --quick 1)")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 5)
    warnings.filterwarnings("ignore")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {repeats} repeats, wall seconds\n")
    print("| model | method | ours, s | floor, s | ours / floor | peer | peer, s | ours / peer | max abs diff |")
    print("|---|---|---:|---:|---:|---|---:|---:|---:|")
    table, xs = rows(args.quick)
    for model_name, method, ours, count, backward, peer, peer_name, compare in table:
        model = load_model(model_name, device="cpu")
        probe = xs if model_name == "signs_cnn" else datasets.load("digits", "test").images[:8]
        fns = [ours, floor_fn(model, probe, count, backward)] + ([peer] if peer is not None else [])
        times, outs = rotate(fns, repeats)
        if peer is None:
            peer_cols = f"{peer_name or '-'} | - | - | -"
        else:
            diff = (f"{(outs[0].float() - outs[2].detach().float()).abs().max().item():.1e}" if compare else "n/a")
            peer_cols = f"{peer_name} | {times[2]:.2f} | {times[0] / times[2]:.2f}x | {diff}"
        print(f"| {model_name} | {method} | {times[0]:.2f} | {times[1]:.2f} | {times[0] / times[1]:.2f}x | "
              f"{peer_cols} |", flush=True)
    print("\nfloor = the same forward images (and backward passes) through the model, images built beforehand; "
          "ours / peer < 1: we are faster. Medians of alternating calls.")


if __name__ == "__main__":
    main()
