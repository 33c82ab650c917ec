"""CLUE and delta-CLUE: a toy whose uncertainty lives in one corner (the change concentrates there), the
delta-ball, the uncertainty falling along the search, float64 against float32, the registry, hygiene of the
model and the VAE, bad input."""
import math

import pytest
import torch
from torch import nn

from inferml_course.uncertainty import attribution as ua

from _explain_models import TinyVAE, images, small_cnn
from _hygiene import Bomb, arm_for_hygiene, assert_same, snapshot


class CornerToy(nn.Module):
    """Two classes whose logits depend only on the mean r of the top-left 4 x 4 corner of channel 0,
    z = 6 (r - 1/2) (1, -1): the uncertainty is largest at r = 1/2 and only that corner can lower it."""

    def forward(self, x):
        r = x[:, 0, :4, :4].mean((1, 2))
        return torch.stack([6 * (r - 0.5), -6 * (r - 0.5)], 1)


class PixelVAE(nn.Module):
    """A 'VAE' whose latent code is the image itself, so the search runs over the pixels (a scale parameter
    of 1 gives it a dtype, a parameter to keep untouched and a mode)."""

    def __init__(self, shape=(3, 8, 8), dtype=torch.float64):
        super().__init__()
        self.scale = nn.Parameter(torch.ones((), dtype=dtype))
        self.shape = shape

    def encode(self, x):
        return x.flatten(1) * self.scale

    def decode(self, z):
        return (z / self.scale).view(-1, *self.shape)


def corner_images(n=4, dtype=torch.float64):
    """Images whose corner mean sits a little off 1/2 (uncertain, with a gradient to follow)."""
    x = 0.3 + 0.4 * torch.rand((n, 3, 8, 8), generator=torch.Generator().manual_seed(0), dtype=dtype)
    x[:, 0, :4, :4] += (0.52 - x[:, 0, :4, :4].mean((1, 2))).view(-1, 1, 1)
    return x


def toy(dtype=torch.float64):
    return ua.UncertaintyModel([CornerToy()]), PixelVAE(dtype=dtype)


@pytest.mark.parametrize("method", [ua.clue, ua.delta_clue])
def test_the_change_concentrates_where_the_uncertainty_lives(method):
    umodel, vae = toy()
    x = corner_images()
    r = method(umodel, x, vae, steps=40, return_details=True)
    corner = torch.zeros(8, 8, dtype=torch.bool)
    corner[:4, :4] = True
    assert r.attribution.shape == (4, 8, 8) and r.attribution.dtype == torch.float64
    assert torch.equal(r.attribution[:, ~corner], torch.zeros_like(r.attribution[:, ~corner]))  # exactly 0 elsewhere
    assert (r.attribution[:, corner].sum(1) > 0.05).all()
    assert torch.allclose(r.attribution, (x - r.counterfactual).abs().sum(1))
    assert torch.allclose(r.reconstruction, x) and torch.allclose(r.z0, x.flatten(1))
    assert (r.uncertainty[-1] < 0.5 * r.uncertainty_input).all()


def test_uncertainty_decreases_along_the_search():
    umodel, vae = toy()
    x = corner_images()
    history = ua.clue(umodel, x, vae, steps=40, lr=0.02, lambda_x=0.0, return_details=True).uncertainty
    assert history.shape == (41, 4)
    assert (history[1:] <= history[:-1] + 1e-12).all()    # U alone: it falls at every step, for every image
    assert (history[-1] < history[0] - 0.1).all()
    # with the distance, near the optimum U may give back a little to the distance; the search still lowers it
    for method in (ua.clue, ua.delta_clue):
        history = method(umodel, x, vae, steps=40, lr=0.02, return_details=True).uncertainty
        assert (history[-1] < history[0] - 0.1).all() and (history[10] < history[0]).all()


def test_delta_ball_holds():
    model, vae, x = small_cnn(), TinyVAE(), images(3)
    for delta in (0.05, 0.5):
        r = ua.delta_clue(model, x, vae, samples=2, delta=delta, steps=10, lr=0.2, return_details=True)
        radius = (r.z - r.z0).norm(dim=1)
        assert (radius <= delta + 1e-9).all()
    assert radius.max() > 0.3                                           # the search moves
    free = ua.clue(model, x, vae, samples=2, steps=10, lr=0.2, return_details=True)
    assert (free.z - free.z0).norm(dim=1).max() > 0.05                 # ... and the small ball was binding
    small = ua.delta_clue(model, x, vae, samples=2, delta=0.05, steps=10, lr=0.2, return_details=True)
    assert torch.allclose((small.z - small.z0).norm(dim=1).max(), torch.tensor(0.05, dtype=torch.float64))


def test_float64_and_float32_agree():
    x64 = corner_images()
    maps = {}
    for dtype in (torch.float64, torch.float32):
        umodel, vae = toy(dtype)
        maps[dtype] = ua.delta_clue(umodel, x64.to(dtype), vae, delta=0.3, steps=20)
    assert maps[torch.float64].dtype == torch.float64 and maps[torch.float32].dtype == torch.float32
    assert torch.allclose(maps[torch.float64], maps[torch.float32].double(), atol=1e-4)
    x = images(2)
    cnn_maps = [ua.clue(small_cnn(dtype=d), x.to(d), TinyVAE(dtype=d), samples=3, steps=5) for d in
                (torch.float64, torch.float32)]
    assert torch.allclose(cnn_maps[0], cnn_maps[1].double(), atol=1e-3)   # Adam's steps amplify the rounding


