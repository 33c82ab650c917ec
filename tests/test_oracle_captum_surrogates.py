"""Captum's ``Lime`` and ``KernelShap`` as oracles for ``explain.lime`` and ``explain.kernel_shap``.

Same segments (Captum's ``feature_mask``), same baseline (Captum's ``baselines``), same output
(a softmax forward for ``output="probability"``), same kernel and the same surrogate:

* LIME: our kernel, sqrt(exp(-d^2 / 0.25^2)) with d the cosine distance of the binary sample to the
  all-ones vector, is passed to Captum as ``similarity_func`` (Captum's default kernel works on the
  images, not the binary vectors), and our ridge regression (alpha = 1, intercept) as Captum's
  ``SkLearnRidge(alpha=1.0)``. Captum's default surrogate (Lasso) is *not* what we implement.
* Kernel SHAP: Captum's own ``KernelShap`` kernel (1e6 for the full and the empty coalition, 1 for the
  others) and its own ``SkLearnLinearRegression``.

The sampling cannot be made identical: Captum draws its binary samples one at a time from torch's
global generator, we draw them all at once from a local one. So the first two tests feed Captum the
very samples our function drew (recorded by wrapping ``perturbation._coalition_scores``, Captum's
``perturb_func`` then yields them in order): with the same samples every remaining step (kernel
weights, images built from the samples, model calls, the weighted fit, painting the segments) must
agree, on the course's trained sign CNN. The third test uses Captum's own sampler, on a setting where the result
does not depend on the samples: a linear model with ``output="logit"``, whose Kernel SHAP values and
unregularised LIME weights are the exact per-segment contributions.
"""
import pytest
import torch

from inferml_course import explain
from inferml_course.explain import perturbation

from _explain_models import images, linear_model
from conftest import require

captum_attr = require("captum.attr")
require("sklearn")
from captum._utils.models.linear_model import SkLearnLinearRegression, SkLearnRidge  # noqa: E402


