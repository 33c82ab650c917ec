"""Each method's facts are declared once, beside it (_core.registry): a method registered in any module
appears in every table, loop and widget of its family, and no name is registered twice with other facts."""
import pytest
import torch
from _explain_models import images, small_cnn

from inferml_course import explain
from inferml_course._core import directions as D
from inferml_course._core.registry import Registry
from inferml_course.explain import registry as ER
from inferml_course.explain.widgets import INTERACTIVE_OPTIONS
from inferml_course.uncertainty import experiments, scores
from inferml_course.uncertainty import registry as SR
from inferml_course.uncertainty.attribution import methods as UA
from conftest import forget_direction

TEACHING_ORDER = (
    "saliency", "input_x_gradient", "deconvnet", "guided_backprop", "smoothgrad", "integrated_gradients",
    "blur_ig", "fullgrad", "occlusion", "rise", "lime", "kernel_shap", "grad_cam", "grad_cam_plus_plus",
    "counterfactual_cam", "contrast_cam")


def test_teaching_order_and_tables_are_unchanged():
    assert tuple(explain.METHODS) == TEACHING_ORDER and explain.METHODS == TEACHING_ORDER
    assert explain.SIGNED == {"input_x_gradient", "deconvnet", "guided_backprop", "integrated_gradients", "blur_ig",
                              "occlusion", "lime", "kernel_shap"}
    assert dict(INTERACTIVE_OPTIONS) == {
        "smoothgrad": {"samples": 25}, "integrated_gradients": {"steps": 32}, "blur_ig": {"steps": 32},
        "rise": {"n_masks": 1000}, "lime": {"samples": 200}, "kernel_shap": {"samples": 200}}
    assert scores.available_scores() == (
        "msp", "entropy", "margin", "nll", "max_logit", "energy", "odin", "mahalanobis", "mc_dropout",
        "mc_dropout_mi", "ensemble", "ensemble_mi", "gradnorm", "purview", "gradtrust", "gradtrust_topk")
    assert tuple(UA.UA_METHODS) == ("ua_backprop", "optimization_ua", "gradient", "smoothgrad",
                                    "integrated_gradients", "blur_ig", "fullgrad", "occlusion", "lime",
                                    "kernel_shap", "kernel_shap_segments", "clue", "delta_clue")
    assert tuple(UA.BASELINES) == tuple(UA.UA_METHODS)[2:-2] and UA.METHOD_NAMES["gradient"] == "Grad"
    assert UA.METHOD_NAMES["delta_clue"] == "δ-CLUE"  # the counterfactual baselines, registered in their module
    assert experiments.TUTORIAL_NAMES["msp"] == "Softmax"
    assert experiments.TUTORIAL_VARIANTS["gradtrust_topk_slide"] == ("gradtrust_topk",
                                                                      {"ratio": "predicted_over_contrast"})
    with pytest.raises(TypeError):
        explain.FAMILIES["saliency"] = "cam"  # read-only views


def test_an_explainer_registered_elsewhere_appears_everywhere():
    @ER.explainer("half_saliency", family="gradient", signed=False, interactive={"scale": 0.5}, label="Half")
    def half_saliency(model, x, target=None, scale=1.0):
        return scale * explain.saliency(model, x, target)

    try:
        assert explain.METHODS[-1] == "half_saliency" and explain.FAMILIES["half_saliency"] == "gradient"
        assert "half_saliency" not in explain.SIGNED and INTERACTIVE_OPTIONS["half_saliency"] == {"scale": 0.5}
        model, x = small_cnn(), images(2)
        assert torch.allclose(explain.explain("half_saliency", model, x, 0, scale=0.5),
                              0.5 * explain.saliency(model, x, 0))
        pytest.importorskip("ipywidgets")
        from inferml_course.datasets import ImageDataset
        from inferml_course.explain.widgets import MethodExplorer

        data = ImageDataset(images(3), torch.tensor([0, 1, 2]), [str(i) for i in range(10)], {}, "tiny")
        explorer = MethodExplorer(model, data)
        assert ("Half", "half_saliency") in [tuple(o) for o in explorer.method.options]
        assert explorer.options["half_saliency"] == {"scale": 0.5}
        assert explorer.explain(0, "half_saliency")["map"].shape == x.shape[-2:]
    finally:
        ER.EXPLAINERS.remove("half_saliency")
    assert "half_saliency" not in explain.METHODS


