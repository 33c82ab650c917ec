"""Tests for inferml_course.datasets.corruptions (CIFAR-10-C style corruptions, 5 severities)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from inferml_course.datasets._base import ImageDataset
from inferml_course.datasets.corruptions import (
    CIFAR_C_PARAMS, CORRUPTIONS, EXTRA_PARAMS, SEVERITIES, corrupt, corrupted,
)

RANDOM = ("gaussian_noise", "shot_noise", "impulse_noise", "motion_blur", "fog", "snow", "occlusion")
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
ALL = [(name, s) for name in CORRUPTIONS for s in SEVERITIES]


@pytest.fixture(scope="module")
def natural() -> torch.Tensor:
    """64 natural-looking 3x32x32 images: random crops of three scikit-image photos, area-resized."""
    from skimage import data

    gen = torch.Generator().manual_seed(0)
    out = []
    for photo in (data.astronaut(), data.chelsea(), data.coffee()):
        img = torch.from_numpy(np.ascontiguousarray(photo)).permute(2, 0, 1).float() / 255
        h, w = img.shape[1:]
        for _ in range(22):
            size = int(torch.randint(64, min(h, w, 192) + 1, (1,), generator=gen))
            top = int(torch.randint(0, h - size + 1, (1,), generator=gen))
            left = int(torch.randint(0, w - size + 1, (1,), generator=gen))
            crop = img[None, :, top:top + size, left:left + size]
            out.append(F.interpolate(crop, size=(32, 32), mode="area"))
    return torch.cat(out)[:64].clamp(0, 1)


@pytest.fixture(scope="module")
def small(natural) -> torch.Tensor:
    return natural[:6].clone()


def test_tables():
    assert len(CORRUPTIONS) == 14 and SEVERITIES == (1, 2, 3, 4, 5)
    for name in CORRUPTIONS:
        table = CIFAR_C_PARAMS.get(name, EXTRA_PARAMS.get(name))
        assert table is not None and len(table) == 5, name
    assert set(CIFAR_C_PARAMS) | set(EXTRA_PARAMS) == set(CORRUPTIONS)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name,severity", ALL)
def test_contract(small, name, severity, device):
    x = small.to(device)
    y = corrupt(x, name, severity, seed=3)
    assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
    assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
    assert torch.equal(y, corrupt(x, name, severity, seed=3)), "not deterministic for a fixed seed"
    assert not torch.equal(y, x), "corruption did nothing"
    if name in RANDOM:
        assert not torch.equal(y, corrupt(x, name, severity, seed=4)), "seed has no effect"


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_float64_and_grayscale(small, name):
    x64 = small.double()
    y = corrupt(x64, name, 3)
    assert y.dtype == torch.float64 and y.min() >= 0 and y.max() <= 1
    gray = small.mean(1, keepdim=True)
    g = corrupt(gray, name, 4, seed=1)
    assert g.shape == gray.shape and g.min() >= 0 and g.max() <= 1
    odd = corrupt(small[:, :, :7, :13], name, 5)           # tiny, non-square images
    assert odd.shape == (6, 3, 7, 13) and odd.min() >= 0 and odd.max() <= 1


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_severity_ordering(natural, name):
    dist = [(corrupt(natural, name, s, seed=0) - natural).flatten(1).norm(dim=1).mean().item()
            for s in SEVERITIES]
    assert all(a < b for a, b in zip(dist, dist[1:])), (name, dist)


def test_contrast_closed_form(natural):
    for s, c in zip(SEVERITIES, CIFAR_C_PARAMS["contrast"]):
        m = natural.mean(dim=(2, 3), keepdim=True)
        torch.testing.assert_close(corrupt(natural, "contrast", s), ((natural - m) * c + m).clamp(0, 1))


def test_brightness_hsv(natural):
    from skimage.color import hsv2rgb, rgb2hsv

    x = natural[:8].double().clone()
    x[0, :, :4, :4] = 0                                      # black pixels become (dv, dv, dv)
    for s, dv in zip(SEVERITIES, CIFAR_C_PARAMS["brightness"]):
        y = corrupt(x, "brightness", s)
        v = x.amax(1, keepdim=True)
        closed = torch.where(v > 0, x * (v + dv).clamp(max=1) / v.clamp_min(1e-300), torch.full_like(x, dv))
        torch.testing.assert_close(y, closed, rtol=0, atol=1e-12)
        hsv = rgb2hsv(x.permute(0, 2, 3, 1).numpy(), channel_axis=-1)
        hsv[..., 2] = np.clip(hsv[..., 2] + dv, 0, 1)
        oracle = torch.from_numpy(hsv2rgb(hsv, channel_axis=-1)).permute(0, 3, 1, 2)
        torch.testing.assert_close(y, oracle, rtol=0, atol=1e-9)


def test_decolorization(natural):
    y = corrupt(natural, "decolorization", 5)
    assert torch.allclose(y[:, 0], y[:, 1]) and torch.allclose(y[:, 1], y[:, 2])
    luma = 0.299 * natural[:, 0] + 0.587 * natural[:, 1] + 0.114 * natural[:, 2]
    torch.testing.assert_close(y[:, 0], luma)
    half = corrupt(natural, "decolorization", 3)            # weight 0.6
    torch.testing.assert_close(half, 0.4 * natural + 0.6 * luma[:, None])
    gray = natural[:, :1]
    assert torch.equal(corrupt(gray, "decolorization", 5), gray)


def test_darkness_and_occlusion(natural):
    for s, f in zip(SEVERITIES, EXTRA_PARAMS["darkness"]):
        torch.testing.assert_close(corrupt(natural, "darkness", s), natural * f)
    for s, area in zip(SEVERITIES, EXTRA_PARAMS["occlusion"]):
        y = corrupt(natural, "occlusion", s, seed=5)
        changed = (y == 0.5).all(1)                          # the gray rectangle
        side = round(area ** 0.5 * 32)
        assert (changed.flatten(1).sum(1) >= side * side).all()
    tops = (corrupt(natural, "occlusion", 3, seed=5) == 0.5).all(1).any(2).float().argmax(1)
    assert tops.unique().numel() > 1, "rectangle positions should vary per image"


def test_pixelate_matches_pil_box():
    from PIL import Image

    from inferml_course.datasets.corruptions import _box_resize

    img = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    for s, scale in zip(SEVERITIES, CIFAR_C_PARAMS["pixelate"]):
        k = int(32 * scale)
        pil = Image.fromarray(img, mode="F").resize((k, k), Image.BOX).resize((32, 32), Image.BOX)
        ours = _box_resize(_box_resize(torch.from_numpy(img)[None, None], (k, k)), (32, 32))[0, 0]
        np.testing.assert_allclose(ours.numpy(), np.asarray(pil), atol=1e-5)
        torch.testing.assert_close(corrupt(torch.from_numpy(img)[None, None], "pixelate", s)[0, 0], ours)


def test_defocus_small_radius_is_gaussian(natural):
    # radius < 1: the disk is one pixel, so the kernel is cv2's 3x3 Gaussian with sigma = alias_blur
    g = torch.exp(-torch.tensor([1.0, 0.0, 1.0]) / (2 * 0.4 ** 2))
    k = torch.outer(g / g.sum(), g / g.sum())
    x = F.pad(natural, (1, 1, 1, 1), mode="reflect")
    ref = F.conv2d(x.reshape(-1, 1, 34, 34), k[None, None]).view_as(natural)
    torch.testing.assert_close(corrupt(natural, "defocus_blur", 1), ref)


def test_jpeg_close_to_pil(natural):
    import io

    from PIL import Image

    x = (natural[:4] * 255).round() / 255
    y = corrupt(x, "jpeg_compression", 5)                   # quality 40
    for i in range(4):
        buf = io.BytesIO()
        Image.fromarray((x[i].permute(1, 2, 0) * 255).round().byte().numpy()).save(buf, "JPEG", quality=40)
        pil = torch.from_numpy(np.array(Image.open(buf))).permute(2, 0, 1).float() / 255
        assert (y[i] - pil).abs().mean() < 2 / 255


def test_corrupted_dataset(natural):
    n = natural.shape[0]
    masks = {"sign": torch.rand(n, 32, 32) > 0.5}
    ds = ImageDataset(natural, torch.arange(n) % 4, ["a", "b", "c", "d"], masks, name="photos")
    out = corrupted(ds, "fog", 2, seed=1, batch_size=16)
    assert isinstance(out, ImageDataset) and out.name == "photos + fog s2"
    assert torch.equal(out.labels, ds.labels) and out.classes == ds.classes
    assert torch.equal(out.masks["sign"], masks["sign"])
    assert out.images.shape == natural.shape and not torch.equal(out.images, natural)
    assert torch.equal(out.images, corrupted(ds, "fog", 2, seed=1, batch_size=16).images)
    chunks = out.images.split(16)
    assert not torch.equal(chunks[0] - natural[:16], chunks[1] - natural[16:32]), "chunks share noise"
    whole = corrupted(ds, "contrast", 4)                     # deterministic: chunking is irrelevant
    torch.testing.assert_close(whole.images, corrupt(natural, "contrast", 4))


def test_bad_input(small):
    with pytest.raises(ValueError, match="corruption") as err:
        corrupt(small, "frost", 1)
    assert all(name in str(err.value) for name in CORRUPTIONS)
    for bad in (0, 6, 2.5, "3", True):
        with pytest.raises((TypeError, ValueError), match="severity"):
            corrupt(small, "fog", bad)
    with pytest.raises(ValueError, match="images"):
        corrupt(small[0], "fog", 1)                          # (C, H, W)
    with pytest.raises(TypeError, match="images"):
        corrupt((small * 255).to(torch.uint8), "fog", 1)
    with pytest.raises(TypeError, match="images"):
        corrupt(small.numpy(), "fog", 1)
    nan = small.clone()
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="images"):
        corrupt(nan, "fog", 1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        corrupt(small * 2 - 1, "fog", 1)                     # normalised, not pixel values
    with pytest.raises(ValueError, match="empty"):
        corrupt(small[:0], "fog", 1)
    with pytest.raises(TypeError, match="seed"):
        corrupt(small, "fog", 1, seed=1.5)
    with pytest.raises(TypeError, match="dataset"):
        corrupted(small, "fog", 1)
