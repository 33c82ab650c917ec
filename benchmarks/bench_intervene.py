"""Lesson 09 timings, side by side with the peer implementation where there is one.

Run: python benchmarks/bench_intervene.py [--device cuda] [--repeat 3]

* FGSM and PGD (L-infinity, 10 steps, no random start) against torchattacks 3.5 on the same model
  and images (the results are identical, see tests/test_intervene_adversarial.py);
* RISE + SHAPE from one set of masked forward passes (``causal.rise_and_shape``) against
  ``explain.rise`` followed by ``causal.shape`` (two sets);
* the promptable segmenter against a direct ``skimage.segmentation.random_walker`` call;
* one membership experiment (target + 3 shadows + attacks), the lesson's most expensive cell.

Ratios are ours / peer: below 1 means we are faster.
"""
import argparse
import warnings

import numpy as np
import torch

from _timing import best_wall


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--images", type=int, default=64)
    args = parser.parse_args()

    from inferml_course import datasets, explain, models
    from inferml_course.intervene import adversarial, causal, membership, prompting

    device = torch.device(args.device)
    model = models.load_model("signs_cnn", device)
    test = datasets.load("signs", "test")
    x, y = test.images[:args.images].to(device), test.labels[:args.images].to(device)
    rows = []

    try:
        import torchattacks
    except ImportError:
        torchattacks = None
    fgsm_ours = best_wall(lambda: adversarial.fgsm(model, x, y), args.repeat)
    pgd_ours = best_wall(lambda: adversarial.pgd(model, x, y, steps=10, random_start=False), args.repeat)
    if torchattacks is not None:
        ta_fgsm = torchattacks.FGSM(model, eps=8 / 255)
        ta_pgd = torchattacks.PGD(model, eps=8 / 255, alpha=2 / 255, steps=10, random_start=False)
        rows.append((f"FGSM, {len(x)} signs", fgsm_ours, "torchattacks.FGSM",
                     best_wall(lambda: ta_fgsm(x, y), args.repeat)))
        rows.append((f"PGD 10 steps, {len(x)} signs", pgd_ours, "torchattacks.PGD",
                     best_wall(lambda: ta_pgd(x, y), args.repeat)))
    else:
        rows.append((f"FGSM, {len(x)} signs", fgsm_ours, "torchattacks (not installed)", float("nan")))
        rows.append((f"PGD 10 steps, {len(x)} signs", pgd_ours, "torchattacks (not installed)", float("nan")))

    xm = x[:8]
    both = best_wall(lambda: causal.rise_and_shape(model, xm, n_masks=500), args.repeat)
    separate = best_wall(lambda: (explain.rise(model, xm, n_masks=500), causal.shape(model, xm, n_masks=500)),
                       args.repeat)
    rows.append(("RISE + SHAPE, 8 signs x 500 masks (shared passes)", both, "explain.rise + causal.shape", separate))

    from skimage.segmentation import random_walker

    image = test.images[4]
    points, labels = [(16, 16), (10, 12), (0, 0)], [1, 1, 0]
    seeds = np.zeros((32, 32), np.int32)
    seeds[0, :] = seeds[-1, :] = seeds[:, 0] = seeds[:, -1] = 2
    seeds[16, 16] = seeds[10, 12] = 1
    data = image.permute(1, 2, 0).double().numpy()

    def direct():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(20):
                random_walker(data, seeds, beta=400, mode="bf", channel_axis=-1)

    rows.append(("segment x 20 (3 prompts)", best_wall(lambda: [prompting.segment(image, points, labels)
                                                            for _ in range(20)], args.repeat),
                 "skimage random_walker x 20", best_wall(direct, args.repeat)))

    pool = datasets.generate_signs(2400, seed=7)
    t = best_wall(lambda: membership.membership_experiment(pool.images, pool.labels, "overfit", n_members=300,
                                                         n_shadow=3, progress=False), 1)
    rows.append(("membership experiment (overfit, 1 target + 3 shadows)", t, "", float("nan")))

    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads, best of {args.repeat}\n")
    print("| ours | time | peer | time | ratio (ours / peer) |\n|---|---|---|---|---|")
    for name, ours, peer, theirs in rows:
        ratio = ours / theirs if theirs == theirs else float("nan")
        peer_time = f"{theirs:.3f} s" if theirs == theirs else ""
        print(f"| {name} | {ours:.3f} s | {peer} | {peer_time} | {ratio:.2f} |" if ratio == ratio
              else f"| {name} | {ours:.3f} s | {peer} | {peer_time} | |")


if __name__ == "__main__":
    main()
