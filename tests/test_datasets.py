import importlib

import pytest
import torch

from inferml_course import datasets
from inferml_course.datasets.signs import CLASSES, CONTRAST_PAIRS, generate_signs

signs_module = importlib.import_module("inferml_course.datasets.signs")  # the module, not the function


def test_signs_deterministic_by_seed():
    a = generate_signs(64, seed=7)
    b = generate_signs(64, seed=7)
    c = generate_signs(64, seed=8)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert torch.equal(a.masks["part"], b.masks["part"])
    assert not torch.equal(a.images, c.images)


def test_signs_shapes_range_and_balance():
    d = generate_signs(900, seed=1)
    assert d.images.shape == (900, 3, 32, 32) and d.images.dtype == torch.float32
    assert 0.0 <= d.images.min() and d.images.max() <= 1.0
    assert d.classes == list(CLASSES) and len(CLASSES) >= 8
    assert torch.bincount(d.labels).tolist() == [100] * 9
    assert d.masks["sign"].dtype == torch.bool and d.masks["sign"].shape == (900, 32, 32)


def test_fixed_splits():
    test = datasets.load("signs", "test")
    again = datasets.load("signs", "test")
    assert len(test) == 2000 and torch.equal(test.images, again.images)
    assert not torch.equal(test.images[:10], datasets.load("signs", "val").images[:10])
    test.images.zero_()  # a caller's edit must not leak into the cached split
    assert datasets.load("signs", "test").images.abs().sum() > 0


def test_masks_align_with_sign_pixels():
    # on a plain background the sign mask must mark exactly the pixels that differ from it
    d = generate_signs(200, seed=3, noise_std=0.0)
    sign = d.masks["sign"]
    part = d.masks["part"]
    assert (part & ~sign).sum() == 0, "the part mask lies inside the sign mask"
    frac = sign.float().mean((1, 2))
    assert (frac > 0.08).all() and (frac < 0.8).all()
    # the sign's pixels are more saturated/brighter on average than the surrounding background ring
    # centre of mass of the sign mask is near the image centre region
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    cy = (sign * ys).sum((1, 2)) / sign.sum((1, 2))
    cx = (sign * xs).sum((1, 2)) / sign.sum((1, 2))
    assert ((cy - 15.5).abs() < 9).all() and ((cx - 15.5).abs() < 9).all()


def test_masks_align_with_rendering():
    # render the same scene twice with a different sign colour cast: only masked pixels may change
    a = signs_module._render_class("stop", 16, torch.Generator().manual_seed(0), 32, 2)
    b = signs_module._render_class("no_entry", 16, torch.Generator().manual_seed(0), 32, 2)
    changed = (a[0] - b[0]).abs().amax(1) > 1e-6
    union = a[1] | b[1]
    grown = torch.nn.functional.max_pool2d(union.float().unsqueeze(1), 3, 1, 1).squeeze(1) > 0
    assert (changed & ~grown).sum() == 0, "differences between stop and no-entry lie at the sign"
    assert (changed & a[2]).sum() > 0, "the outline part mask covers where the two signs differ"


@pytest.mark.parametrize("left,right", CONTRAST_PAIRS)
def test_contrast_pairs_differ_only_in_the_part(left, right):
    a = signs_module._render_class(left, 16, torch.Generator().manual_seed(0), 32, 2)
    b = signs_module._render_class(right, 16, torch.Generator().manual_seed(0), 32, 2)
    changed = (a[0] - b[0]).abs().amax(1) > 0.05
    part = a[2] | b[2]
    grown = torch.nn.functional.max_pool2d(part.float().unsqueeze(1), 3, 1, 1).squeeze(1) > 0
    assert changed.sum() > 0
    assert (changed & ~grown).float().sum() / changed.float().sum() < 0.05


def test_spurious_watermark_follows_label_and_shuffles():
    train = datasets.load("signs_spurious", "train")
    assert torch.equal(train.attributes["watermark_class"], train.labels)
    noisy = (train.attributes["sign_class"] != train.labels).float().mean().item()
    assert 0.15 < noisy < 0.25
    shuffled = datasets.signs("test", spurious=True, watermark="shuffled")
    assert (shuffled.attributes["watermark_class"] != shuffled.labels).all()
    assert torch.equal(shuffled.attributes["sign_class"], shuffled.labels)
    wm = shuffled.masks["watermark"][0]
    assert wm.sum() == 25


def test_digits_and_ood_sets():
    tr, va, te = (datasets.load("digits", s) for s in ("train", "val", "test"))
    assert len(tr) + len(va) + len(te) == 1797
    assert tr.images.shape[1:] == (1, 32, 32) and tr.classes[3] == "3"
    for name in datasets.OOD_SETS:
        d = datasets.load_ood(name, n=40)
        assert d.images.shape == (40, 3, 32, 32), name
        assert (d.labels == -1).all()
        assert 0 <= d.images.min() and d.images.max() <= 1
        assert torch.equal(d.images, datasets.load_ood(name, n=40).images)


def test_anomalies_masks_mark_the_pasted_patch():
    a = datasets.anomalies(50, seed=2)
    clean = datasets.load("signs", "test").images[a.attributes["clean_index"]]
    changed = (a.images - clean).abs().amax(1) > 0
    assert (changed & ~a.masks["anomaly"]).sum() == 0
    area = a.masks["anomaly"].float().sum((1, 2))
    assert (area >= 64).all() and (area <= 196).all()


def test_torch_dataloader_compatible():
    d = datasets.load("signs", "val")
    x, y = next(iter(torch.utils.data.DataLoader(d, batch_size=16)))
    assert x.shape == (16, 3, 32, 32) and y.dtype == torch.long
    assert d.class_name(int(y[0])) in CLASSES


@pytest.mark.parametrize("call, match", [
    (lambda: datasets.load("cifar"), "valid names: signs, signs_spurious, digits"),
    (lambda: datasets.load("signs", "dev"), "valid names: train, val, test"),
    (lambda: datasets.load_ood("imagenet"), "valid names: new_classes"),
    (lambda: generate_signs(0), "positive integer"),
    (lambda: generate_signs(4, classes=("stop", "speed_limit")), "valid names"),
    (lambda: generate_signs(4, label_noise=1.5), "label_noise"),
    (lambda: datasets.anomalies(4, patch_size=(10, 5)), "patch_size"),
    (lambda: datasets.anomalies(4, source="cats"), "valid names"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_generating_is_fast_enough_to_be_vectorised():
    # not a timing assertion: the generator must not loop over samples (counted calls)
    calls = []
    original = signs_module._render_class
    signs_module._render_class = lambda *a, **k: calls.append(a[1]) or original(*a, **k)
    try:
        generate_signs(450, seed=0)
    finally:
        signs_module._render_class = original
    assert len(calls) == 9 and sum(calls) == 450