class Softmax(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return torch.softmax(self.model(x), 1)


def record_samples(monkeypatch):
    """Wrap ``_coalition_scores`` so that each call's binary samples z (N, S, F) are kept."""
    seen = []
    original = perturbation._coalition_scores

    def spy(model, x, t, seg, z, *args):
        seen.append(z.clone())
        return original(model, x, t, seg, z, *args)

    monkeypatch.setattr(perturbation, "_coalition_scores", spy)
    return seen


def replay(samples):
    """A Captum ``perturb_func`` (a generator function) yielding the rows of ``samples`` (S, F) in order."""
    def perturb(_inputs, **_kwargs):
        for row in samples:
            yield row[None].to(torch.float64)
    return perturb


def lime_kernel(_original, _perturbed, interpretable, **_kwargs):
    """Our LIME kernel on the binary sample: sqrt(exp(-d^2 / 0.25^2)), d = 1 - cos(z, 1)."""
    kept = float(interpretable.sum())
    total = interpretable.numel()
    d = 1.0 - kept / (kept ** 0.5 * total ** 0.5) if kept > 0 else 1.0
    return torch.tensor(d).pow(2).div(-0.25 ** 2).exp().sqrt()


def setting(n=2):
    """The course's trained sign classifier, test signs and their SLIC superpixels (a model that responds to the
    removal of segments: an untrained CNN's probabilities barely move, so any kernel would pass)."""
    from inferml_course import datasets, models

    model = models.load_model("signs_cnn").double()
    x = datasets.load("signs", "test").images[:n].double()
    seg = explain.superpixels(x, n_segments=16)
    assert bool((seg.flatten(1).amax(1) >= 3).all())
    base = perturbation.resolve_baseline(model, x, "mean")
    return model, x, seg, base.expand_as(x).contiguous()


def close(ours, ref):
    """Equal to float32 round-off of Captum's scikit-learn fit, relative to the map's scale."""
    scale = float(ours.abs().max())
    assert scale > 1e-3, "the model must respond to the segments for the comparison to mean anything"
    torch.testing.assert_close(ours, ref.to(ours.dtype), rtol=0, atol=1e-5 * scale)


def test_lime_equals_captum_lime_with_the_same_samples_kernel_and_ridge(monkeypatch):
    model, x, seg, base = setting()
    t = torch.tensor([1, 3])
    seen = record_samples(monkeypatch)
    ours = explain.lime(model, x, t, samples=40, segments=seg, ridge=1.0, kernel_width=0.25, seed=5)
    (z,) = seen
    for i in range(x.shape[0]):
        f = int(seg[i].max()) + 1
        lime = captum_attr.Lime(Softmax(model), interpretable_model=SkLearnRidge(alpha=1.0),
                                similarity_func=lime_kernel, perturb_func=replay(z[i, :, :f]))
        ref = lime.attribute(x[i:i + 1], target=int(t[i]), n_samples=z.shape[1], feature_mask=seg[i:i + 1, None],
                             baselines=base[i:i + 1], perturbations_per_eval=8)
        close(ours[i], ref[0, 0])
        assert torch.allclose(ref[0], ref[0, :1].expand_as(ref[0]))    # one value per pixel for every channel


def test_kernel_shap_equals_captum_kernel_shap_with_the_same_samples(monkeypatch):
    model, x, seg, base = setting()
    t = torch.tensor([0, 2])
    seen = record_samples(monkeypatch)
    ours = explain.kernel_shap(model, x, t, samples=50, segments=seg, seed=3)
    (z,) = seen
    for i in range(x.shape[0]):
        f = int(seg[i].max()) + 1
        samples = z[i, :, :f]
        assert samples[0].all() and not samples[1].any()             # ours starts with "all" and "none"

        class Replayed(captum_attr.KernelShap):
            def kernel_shap_perturb_generator(self, original_inp, **kwargs):
                yield from replay(samples)(original_inp)

        ref = Replayed(Softmax(model)).attribute(x[i:i + 1], target=int(t[i]), n_samples=samples.shape[0],
                                                 feature_mask=seg[i:i + 1, None], baselines=base[i:i + 1],
                                                 perturbations_per_eval=8)
        close(ours[i], ref[0, 0])


def test_captum_sampling_agrees_where_the_answer_is_analytic():
    """Captum's own sampler on a linear model (``output="logit"``): both give the exact contributions."""
    model = linear_model(3, 8, 8, 3)
    x = images(2, 3, 8, 8)
    cells = (torch.arange(8) // 4)[:, None] * 2 + (torch.arange(8) // 4)[None, :]   # four 4 x 4 segments
    seg = torch.stack([cells, 3 - cells])
    t = torch.tensor([2, 0])
    base = 0.25
    contrib = (model[1].weight.view(3, 3, 8, 8)[t] * (x - base)).sum(1)          # (N, H, W)
    exact = torch.stack([torch.zeros(int(s.max()) + 1, dtype=x.dtype).index_add_(0, s.flatten(), c.flatten())[s]
                         for s, c in zip(seg, contrib)])
    torch.manual_seed(0)                                                         # Captum's global generator
    for i in range(2):
        f = int(seg[i].max()) + 1
        shap = captum_attr.KernelShap(model).attribute(x[i:i + 1], target=int(t[i]), baselines=base,
                                                       feature_mask=seg[i:i + 1, None], n_samples=8 * f)
        lime = captum_attr.Lime(model, interpretable_model=SkLearnLinearRegression()).attribute(
            x[i:i + 1], target=int(t[i]), baselines=base, feature_mask=seg[i:i + 1, None], n_samples=8 * f)
        assert torch.allclose(shap[0, 0].to(exact.dtype), exact[i], atol=1e-5)
        assert torch.allclose(lime[0, 0].to(exact.dtype), exact[i], atol=1e-5)
    ours_shap = explain.kernel_shap(model, x, t, samples=40, segments=seg, baseline=base, output="logit")
    ours_lime = explain.lime(model, x, t, samples=60, segments=seg, baseline=base, output="logit", ridge=0.0)
    assert torch.allclose(ours_shap, exact, atol=1e-6) and torch.allclose(ours_lime, exact, atol=1e-6)


@pytest.mark.parametrize("fn", ["lime", "kernel_shap"])
def test_the_recorded_samples_are_the_ones_used(monkeypatch, fn):
    """The spy sees exactly one call per explanation (so the replay above replays everything)."""
    model, x, seg, _ = setting(n=1)
    seen = record_samples(monkeypatch)
    getattr(explain, fn)(model, x, samples=30, segments=seg, batch_size=7)
    assert len(seen) == 1 and seen[0].shape[:2] == (1, 30)
