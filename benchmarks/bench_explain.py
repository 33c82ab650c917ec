"""Time inferml_course.explain against Captum on the same model, batch and settings (A/B in one run).

    python benchmarks/bench_explain.py                 # signs_cnn (batch 64), ResNet-18 and ResNet-50 (224 px)
    python benchmarks/bench_explain.py --quick         # fewer repeats, smaller ResNet-18 batch
    python benchmarks/bench_explain.py --models signs  # only the small CNN
    python benchmarks/bench_explain.py --models resnet50 --quick   # ResNet-50, batch 8, one repeat
    python benchmarks/bench_explain.py --models resnet50 --methods saliency,grad_cam --repeats 9

Each method runs with identical settings on both sides (explicit targets, the same steps, samples,
windows, baselines and superpixels); calls alternate between the two libraries, in alternating order
(A B, B A, ...), so that a busy machine and the order effect slow both alike, and the medians of the repeats are reported, in CPU time of the process
(one torch thread by default, so CPU time is the work done; far steadier than wall time on a shared
machine) and in wall time. "speed-up" = Captum's time / ours (> 1: we are faster). "max |diff|" compares the two outputs where the method is the same
computation (stochastic methods and different surrogate fits: "n/a"). Needs captum (``pip install
inferml-course[bench]``) and torchvision.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from _timing import ab
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inferml_course import explain  # noqa: E402


def cases(model, x, t, layer, cfg):
    """(name, ours, captum, comparable output transform or None) for every shared method."""
    import captum.attr as ca

    c = x.shape[1]
    base = explain.perturbation.resolve_baseline(model, x, "mean").expand_as(x).contiguous()
    win, stride = cfg["window"], cfg["stride"]
    n_windows = explain.perturbation.occlusion_windows(x.shape[-2:], (win, win), (stride, stride)).shape[0]
    seg = explain.superpixels(x[:cfg["surrogate_batch"]], n_segments=16)
    xs, ts = x[:cfg["surrogate_batch"]], t[:cfg["surrogate_batch"]]

    def up(a):
        return F.interpolate(a, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]

    def prob_model(inp):
        return torch.softmax(model(inp), 1)

    return [
        ("saliency", lambda: explain.saliency(model, x, t, channels="keep"),
         lambda: ca.Saliency(model).attribute(x, target=t, abs=False), True),
        ("input_x_gradient", lambda: explain.input_x_gradient(model, x, t, channels="keep"),
         lambda: ca.InputXGradient(model).attribute(x, target=t), True),
        ("guided_backprop", lambda: explain.guided_backprop(model, x, t, channels="keep"),
         lambda: ca.GuidedBackprop(model).attribute(x, target=t), True),
        ("deconvnet", lambda: explain.deconvnet(model, x, t, channels="keep"),
         lambda: ca.Deconvolution(model).attribute(x, target=t), True),
        (f"integrated_gradients ({cfg['steps']} steps, Gauss-Legendre)",
         lambda: explain.integrated_gradients(model, x, t, steps=cfg["steps"], channels="keep"),
         lambda: ca.IntegratedGradients(model).attribute(x, target=t, n_steps=cfg["steps"]), True),
        (f"smoothgrad ({cfg['samples']} samples)",
         lambda: explain.smoothgrad(model, x, t, samples=cfg["samples"], noise=0.1, noise_type="absolute",
                                    channels="keep"),
         lambda: ca.NoiseTunnel(ca.Saliency(model)).attribute(x, target=t, nt_samples=cfg["samples"], stdevs=0.1,
                                                               nt_type="smoothgrad", abs=False), False),
        (f"occlusion ({n_windows} windows; Captum perturbations_per_eval=1, its default)",
         lambda: explain.occlusion(model, x, t, window=win, stride=stride, output="logit"),
         lambda: ca.Occlusion(model).attribute(x, sliding_window_shapes=(c, win, win), strides=(c, stride, stride),
                                               baselines=base, target=t)[:, 0], True),
        (f"occlusion ({n_windows} windows; Captum perturbations_per_eval={n_windows})",
         lambda: explain.occlusion(model, x, t, window=win, stride=stride, output="logit"),
         lambda: ca.Occlusion(model).attribute(x, sliding_window_shapes=(c, win, win), strides=(c, stride, stride),
                                               baselines=base, target=t, perturbations_per_eval=n_windows)[:, 0],
         True),
        ("grad_cam (+ bilinear upsampling)", lambda: explain.grad_cam(model, x, t, layer=layer),
         lambda: up(ca.LayerGradCam(model, layer).attribute(x, target=t, relu_attributions=True)), True),
        (f"lime ({cfg['surrogate_samples']} samples, {xs.shape[0]} images)",
         lambda: explain.lime(model, xs, ts, samples=cfg["surrogate_samples"], segments=seg),
         lambda: ca.Lime(prob_model).attribute(xs, target=ts, n_samples=cfg["surrogate_samples"],
                                               feature_mask=seg[:, None], baselines=base[:xs.shape[0]],
                                               perturbations_per_eval=cfg["surrogate_samples"]), False),
        (f"kernel_shap ({cfg['surrogate_samples']} samples, {xs.shape[0]} images)",
         lambda: explain.kernel_shap(model, xs, ts, samples=cfg["surrogate_samples"], segments=seg),
         lambda: ca.KernelShap(prob_model).attribute(xs, target=ts, n_samples=cfg["surrogate_samples"],
                                                     feature_mask=seg[:, None], baselines=base[:xs.shape[0]],
                                                     perturbations_per_eval=cfg["surrogate_samples"]), False),
    ]


def setups(names, quick):
    from inferml_course.datasets import load
    from inferml_course.models import load_model

    out = []
    if "signs" in names:
        model = load_model("signs_cnn", device="cpu")
        x = load("signs", "test").images[:64]
        cfg = {"steps": 50, "samples": 25, "window": 8, "stride": 4, "surrogate_batch": 8,
               "surrogate_samples": 200, "repeats": 3 if quick else 7}
        out.append(("signs_cnn, 64 x 3 x 32 x 32", model, x, model.cam_layer, cfg))
    for arch, n_full in (("resnet18", 4), ("resnet50", 8)):
        if arch not in names:
            continue
        from inferml_course.online import imagenet_model

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = imagenet_model(arch, pretrained=False)  # ImageNet normalisation inside: baseline "mean"
        n = 2 if quick and arch == "resnet18" else n_full
        signs = load("signs", "test").images[:n]  # real structure, so superpixels are meaningful
        x = F.interpolate(signs, size=(224, 224), mode="bilinear", align_corners=False)
        cfg = {"steps": 16, "samples": 8, "window": 56, "stride": 28, "surrogate_batch": 2, "surrogate_samples": 50,
               "repeats": 1 if quick else 3}
        title = {"resnet18": "ResNet-18", "resnet50": "ResNet-50"}[arch]
        out.append((f"{title} (random weights), {n} x 3 x 224 x 224 (signs upsampled)", model, x,
                    model.net.layer4, cfg))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="signs,resnet18,resnet50",
                        help="comma-separated: signs, resnet18, resnet50")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and a smaller ResNet batch")
    parser.add_argument("--methods", default=None,
                        help="comma-separated name prefixes, e.g. saliency,grad_cam (default: every method)")
    parser.add_argument("--repeats", type=int, default=None, help="alternating repeats (default 7; --quick 3, "
                        "ResNets 3; --quick 1)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch.set_num_threads (default 1, so that CPU time measures the work)")
    args = parser.parse_args(argv)
    try:
        import captum
    except ImportError:
        sys.exit("captum is not installed: pip install 'inferml-course[bench]'")
    warnings.filterwarnings("ignore", category=UserWarning)  # Captum's per-call hook and batch notices
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, captum {captum.__version__}, {torch.get_num_threads()} CPU threads\n")
    print("| model | method | ours, CPU ms | Captum, CPU ms | speed-up (CPU) | speed-up (wall) | max abs diff |")
    print("|---|---|---:|---:|---:|---:|---:|")
    ratios = []
    for title, model, x, layer, cfg in setups(args.models.split(","), args.quick):
        with torch.no_grad():
            t = model(x).argmax(1)
        for name, ours, theirs, comparable in cases(model, x, t, layer, cfg):
            if args.methods and not name.startswith(tuple(args.methods.split(","))):
                continue
            (c_o, w_o), (c_c, w_c), out_o, out_c = ab(ours, theirs, args.repeats or cfg["repeats"])
            diff = f"{(out_o.float() - out_c.detach().float()).abs().max().item():.1e}" if comparable else "n/a"
            ratios.append(c_c / c_o)
            print(f"| {title} | {name} | {1e3 * c_o:.1f} | {1e3 * c_c:.1f} | {c_c / c_o:.2f}x | {w_c / w_o:.2f}x "
                  f"| {diff} |", flush=True)
    print(f"\nslowest relative to Captum (CPU time): {min(ratios):.2f}x. speed-up = Captum's time / ours "
          "(> 1: we are faster); medians of alternating runs; CPU time = this process's CPU seconds, which a "
          "busy shared machine disturbs far less than wall time.")


if __name__ == "__main__":
    main()
