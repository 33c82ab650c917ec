"""VOICE (uncertainty in explanations): equals a loop over contrast classes through the explain package,
its metrics give known answers on hand-made maps, the model is left untouched, bad input fails at once."""
import pytest
import torch
from torch import nn

from inferml_course import explain
from inferml_course.uncertainty import voice as ve

from _explain_models import images, small_cnn
from conftest import passes, require

hypothesis = require("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402
from _hygiene import arm_for_hygiene, assert_same, snapshot  # noqa: E402


def reference_cam(model, x):
    """The authors' recipe, one contrast class at a time, through the explain package."""
    e = explain.normalize_maps(explain.grad_cam(model, x)).double()
    p = model(x).argmax(1)
    k = model(x).shape[1]
    maps = []
    for q in range(k):
        contrast = torch.where(p == q, (q + 1) % k, torch.full_like(p, q))  # placeholder, dropped below
        maps.append(explain.normalize_maps(explain.contrast_cam(model, x, target=p, contrast=contrast)).double())
    stacked = torch.stack(maps, 1)
    keep = torch.arange(k)[None] != p[:, None]
    others = stacked[keep].view(x.shape[0], k - 1, *x.shape[-2:])
    return e, explain.normalize_maps(others.var(1)).double(), others


def reference_smoothgrad(model, x, samples, channels, noise=0.15, seed=0):
    p = model(x).argmax(1)
    e = explain.normalize_maps(explain.smoothgrad(model, x, samples=samples, channels=channels, noise=noise,
                                                  seed=seed)).double()
    others = ve.contrast_classes(p, model(x).shape[1])
    log_probs = nn.Sequential(model, nn.LogSoftmax(dim=1))  # log softmax(z)_Q = -cross-entropy(z, Q)
    maps = [explain.normalize_maps(explain.smoothgrad(log_probs, x, target=others[:, j], samples=samples,
                                                      channels=channels, noise=noise, seed=seed)).double()
            for j in range(others.shape[1])]
    return e, explain.normalize_maps(torch.stack(maps, 1).var(1)).double()


@pytest.mark.parametrize("vectorize", [True, False])
def test_contrast_cam_voice_equals_a_loop_over_contrast_classes(vectorize):
    model, x = small_cnn(), images(3)
    result = ve.voice(model, x, vectorize=vectorize)
    e, u, others = reference_cam(model, x)
    assert torch.allclose(result.explanation, e, atol=1e-10)
    assert torch.allclose(result.uncertainty, u, atol=1e-10)
    assert torch.allclose(result.contrast_maps, others, atol=1e-10)
    assert result.uncertainty.shape == (3, 16, 16) and result.contrast_maps.shape == (3, 4, 16, 16)
    assert torch.equal(result.prediction, model(x).argmax(1))


@pytest.mark.parametrize("channels", ["abs", "max_abs"])
@pytest.mark.parametrize("vectorize", [True, False])
def test_smoothgrad_voice_equals_a_loop_over_contrast_classes(channels, vectorize):
    model, x = small_cnn(), images(2)
    result = ve.voice(model, x, explainer="smoothgrad", samples=3, channels=channels, vectorize=vectorize,
                      batch_size=4)
    e, u = reference_smoothgrad(model, x, 3, channels)
    assert torch.allclose(result.explanation, e, atol=1e-9)
    assert torch.allclose(result.uncertainty, u, atol=1e-9)


def test_contrast_classes_and_target():
    p = torch.tensor([0, 3, 5])
    q = ve.contrast_classes(p, 6)
    assert q.tolist() == [[1, 2, 3, 4, 5], [0, 1, 2, 4, 5], [0, 1, 2, 3, 4]]
    model, x = small_cnn(), images(2)
    result = ve.voice(model, x, target=[1, 2])
    assert result.prediction.tolist() == [1, 2]
    assert (result.contrast != result.prediction[:, None]).all()


def test_batch_independence_and_raw_variance():
    model, x = small_cnn(), images(3)
    whole = ve.voice(model, x, scale_uncertainty=False)
    for i in range(3):
        one = ve.voice(model, x[i:i + 1], scale_uncertainty=False)
        assert torch.allclose(whole.uncertainty[i], one.uncertainty[0], atol=1e-10)
    assert torch.allclose(whole.uncertainty, whole.contrast_maps.var(1))
    assert torch.allclose(ve.voice_map(model, x), explain.normalize_maps(whole.uncertainty).double())


def test_two_classes_give_zero_uncertainty_and_percentile_rule():
    model, x = small_cnn(num_classes=2), images(2)
    assert torch.count_nonzero(ve.voice(model, x).uncertainty) == 0
    many = small_cnn()
    result = ve.voice(many, images(2), normalization="percentile")
    assert result.contrast_maps.min() >= 0 and result.contrast_maps.max() <= 1


def test_float32_output_and_input_grad_flag_kept():
    model, x = small_cnn(torch.float32), images(2, dtype=torch.float32).requires_grad_(True)
    result = ve.voice(model, x, explainer="smoothgrad", samples=2)
    assert result.uncertainty.dtype == torch.float32 and x.requires_grad and x.grad is None


# --- metrics on hand-made maps ---------------------------------------------------------------------------

def test_explanation_overlap_known_answers():
    e = torch.zeros(1, 4, 4)
    u = torch.zeros(1, 4, 4)
    e[0, :2] = 1.0          # 8 pixels
    u[0, 1:3] = 1.0         # 8 pixels, 4 shared
    assert ve.explanation_overlap(e, u).item() == pytest.approx((4 + 1e-6) / (12 + 1e-6))
    assert ve.explanation_overlap(e, e).item() == pytest.approx(1.0)
    assert ve.explanation_overlap(e, 1 - e).item() == pytest.approx(1e-6 / (16 + 1e-6))
    assert ve.explanation_overlap(torch.zeros(1, 4, 4), torch.zeros(1, 4, 4)).item() == pytest.approx(1.0)  # the authors' smoothing
    half = torch.full((1, 4, 4), 0.3)
    assert ve.explanation_overlap(half, half, threshold=0.5).item() == pytest.approx(1.0)
    assert ve.explanation_overlap(half, e, threshold=0.2).item() == pytest.approx((8 + 1e-6) / (16 + 1e-6))


def test_snr_known_answers():
    u = torch.zeros(2, 4, 4)
    u[0, :2] = 1.0                      # mean 0.5, population std 0.5
    u[1] = 0.7                          # constant
    assert ve.snr(u).tolist() == pytest.approx([1.0, 0.0])
    u3 = torch.zeros(1, 2, 2)
    u3[0, 0, 0] = 1.0                   # mean 1/4, std sqrt(3)/4
    assert ve.snr(u3).item() == pytest.approx(1 / 3 ** 0.5)


maps = st.lists(st.floats(0, 1, allow_nan=False), min_size=16, max_size=16).map(
    lambda v: torch.tensor(v, dtype=torch.float64).view(1, 4, 4))


@settings(max_examples=60, deadline=None)
@given(maps, maps, st.floats(0.0, 0.9))
def test_explanation_overlap_properties(e, u, t):
    value = ve.explanation_overlap(e, u, t).item()
    assert 0 < value <= 1 + 1e-12
    assert value == pytest.approx(ve.explanation_overlap(u, e, t).item())


@settings(max_examples=60, deadline=None)
@given(maps, st.floats(0.01, 100))
def test_snr_is_scale_invariant(u, c):
    assert ve.snr(u * c).item() == pytest.approx(ve.snr(u).item(), rel=1e-5, abs=1e-6)


def test_voice_stats():
    model, x = small_cnn(), images(2)
    result = ve.voice(model, x)
    stats = ve.voice_stats(result, threshold=0.2)
    assert torch.allclose(stats["explanation_overlap"], ve.explanation_overlap(result.explanation, result.uncertainty, 0.2))
    assert torch.allclose(stats["snr"], ve.snr(result.uncertainty))
    with pytest.raises(TypeError, match="result"):
        ve.voice_stats((1, 2))


# --- hygiene and bad input -------------------------------------------------------------------------------

def prepared_model():
    return arm_for_hygiene(small_cnn(torch.float32))


@pytest.mark.parametrize("explainer", ve.EXPLAINERS)
def test_model_untouched(explainer):
    model = prepared_model()
    before = snapshot(model)
    ve.voice(model, images(2, dtype=torch.float32), explainer=explainer, samples=2)
    assert_same(before, snapshot(model))


@pytest.mark.parametrize("where", ["forward", "backward"])
@pytest.mark.parametrize("explainer", ve.EXPLAINERS)
@pytest.mark.parametrize("vectorize", [True, False])
def test_model_untouched_after_an_exception(explainer, where, vectorize):
    model = prepared_model()
    before = snapshot(model)
    model.classifier.dropout2.armed = where
    with pytest.raises(RuntimeError, match="boom"):
        ve.voice(model, images(2, dtype=torch.float32), explainer=explainer, samples=2, vectorize=vectorize)
    model.classifier.dropout2.armed = None
    assert_same(before, snapshot(model))


def test_training_mode_warns_and_is_kept():
    model = small_cnn().train()
    with pytest.warns(UserWarning, match="training mode"):
        ve.voice(model, images(2))
    assert model.training


@pytest.mark.parametrize("kwargs, error, match", [
    ({"explainer": "gradcam"}, ValueError, "explainer"),
    ({"layer": "features.nope"}, ValueError, "layer"),
    ({"target": 7}, ValueError, "target"),
    ({"target": 1.5}, TypeError, "target"),
    ({"normalization": "zscore"}, ValueError, "normalization"),
    ({"explainer": "smoothgrad", "channels": "keep"}, ValueError, "channels"),
    ({"explainer": "smoothgrad", "samples": 0}, ValueError, "samples"),
    ({"explainer": "smoothgrad", "noise": -1.0}, ValueError, "noise"),
    ({"explainer": "smoothgrad", "batch_size": 0}, ValueError, "batch_size"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        ve.voice(small_cnn(), images(2), **kwargs)


@pytest.mark.parametrize("x, error, match", [
    (torch.rand(3, 16, 16), ValueError, "shape"),
    (torch.zeros(0, 3, 16, 16), ValueError, "empty"),
    (torch.full((1, 3, 16, 16), float("nan")), ValueError, "NaN"),
    (torch.ones(1, 3, 16, 16, dtype=torch.long), TypeError, "floating"),
    ([[1.0]], TypeError, "Tensor"),
])
def test_bad_images(x, error, match):
    with pytest.raises(error, match=match):
        ve.voice(small_cnn(torch.float32), x)


def test_bad_metric_input():
    good = torch.rand(2, 4, 4)
    with pytest.raises(ValueError, match="same shape"):
        ve.explanation_overlap(good, torch.rand(2, 4, 5))
    with pytest.raises(ValueError, match="shape"):
        ve.explanation_overlap(good[0], good[0])
    with pytest.raises(ValueError, match="NaN"):
        ve.snr(torch.full((1, 2, 2), float("nan")))
    with pytest.raises(TypeError, match="floating"):
        ve.snr(torch.ones(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="threshold"):
        ve.explanation_overlap(good, good, threshold=float("nan"))
    with pytest.raises(ValueError, match="empty"):
        ve.snr(torch.zeros(0, 2, 2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_follows_the_device():
    model, x = small_cnn(torch.float32).cuda(), images(2, dtype=torch.float32).cuda()
    for explainer in ve.EXPLAINERS:
        result = ve.voice(model, x, explainer=explainer, samples=2)
        assert result.uncertainty.device.type == "cuda" and result.contrast.device.type == "cuda"
    gpu = ve.voice(model, x)  # the noise of SmoothGrad comes from the device's generator; CAMs must agree
    cpu = ve.voice(model.cpu(), x.cpu())
    assert torch.allclose(gpu.uncertainty.cpu(), cpu.uncertainty, atol=1e-4)


# --- figures, widget and checkers ----------------------------------------------------------------------------

def test_figures_and_widget_draw():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from inferml_course.uncertainty import voice as ap

    model, x = small_cnn(torch.float32), images(3, dtype=torch.float32)
    result = ve.voice(model, x)
    names = [f"class {k}" for k in range(5)]
    fig = ap.voice_panel(x, result, [0, 2], names, torch.tensor([0, 1, 2]), n_contrast=2)
    assert len(fig.axes) == 2 * 5 + 1 and fig.axes[-1].get_ylim() == (0.0, 1.0)   # the maps and one shared colourbar
    plain = ap.voice_panel(x, result, [0], names, n_contrast=2, colorbar=False)
    assert len(plain.axes) == 5
    plt.close(plain)
    fig2 = ap.metric_boxplots({"a": torch.rand(5), "b": torch.rand(3)}, "IoU")
    explorer = ap.VoiceExplorer(model, x, torch.tensor([0, 1, 2]), names, samples=2)
    fig3 = explorer.draw(1, "smoothgrad", 0.3)
    assert len(fig3.axes) == 4 and "overlap (IoU)" in fig3.axes[3].get_title()
    explorer.threshold.value = 0.5                      # the observer redraws without error
    for f in (fig, fig2, fig3):
        plt.close(f)
    plt.close("all")


def test_lesson07_checkers(capsys):
    from inferml_course import checks

    model, x = small_cnn(), images(3)
    result = ve.voice(model, x)
    assert passes(checks.check_voice_map, explain.normalize_maps(result.contrast_maps.var(1)), result)
    assert passes(checks.check_voice_map, explain.normalize_maps(result.contrast_maps.var(1, correction=0)), result)
    with pytest.raises(AssertionError, match="TRY AGAIN.*normalise"):
        checks.check_voice_map(result.contrast_maps.var(1), result)
    u = result.uncertainty.flatten(1)
    correct = torch.tensor([True, False, True])
    assert passes(checks.check_voice_snr, u.mean(1) / u.std(1, correction=0), result, correct)
    assert "for the wrong predictions" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="TRY AGAIN.*correction=0"):
        checks.check_voice_snr(u.mean(1) / u.std(1), result, correct)
    with pytest.raises(AssertionError, match="TRY AGAIN.*inverted"):
        checks.check_voice_snr(u.std(1, correction=0) / u.mean(1), result)
    lit = result._replace(explanation=result.uncertainty.flip(-1) ** 2)   # this tiny network's CAMs are all 0
    e = lit.explanation.flatten(1)
    with pytest.raises(AssertionError, match="TRY AGAIN.*explanation"):
        checks.check_voice_snr(e.mean(1) / e.std(1, correction=0), lit)
    with pytest.raises(AssertionError, match="TRY AGAIN.*variance"):
        checks.check_voice_snr(u.mean(1) / u.var(1, correction=0), result)
    with pytest.raises(AssertionError, match="TRY AGAIN.*one number"):
        checks.check_voice_snr(u.mean() / u.std(correction=0), result)
    with pytest.raises(AssertionError, match="TRY AGAIN.*flatten"):
        checks.check_voice_snr(result.uncertainty.mean(1) / result.uncertainty.std(1, correction=0), result)
    with pytest.raises(AssertionError, match="empty"):
        checks.check_voice_snr(..., result)
    assert passes(checks.check_explanation_overlap,
                  ve.explanation_overlap(result.explanation, result.uncertainty, 0.3), result, 0.3)
    with pytest.raises(AssertionError, match="TRY AGAIN"):
        checks.check_explanation_overlap(torch.full((3,), 0.77), result, 0.3)
