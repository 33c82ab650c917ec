"""The promptable segmenter and the simulated annotators: full objects for ideal prompts, IoU, bad input."""
import warnings

import numpy as np
import pytest
import torch

from inferml_course.intervene import prompting as pr
from inferml_course._core.images import mask_iou


def disc_sign(noise=0.03, seed=0):
    """A red disc with a white bar on a green background (a no-entry sign), its mask and its parts."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    disc = (yy - 15.5) ** 2 + (xx - 16.5) ** 2 <= 10 ** 2
    bar = disc & ((yy - 15.5).abs() <= 2) & ((xx - 16.5).abs() <= 6)
    img = torch.tensor([0.2, 0.6, 0.25]).view(3, 1, 1).expand(3, 32, 32).clone()
    img[:, disc] = torch.tensor([0.8, 0.1, 0.1])[:, None]
    img[:, bar] = torch.tensor([0.95, 0.95, 0.95])[:, None]
    img = (img + noise * torch.randn(img.shape, generator=g)).clamp(0, 1)
    parts = torch.stack([disc & ~bar, bar])
    return img, disc, parts


def test_ideal_prompts_give_the_full_object():
    img, disc, parts = disc_sign()
    points, labels = pr.ideal_prompts(disc, parts[0] | parts[1])
    assert len(points) == 1
    ring_pts, _ = pr.ideal_prompts(disc, parts[0])
    bar_pts, _ = pr.ideal_prompts(disc, parts[1])
    pts = torch.cat([ring_pts, bar_pts])
    mask = pr.segment(img, pts, torch.ones(len(pts), dtype=torch.bool))
    assert mask.dtype == torch.bool and mask.shape == (32, 32)
    assert float(mask_iou(mask, disc)) >= 0.98


def test_one_prompt_on_a_part_selects_that_part():
    img, disc, parts = disc_sign()
    bar_pts, labels = pr.ideal_prompts(disc, parts[1])
    mask = pr.segment(img, bar_pts, labels)
    assert float(mask_iou(mask, parts[1])) >= 0.9  # the ambiguity SAM answers with several masks


def test_negative_prompt_carves_out_a_part():
    img, disc, parts = disc_sign()
    ring_pts, _ = pr.ideal_prompts(disc, parts[0])
    bar_pts, _ = pr.ideal_prompts(disc, parts[1])
    mask = pr.segment(img, torch.cat([ring_pts, bar_pts]), torch.tensor([True, False]))
    assert float(mask_iou(mask, parts[0])) >= 0.9


def test_segment_matches_scikit_image_directly():
    from skimage.segmentation import random_walker

    img, disc, parts = disc_sign(noise=0.08, seed=3)
    seeds = np.zeros((32, 32), np.int32)
    seeds[0, :] = seeds[-1, :] = seeds[:, 0] = seeds[:, -1] = 2
    seeds[15, 16] = 1
    seeds[8, 16] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = random_walker(img.permute(1, 2, 0).double().numpy(), seeds, beta=400, mode="bf", channel_axis=-1)
    ours = pr.segment(img, [(15, 16), (8, 16)], [1, 1], beta=400)
    assert np.array_equal(ours.numpy(), expected == 1)


def test_edge_cases_of_prompts():
    img, disc, _ = disc_sign()
    assert not pr.segment(img, [], []).any()
    assert not pr.segment(img, [(16, 16)], [0]).any()
    # without the implicit frame a lone positive prompt claims everything
    assert pr.segment(img, [(16, 16)], [1], border_background=False).all()
    # a later prompt on the same pixel wins
    a = pr.segment(img, [(16, 16), (16, 16)], [0, 1])
    assert a.any()


def test_mask_iou_of_prompted_masks():
    a = torch.zeros(2, 4, 4, dtype=torch.bool)
    b = a.clone()
    a[0, :2] = True
    b[0, 1:3] = True
    assert torch.allclose(mask_iou(a, b), torch.tensor([1 / 3, 1.0], dtype=torch.float64))


def test_annotators_on_signs():
    from inferml_course import datasets

    test = datasets.load("signs", "test")
    x, m = test.images[:6], test.masks["sign"][:6]
    curves = pr.prompt_curves(x, m, n_prompts=8, seed=0, progress=False)
    assert set(curves) == set(pr.STRATEGIES) and all(c.shape == (6, 8) for c in curves.values())
    summary = pr.curve_summary(curves)
    # the precise annotator that sees the mask reaches (almost) the full sign
    assert summary["well_placed"]["final"] >= 0.9
    assert summary["well_placed"]["final"] >= summary["random"]["final"]
    # simulations are reproducible
    again = pr.prompt_curves(x[:2], m[:2], ["over_prompting", "random"], n_prompts=8, seed=0, progress=False)
    assert torch.equal(again["over_prompting"], curves["over_prompting"][:2])
    assert torch.equal(again["random"], curves["random"][:2])


def test_simulate_annotator_outputs():
    img, disc, _ = disc_sign()
    res = pr.simulate_annotator(img, disc, "over_prompting", n_prompts=5, jitter=1.5, seed=1)
    assert res["points"].shape == (5, 2) and res["labels"].shape == (5,) and res["iou"].shape == (5,)
    assert res["masks"].shape == (5, 32, 32)
    assert bool(res["labels"][0])
    assert torch.allclose(res["iou"][-1], mask_iou(res["masks"][-1], disc).float())


def test_bad_input():
    img, disc, _ = disc_sign()
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        pr.segment(img[None], [(1, 1)], [1])
    with pytest.raises(TypeError, match="floating"):
        pr.segment((img * 255).byte(), [(1, 1)], [1])
    with pytest.raises(ValueError, match="inside the image"):
        pr.segment(img, [(40, 1)], [1])
    with pytest.raises(ValueError, match=r"\(P, 2\)"):
        pr.segment(img, [(1, 2, 3)], [1])
    with pytest.raises(ValueError, match="labels must have shape"):
        pr.segment(img, [(1, 2)], [1, 0])
    with pytest.raises(ValueError, match="positive"):
        pr.segment(img, [(1, 2)], [3])
    with pytest.raises(ValueError, match="integer pixel"):
        pr.segment(img, [(1.5, 2)], [1])
    with pytest.raises(ValueError, match="beta"):
        pr.segment(img, [(1, 2)], [1], beta=-1)
    with pytest.raises(ValueError, match="NaN"):
        pr.segment(torch.full_like(img, float("nan")), [(1, 2)], [1])
    with pytest.raises(ValueError, match="unknown strategy"):
        pr.simulate_annotator(img, disc, "lazy")
    with pytest.raises(ValueError, match="shape"):
        pr.simulate_annotator(img, disc[:5], "random")
    with pytest.raises(TypeError, match="boolean"):
        pr.simulate_annotator(img, disc.float(), "random")
    with pytest.raises(ValueError, match="jitter"):
        pr.simulate_annotator(img, disc, "over_prompting", jitter=-1)
    with pytest.raises(ValueError, match="same shape"):
        mask_iou(disc, disc[:4])