def test_a_score_registered_elsewhere_appears_everywhere():
    @SR.score("top_logit_gap", confidence=True, quantity="z(1st) - z(2nd) (a confidence)", family="logit",
              reference="test", label="Logit gap", from_pass=lambda p: p.logits.topk(2, 1).values.diff(dim=1)[:, 0].neg())
    def top_logit_gap(model, x, batch_size="auto"):
        return model(x).topk(2, 1).values.diff(dim=1)[:, 0].neg()

    try:
        assert "top_logit_gap" in scores.SCORES and scores.available_scores()[-1] == "top_logit_gap"
        assert D.REGISTRY["top_logit_gap"].kind == D.SCORE and D.higher_is_better("top_logit_gap") is True
        assert experiments.TUTORIAL_NAMES["top_logit_gap"] == "Logit gap"
        model, x = small_cnn(), images(4)
        result = scores.score_batch(model, x, ["msp", "top_logit_gap"])
        with torch.no_grad():
            assert torch.allclose(result.scores["top_logit_gap"], -top_logit_gap(model, x), atol=1e-6)
        assert torch.allclose(scores.uncertainty("top_logit_gap", model, x), result.scores["top_logit_gap"],
                              atol=1e-6)
        assert "top_logit_gap" in scores.score_batch(model, x).scores  # in the default names: it applies
    finally:
        SR.REGISTRY.remove("top_logit_gap")
        forget_direction("top_logit_gap")
    assert "top_logit_gap" not in scores.SCORES


def test_no_name_is_registered_twice_with_other_facts():
    spec = scores.SCORES["msp"]
    with pytest.raises(ValueError, match="other facts"):
        SR.REGISTRY.add(SR.ScoreSpec("msp", spec.function, spec.quantity, "logit", spec.reference, True))
    with pytest.raises(ValueError, match="other facts.*signed"):
        ER.explainer("saliency", family="gradient", signed=True, label="Saliency", order=10)(explain.saliency)
    # the same facts again (a reloaded module) keep the entry
    ER.explainer("saliency", family="gradient", label="Saliency", order=10)(explain.saliency)
    assert explain.METHODS == TEACHING_ORDER
    with pytest.raises(ValueError, match="cannot also mean"):
        SR.score("entropy", confidence=True, quantity="?", family="softmax", reference="?")(lambda m, x: x)
    assert D.higher_is_better("ECE") is False  # loads the metric's family
    with pytest.raises(ValueError, match="cannot also mean"):  # a new score may not reuse a metric's name
        SR.score("ECE", confidence=True, quantity="?", family="softmax", reference="?")(lambda m, x: x)
    assert "ECE" not in scores.SCORES
    # every family's names are unique across kinds: an explainer, a score and an attribution method
    for registry in (ER.EXPLAINERS, scores.SCORES, UA.REGISTRY):
        assert len(set(registry)) == len(registry)


def test_registry_order_and_loading():
    loaded = []
    r = Registry("thing", lambda: loaded.append(True))
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Thing:
        name: str
        order: float | None = None

    r.add(Thing("c")), r.add(Thing("b", 2)), r.add(Thing("a", 1))
    assert r.names() == ("a", "b", "c") and loaded == [True]
    assert list(r) == ["a", "b", "c"] and loaded == [True]  # the loader runs once


def test_a_direction_is_found_before_its_family_is_imported():
    import subprocess
    import sys

    code = ("import sys; from inferml_course._core import tables; "
            "assert 'inferml_course.uncertainty.metrics' not in sys.modules; "
            "t = tables.format_table({'a': {'AUROC': 0.7}, 'b': {'AUROC': 0.9}}, marks=True); "
            "assert '0.900*' in t, t; "
            "from inferml_course._core import directions as D; assert D.higher_is_better('gradtrust')")
    subprocess.run([sys.executable, "-c", code], check=True)
