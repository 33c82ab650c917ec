"""Oracle: ``uncertainty.scores`` ODIN, energy and Mahalanobis against pytorch-ood's detectors.

Conventions and how each test undoes them:

* **direction**: pytorch-ood returns outlier scores (higher = more OOD). ``ODIN.predict`` is
  ``-max softmax(f(x~)/T)``: ours ``odin`` returns the confidence ``+max softmax``, and the registry
  entry ``get_score("odin")`` negates it, so ``-odin == get_score("odin") == ODIN.predict``.
  ``EnergyBased`` returns ``E = -T logsumexp(z/T)`` as ours ``energy`` (both higher = more OOD, not
  negated). ``Mahalanobis`` returns ``+1/2 min_k d_k^2`` (higher = more OOD) as ours ``min_k d_k^2``.
* **ODIN's epsilon**: ours steps in pixel space (the course's models normalise inside). pytorch-ood's
  ``odin_preprocessing`` differentiates whatever the model takes; with ``norm_std`` it divides the sign
  by the per-channel std, like the original code (Liang et al.'s ``gradient[0][c] / std_c``) on
  normalised inputs. Three equalities follow and are tested: (a) pytorch-ood on our model with its
  normalisation inside, same eps; (b) pytorch-ood on the model *without* its ``Normalize`` fed
  normalised images, ``norm_std=std``, **same eps** (x_n - eps sign / std is x - eps sign in pixels);
  (c) the same without ``norm_std``, eps divided by a (uniform) std. (b) shows that the original's eps is
  in pixel units, as ours is; ``odin_perturb``'s docstring says the original's eps "is in normalised
  units", which (b) contradicts (a docstring error, reported; the code agrees with the original).
* **sign at a zero gradient**: ours uses +1 where the gradient is >= 0 (as the original's
  ``torch.ge(grad, 0)``); pytorch-ood uses ``torch.sign`` (0 there). The random CNN below has no
  exactly-zero input gradient (asserted); a model that ignores one pixel shows the difference.
* **Mahalanobis scale and ridge**: pytorch-ood's covariance is the pooled scatter *not* divided by N,
  plus ``1e-6 I``; ours divides by N and adds ``ridge * mean variance * I``. With
  ``ridge = 1e-6 / (N * mean variance)`` our covariance is exactly pytorch-ood's / N, so
  ``ours = 2 N * pytorch-ood``. pytorch-ood allocates its means and covariance in the default dtype, so
  it is fitted under ``torch.set_default_dtype(torch.float64)`` (our stats are float32 by design).
"""
import copy

import pytest
import torch
from conftest import require
from torch import nn

from _explain_models import small_cnn
from inferml_course.uncertainty import scores

detector = require("pytorch_ood.detector")