def test_registry_chunks_and_options():
    model, vae, x = small_cnn(), TinyVAE(), images(3)
    direct = ua.clue(model, x, vae, samples=3, steps=4)
    assert torch.equal(ua.attribute("clue", model, x, posterior_samples=3, vae=vae, steps=4), direct)
    assert torch.allclose(ua.clue(model, x, vae, samples=3, steps=4, batch_size=2), direct)  # Adam: per coordinate
    assert torch.allclose(ua.attribute("delta_clue", model, x, posterior_samples=3, vae=vae, steps=4, delta=0.2),
                          ua.delta_clue(model, x, vae, samples=3, steps=4, delta=0.2))
    assert ua.METHOD_NAMES["clue"] == "CLUE" and ua.METHOD_NAMES["delta_clue"] == "δ-CLUE"
    assert "clue" not in ua.BASELINES
    r = ua.clue(model, x, vae, samples=3, steps=4, reference="reconstruction", distance="l2", return_details=True)
    assert torch.allclose(r.attribution, (r.reconstruction - r.counterfactual).abs().sum(1))
    assert not torch.equal(ua.clue(model, x, vae, samples=3, steps=4, lambda_x=0.0), direct)


def test_model_and_vae_untouched():
    model = arm_for_hygiene(small_cnn(dtype=torch.float32), Bomb(nn.Dropout(0.5)))
    model.train()
    model.classifier.train(False)
    vae = TinyVAE(dtype=torch.float32).train()
    vae.dec.weight.grad = torch.full_like(vae.dec.weight, 0.25)
    vae.enc.bias.requires_grad_(False)
    before, before_vae = snapshot(model), snapshot(vae)
    x = images(2, dtype=torch.float32).requires_grad_(True)
    with pytest.warns(UserWarning, match="training mode"):
        ua.delta_clue(model, x, vae, samples=2, steps=3)
    assert_same(before, snapshot(model))
    assert_same(before_vae, snapshot(vae))
    assert x.requires_grad and x.grad is None
    model.classifier.dropout2.armed = "backward"
    with pytest.raises(RuntimeError, match="boom"), pytest.warns(UserWarning):
        ua.clue(model, x, vae, samples=2, steps=3)
    model.classifier.dropout2.armed = None
    assert_same(before, snapshot(model))
    assert_same(before_vae, snapshot(vae))


def test_bad_input_names_the_argument():
    model, vae, x = small_cnn(), TinyVAE(), images(2)
    for delta in (0.0, -1.0):
        with pytest.raises(ValueError, match="^delta"):
            ua.delta_clue(model, x, vae, delta=delta)
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError, match="^lambda_x"):
            ua.clue(model, x, vae, lambda_x=bad)
    with pytest.raises(ValueError, match="^lambda_x"):
        ua.clue(model, x, vae, lambda_x=-1.0)
    with pytest.raises(ValueError, match=r"^vae: its decoder returns images of shape \(2, 3, 8, 8\)"):
        ua.clue(model, x, _Resized(TinyVAE(h=8, w=8)), samples=2)
    with pytest.raises(TypeError, match="^vae"):
        ua.clue(model, x, object())
    with pytest.raises(ValueError, match="distance"):
        ua.clue(model, x, vae, distance="l3")
    with pytest.raises(ValueError, match="reference"):
        ua.clue(model, x, vae, reference="mean")
    with pytest.raises(ValueError, match="^steps"):
        ua.clue(model, x, vae, steps=0)
    with pytest.raises(ValueError, match="^lr"):
        ua.clue(model, x, vae, lr=0.0)
    with pytest.raises(TypeError, match="vae"):
        ua.attribute("clue", model, x)


class _Resized(nn.Module):
    """A VAE for 8 x 8 images whose encoder takes 16 x 16 ones (so the decoder's shape is what differs)."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def encode(self, x):
        return self.vae.encode(x[..., ::2, ::2])

    def decode(self, z):
        return self.vae.decode(z)


def test_on_the_course_models():
    """The lesson's pair: signs_cnn (MC dropout) and signs_vae; the search lowers U (on noise images, which
    need no data set to be built)."""
    from inferml_course import models

    umodel = ua.UncertaintyModel(models.load_model("signs_cnn", "cpu", retrain=False), samples=5)
    vae = models.load_model("signs_vae", "cpu", retrain=False)
    x = images(2, h=32, w=32, dtype=torch.float32)
    r = ua.clue(umodel, x, vae, steps=10, return_details=True)
    assert r.attribution.shape == (2, 32, 32) and torch.isfinite(r.attribution).all()
    assert (r.uncertainty[-1] < r.uncertainty[0]).all()


def test_on_torchvision_resnets_with_in_place_relus():
    """Beyond the course CNN: an ensemble of two torchvision ResNet-18s (in-place ReLUs, residual additions,
    batch norm; random weights) as the uncertainty model, float32 images and a float64 VAE; the models and the
    VAE are left as they were and the map is (N, H, W), finite, non-negative."""
    from torchvision.models import resnet18

    members = [resnet18(num_classes=4).eval() for _ in range(2)]
    for m, seed in zip(members, (0, 1)):
        torch.manual_seed(seed)
        for p in m.parameters():
            p.data.normal_(0, 0.05)
    x, vae = images(2, dtype=torch.float32), TinyVAE(dtype=torch.float32)
    before = [snapshot(m) for m in members] + [snapshot(vae)]
    for method in (ua.clue, ua.delta_clue):
        maps = method(members, x, vae=vae, steps=3)
        assert maps.shape == (2, 16, 16) and torch.isfinite(maps).all() and (maps >= 0).all()
    for b, m in zip(before, members + [vae]):
        assert_same(b, snapshot(m))
