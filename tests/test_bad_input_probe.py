"""The careless-user probe's examples (issue 32), each a test: the shared checks of ``_core`` refuse them
with an error that names the argument, or the function now gives the right answer."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from inferml_course import evaluate, explain, intervene, models
from inferml_course.explain import gradients
from inferml_course.introspection import reflection
from inferml_course.uncertainty import attribution as ua
from inferml_course.uncertainty import bayesian, calibration, experiments, scores, trust

from _explain_models import images, small_cnn


@pytest.fixture(scope="module")
def cnn():
    return small_cnn(dtype=torch.float32)


@pytest.fixture(scope="module")
def x():
    return images(4, dtype=torch.float32)


def _names(err, argument):
    assert argument in str(err.value), f"the message must name {argument!r}: {err.value}"


# --- booleans, NaN, counts, sequences ---------------------------------------------------------------------
def test_truthy_strings_are_refused(cnn, x):
    with pytest.raises(TypeError) as err:
        explain.grad_cam(cnn, x, relu="no")
    _names(err, "relu")


def test_nan_in_a_number_out_is_refused():
    a = torch.rand(3, 4, 4)
    with pytest.raises(ValueError) as err:
        evaluate.rank_correlation(a, torch.full_like(a, float("nan")))
    _names(err, "b")
    with pytest.raises(ValueError) as err:
        explain.neighbor_agreement(torch.tensor([[0.0, float("nan")], [1.0, 1.0]]), torch.tensor([0, 1]), k=1)
    _names(err, "features")
    with pytest.raises(ValueError) as err:
        calibration.temperature_scale(torch.zeros(2, 3), float("nan"))
    _names(err, "temperature")
    with pytest.raises(ValueError) as err:
        ua.binarize_maps(torch.rand(2, 4, 4), rule="threshold", threshold=float("nan"))
    _names(err, "threshold")
    with pytest.raises(ValueError) as err:
        ua.uncertainty_from_probs(torch.tensor([[[0.5, float("nan")]]]))
    _names(err, "probs")


@pytest.mark.parametrize("call, argument", [
    (lambda m, x: intervene.pgd(m, x, steps=10**9), "steps"),
    (lambda m, x: bayesian.mc_dropout_probs(m, x, samples=10**9), "samples"),
    (lambda m, x: ua.optimization_ua(m, x, steps=10**9), "steps"),
    (lambda m, x: explain.smoothgrad(m, x, samples=10**9), "samples"),
    (lambda m, x: gradients.quadrature("riemann_middle", 10**7), "steps"),
    (lambda m, x: models.train_model(m, x, torch.zeros(len(x), dtype=torch.long), epochs=10**9), "epochs"),
])
def test_counts_have_a_bound_checked_before_any_work(cnn, x, call, argument):
    with pytest.raises(ValueError, match="supported range") as err:
        call(cnn, x)
    _names(err, argument)


def test_a_scalar_where_a_sequence_is_due():
    with pytest.raises(TypeError) as err:
        ua.blurring_test(lambda x: x.mean((1, 2, 3)), torch.rand(2, 3, 8, 8), torch.rand(2, 8, 8), budgets=0.05)
    _names(err, "budgets")


# --- mismatched arguments ---------------------------------------------------------------------------------
def test_labels_out_of_range_are_not_a_success(cnn, x):
    with pytest.raises(ValueError) as err:
        intervene.success_rate(cnn, x, torch.full((len(x),), 99))
    _names(err, "y")


def test_contrast_classes_refuses_a_prediction_beyond_the_classes():
    with pytest.raises(ValueError) as err:
        explain.contrast_classes(torch.tensor([0, 5]), 5)
    _names(err, "prediction")


def test_ood_table_refuses_scores_of_another_batch(cnn, x):
    with pytest.raises(ValueError) as err:
        experiments.ood_table(cnn, x, {"noise": torch.rand(2, 3, 16, 16)}, ["msp"], id_scores={"msp": torch.rand(2)})
    _names(err, "id_scores")


def test_nearest_neighbors_refuses_gallery_features_of_another_count(cnn, x):
    gallery = images(6, dtype=torch.float32, seed=2)
    with pytest.raises(ValueError) as err:
        explain.nearest_neighbors(cnn, x, gallery, k=2, gallery_features=torch.rand(5, 16))
    _names(err, "gallery_features")


def test_corruption_table_names_n():
    from inferml_course import datasets
    data = datasets.load("signs", split="test")
    with pytest.raises(ValueError) as err:
        experiments.corruption_table(small_cnn(dtype=torch.float32, num_classes=len(data.classes)), data,
                                     ["fog"], n=0)
    assert str(err.value).startswith("n "), err.value


# --- channels, outputs, numpy -----------------------------------------------------------------------------
def test_grey_images_are_refused_by_a_colour_model(cnn):
    grey = torch.rand(2, 1, 16, 16)
    with pytest.raises(ValueError, match="channel") as err:
        explain.explain("saliency", cnn, grey)
    _names(err, "x")
    with pytest.raises(ValueError, match="channel"):
        scores.uncertainty("msp", cnn, grey)


class _TupleModel(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x), x.mean()


@pytest.mark.parametrize("call", [lambda m, x: scores.odin(m, x), lambda m, x: trust.purview(m, x),
                                  lambda m, x: bayesian.mc_dropout(m, x, samples=2)])
def test_a_model_that_returns_a_tuple_gets_a_clear_error(cnn, x, call):
    with pytest.raises((TypeError, ValueError), match="tuple"):
        call(_TupleModel(cnn), x)


def test_numpy_images_get_a_clear_error_in_the_games(cnn, x):
    maps = torch.rand(len(x), 16, 16)
    with pytest.raises(TypeError, match=r"torch.from_numpy\(x\)"):
        evaluate.insertion_deletion(cnn, x.numpy(), maps, steps=4)
    with pytest.raises(TypeError, match=r"torch.from_numpy\(maps\)"):
        evaluate.insertion_deletion(cnn, x, maps.numpy(), steps=4)


# --- dtypes -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("call", [
    lambda m, x: intervene.fgsm(m, x, epsilon=0.01),
    lambda m, x: intervene.pgd(m, x, epsilon=0.01, steps=2),
    lambda m, x: intervene.rise_and_shape(m, x, n_masks=8)["rise"] if isinstance(
        intervene.rise_and_shape(m, x, n_masks=8), dict) else intervene.rise_and_shape(m, x, n_masks=8)[0],
    lambda m, x: ua.ua_backprop(bayesian_model(m), x),
    lambda m, x: ua.optimization_ua(bayesian_model(m), x, steps=2, n_segments=4),
])
def test_float64_images_run_on_a_float32_model(cnn, x, call):
    torch.manual_seed(0)
    single = call(cnn, x)
    double = call(cnn, x.double())
    single = single[0] if isinstance(single, tuple) else single
    double = double[0] if isinstance(double, tuple) else double
    assert torch.allclose(single.double(), double.double(), atol=1e-4)


def bayesian_model(model):
    return ua.BayesianModel([model, model])


def test_introspective_classifier_takes_float64(cnn, x):
    intro = reflection.IntrospectiveClassifier(cnn).fit(x, torch.tensor([0, 1, 2, 3]), epochs=1)
    with torch.no_grad():
        assert torch.allclose(intro(x), intro(x.double()).float(), atol=1e-4)


def test_float16_fgsm_moves_every_pixel_or_is_refused(cnn, x):
    try:
        adv = intervene.fgsm(cnn, x.half(), epsilon=0.05)
    except (TypeError, ValueError) as err:
        assert "float16" in str(err)
        return
    moved = (adv.float() - x.half().float()).abs() > 0
    inside = (x > 0.05) & (x < 0.95)  # pixels the clamp to [0, 1] cannot hold back
    assert moved[inside].all()


# --- the command line -------------------------------------------------------------------------------------
def test_book_refuses_unknown_lessons(tmp_path):
    result = subprocess.run([sys.executable, "-m", "inferml_course", "book", "--lessons", "00", "99", "--out",
                             str(tmp_path), "--no-execute"], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "99" in result.stderr