def _images(n=6, side=16, seed=1, dtype=torch.float64):
    return torch.rand((n, 3, side, side), generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _input_grad(model, x, temperature):
    xg = x.detach().clone().requires_grad_(True)
    z = model(xg)
    (g,) = torch.autograd.grad(nn.functional.cross_entropy(z / temperature, z.argmax(1)), xg)
    return g


# ---------------------------------------------------------------------------------------------- energy
@pytest.mark.parametrize("temperature", [1.0, 0.5, 3.0])
def test_energy_equals_pytorch_ood_energy_based(temperature):
    model, x = small_cnn(seed=0), _images()
    ours = scores.energy(model, x, temperature=temperature)
    theirs = detector.EnergyBased(model, t=temperature).predict(x)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    # the registry keeps energy's direction (an uncertainty): not negated
    torch.testing.assert_close(scores.get_score("energy")(model, x, temperature=temperature), theirs,
                               rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------------------ ODIN
@pytest.mark.parametrize("temperature,eps", [(1000.0, 0.0014), (10.0, 0.01)])
def test_odin_equals_pytorch_ood_with_normalisation_inside(temperature, eps):
    """(a): the same eps in pixel space; scores are minus ours and equal to the registry's entry."""
    model, x = small_cnn(seed=0), _images()
    assert (_input_grad(model, x, temperature) != 0).all()   # the zero-gradient convention does not arise
    x_tilde, pred = scores.odin_perturb(model, x, temperature=temperature, epsilon=eps)
    ref = detector.odin_preprocessing(model, x, eps=eps, temperature=temperature)
    torch.testing.assert_close(x_tilde, ref, rtol=0, atol=1e-15)
    assert not torch.equal(x_tilde, x)
    assert torch.equal(pred, model(x).argmax(1))
    theirs = detector.ODIN(model, eps=eps, temperature=temperature).predict(x)
    torch.testing.assert_close(-scores.odin(model, x, temperature=temperature, epsilon=eps), theirs,
                               rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(scores.get_score("odin")(model, x, temperature=temperature, epsilon=eps), theirs,
                               rtol=1e-12, atol=1e-14)


def _without_normalize(model):
    return nn.Sequential(model.features, model.classifier).eval()


def test_odin_pixel_eps_equals_original_norm_std_convention():
    """(b): pytorch-ood on normalised inputs with ``norm_std`` (the original ODIN code's division by
    the std) and the **same** eps as ours: its eps is a pixel-space step too."""
    model, x = small_cnn(seed=0), _images()
    mean, std = model.normalize.mean.view(1, 3, 1, 1), model.normalize.std.view(1, 3, 1, 1)
    assert len(set(std.flatten().tolist())) == 3             # per-channel stds .2, .25, .3
    inner, x_norm = _without_normalize(model), (x - mean) / std
    torch.testing.assert_close(inner(x_norm), model(x), rtol=1e-12, atol=1e-12)
    eps, temperature = 0.0014, 1000.0
    ref_norm = detector.odin_preprocessing(inner, x_norm, eps=eps, temperature=temperature,
                                           norm_std=std.flatten().tolist())
    x_tilde, _ = scores.odin_perturb(model, x, temperature=temperature, epsilon=eps)
    torch.testing.assert_close(ref_norm * std + mean, x_tilde, rtol=0, atol=1e-14)
    theirs = detector.ODIN(inner, eps=eps, temperature=temperature, norm_std=std.flatten().tolist()).predict(x_norm)
    torch.testing.assert_close(-scores.odin(model, x, temperature=temperature, epsilon=eps), theirs,
                               rtol=1e-12, atol=1e-14)


def test_odin_without_norm_std_needs_eps_divided_by_std():
    """(c): without ``norm_std`` pytorch-ood steps eps in normalised units, i.e. eps * std in pixels, so
    ours(eps) equals theirs(eps / std) (a uniform std, since ours takes one scalar eps)."""
    model = copy.deepcopy(small_cnn(seed=0))
    with torch.no_grad():
        model.normalize.std.fill_(0.25)
    x = _images()
    mean, std = model.normalize.mean.view(1, 3, 1, 1), 0.25
    inner, x_norm = _without_normalize(model), (x - mean) / std
    eps, temperature = 0.002, 1000.0
    theirs = detector.ODIN(inner, eps=eps / std, temperature=temperature).predict(x_norm)
    torch.testing.assert_close(-scores.odin(model, x, temperature=temperature, epsilon=eps), theirs,
                               rtol=1e-12, atol=1e-14)
    # the same eps in both would be a 4x smaller pixel step for pytorch-ood (eps * std; 0 where this
    # model's input gradient is exactly 0, torch.sign's convention, see the zero-gradient test)
    ref = detector.odin_preprocessing(inner, x_norm, eps=eps, temperature=temperature) * std + mean
    moved = _input_grad(model, x, temperature) != 0
    step = torch.where(moved, torch.full_like(x, eps * std), torch.zeros_like(x))
    torch.testing.assert_close((ref - x).abs(), step, rtol=0, atol=1e-15)


class _IgnoresPixel(nn.Module):
    """Zeroes pixel (0, 0) of every channel, so the input gradient there is exactly 0."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        mask = torch.ones_like(x)
        mask[..., 0, 0] = 0
        return self.model(x * mask)


def test_odin_sign_at_zero_gradient_differs_as_documented():
    """Ours: sign +1 at a zero gradient (the original's ``ge(grad, 0)``); pytorch-ood: 0. Elsewhere equal."""
    model, x = _IgnoresPixel(small_cnn(seed=0)).eval(), _images(n=3)
    eps = 0.01
    ours, _ = scores.odin_perturb(model, x, temperature=1000.0, epsilon=eps)
    theirs = detector.odin_preprocessing(model, x, eps=eps, temperature=1000.0)
    zero = _input_grad(model, x, 1000.0) == 0
    assert zero[..., 0, 0].all() and int(zero.sum()) == zero[..., 0, 0].numel()
    torch.testing.assert_close(ours[~zero], theirs[~zero], rtol=0, atol=1e-15)
    torch.testing.assert_close(ours[zero], x[zero] - eps, rtol=0, atol=1e-15)
    torch.testing.assert_close(theirs[zero], x[zero], rtol=0, atol=0)


# ----------------------------------------------------------------------------------------- Mahalanobis
def _projection_features(d=8, seed=5):
    """A well-conditioned feature map: a fixed random projection of the centred pixels."""
    w = torch.randn((3 * 16 * 16, d), generator=torch.Generator().manual_seed(seed)) / 16

    def features(x):
        return (x.flatten(1).float() - 0.5) @ w
    return features


def _pytorch_ood_fit(features, x, y):
    det = detector.Mahalanobis(features)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)   # pytorch-ood allocates mu / cov in the default dtype
    try:
        with torch.no_grad():
            det.fit_features(features(x).double(), y)
    finally:
        torch.set_default_dtype(old)
    return det


def _matched_ridge(h, y, k):
    """Our ridge that reproduces pytorch-ood's absolute 1e-6 on the unnormalised scatter."""
    h = h.double()
    means = torch.stack([h[y == c].mean(0) for c in range(k)])
    centred = h - means[y]
    mean_var = (centred.T @ centred / h.shape[0]).diagonal().mean()
    return float(1e-6 / (h.shape[0] * mean_var))


def test_mahalanobis_equals_pytorch_ood_up_to_2n():
    model = small_cnn(dtype=torch.float32, seed=0)
    features = _projection_features()
    x_train, x_test = _images(n=300, seed=2, dtype=torch.float32), _images(n=20, seed=3, dtype=torch.float32)
    y = torch.arange(300) % 5
    with torch.no_grad():
        h = features(x_train)
    stats = scores.fit_mahalanobis(model, x_train, y, features=features, ridge=_matched_ridge(h, y, 5))
    det = _pytorch_ood_fit(features, x_train, y)
    torch.testing.assert_close(stats.means.double(), det.mu, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(stats.precision.double(), 300 * det.precision, rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        theirs = det.predict_features(features(x_test).double())
    ours = scores.mahalanobis(model, x_test, stats, features=features)
    assert float(2 * 300 * theirs.min()) > 0.5
    torch.testing.assert_close(ours.double(), 2 * 300 * theirs, rtol=1e-4, atol=1e-4)
    # the registry's entry is an uncertainty like pytorch-ood's outlier score: not negated
    torch.testing.assert_close(scores.get_score("mahalanobis")(model, x_test, stats=stats, features=features), ours)


def test_mahalanobis_on_a_float64_model_equals_pytorch_ood():
    """The stats are float64 and the distances come back in the features' dtype (a float64 model used to
    raise a dtype mismatch)."""
    model = small_cnn(dtype=torch.float64, seed=0)
    x_train, x_test = _images(n=300, seed=2), _images(n=20, seed=3)
    y = torch.arange(300) % 5
    h = model.embed(x_train).detach()
    stats = scores.fit_mahalanobis(model, x_train, y, ridge=_matched_ridge(h, y, 5))
    det = _pytorch_ood_fit(lambda z: model.embed(z), x_train, y)
    with torch.no_grad():
        theirs = det.predict_features(model.embed(x_test))
    torch.testing.assert_close(scores.mahalanobis(model, x_test, stats).double(), 600 * theirs, rtol=1e-4, atol=1e-4)


def test_mahalanobis_is_translation_invariant_on_offset_features():
    """Features with a common offset large against their within-class spread (an untrained SmallCNN's fc1
    outputs: mean |h| 0.17, within-class std 5.5e-4): the distances used to cancel to 0 in float32."""
    model = small_cnn(dtype=torch.float32, seed=0)
    c = model.classifier

    def features(x):
        return c.fc1(c.flatten(c.pool(model.features(model.normalize(x)))))
    x_train, x_test = _images(n=300, seed=2, dtype=torch.float32), _images(n=6, seed=3, dtype=torch.float32)
    y = torch.arange(300) % 5
    with torch.no_grad():
        h = features(x_train)
    stats = scores.fit_mahalanobis(model, x_train, y, features=features, ridge=_matched_ridge(h, y, 5))
    det = _pytorch_ood_fit(features, x_train, y)
    with torch.no_grad():
        theirs = det.predict_features(features(x_test).double())
    ours = scores.mahalanobis(model, x_test, stats, features=features)
    torch.testing.assert_close(ours.double(), 600 * theirs, rtol=0.05, atol=0.5)
