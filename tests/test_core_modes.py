"""One mode policy (``_core.modes``): no silent switch, every flag and every buffer restored, also on errors.

Three models, each with a Bomb at ``classifier.dropout2``, a stale ``.grad`` and a frozen parameter
(:func:`_hygiene.arm_for_hygiene`):

* ``mixed``: an eval-mode SmallCNN with batch norm whose remaining dropout module is in training
  mode (the MC-dropout set-up): every policy but MC dropout's warns;
* ``wrapper``: a training-mode ``nn.Module`` (the default flag of a new module) around an eval-mode
  SmallCNN: nothing mode-dependent trains, so no warning, and the inner flags must not be flattened
  (``model.train(was)`` would switch the inner batch norm to training);
* ``train``: the SmallCNN in training mode: batch norm would update its running statistics.

For every public function that runs a model, listed from the registries, the test checks every
module's ``training`` flag, every ``state_dict`` value (``torch.equal``), the hooks, ``requires_grad``
and ``.grad`` after a call, after a call that raises in the forward pass and (where the function
takes a target) after a bad target; and that a call warns exactly once when a mode-dependent module
trains.
"""
import inspect
import warnings

import pytest
import torch
from torch import nn

from inferml_course import evaluate, explain, fisher, intervene, introspection, models
from inferml_course._core.modes import guarded, model_guard
from inferml_course.models import Ensemble
from inferml_course.uncertainty import attribution, scores, voice

from _explain_models import images, small_cnn
from _hygiene import arm_for_hygiene, assert_same, snapshot

K = 5


class Wrapper(nn.Module):
    """A new (so training-mode) module around an eval-mode model, exposing the parts methods look for."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.num_classes = inner.num_classes

    @property
    def cam_layer(self):
        return self.inner.cam_layer

    @property
    def last_layer(self):
        return self.inner.last_layer

    @property
    def normalize(self):
        return self.inner.normalize

    def embed(self, x):
        return self.inner.embed(x)

    def forward(self, x):
        return self.inner(x)


def _cnn(seed=0):
    return arm_for_hygiene(small_cnn(torch.float32, seed=seed, num_classes=K))


def build(kind, seed=0):
    """(model, bomb) for one of the three set-ups."""
    cnn = _cnn(seed)
    bomb = cnn.classifier.dropout2
    if kind == "mixed":
        cnn.classifier.dropout1.train()
        return cnn, bomb
    if kind == "wrapper":
        model = Wrapper(cnn)
        assert model.training and not cnn.training
        return model, bomb
    assert kind == "train"
    return cnn.train(), bomb


def x_(n=2):
    return images(n, dtype=torch.float32)


_STATS = {}


def mahalanobis_stats():
    if "stats" not in _STATS:
        fit = small_cnn(torch.float32, num_classes=K)
        _STATS["stats"] = scores.fit_mahalanobis(fit, images(2 * K, dtype=torch.float32, seed=5),
                                                 torch.arange(K).repeat(2))
    return _STATS["stats"]


FAST = {
    "smoothgrad": {"samples": 2}, "integrated_gradients": {"steps": 3}, "blur_ig": {"steps": 3},
    "occlusion": {"window": 8, "stride": 8}, "rise": {"n_masks": 6}, "lime": {"samples": 8, "n_segments": 4},
    "kernel_shap": {"samples": 8, "n_segments": 4},
}
SCORE_OPTIONS = {"mc_dropout": {"samples": 2}, "mc_dropout_mi": {"samples": 2}}
MC_DROPOUT = {"score:mc_dropout", "score:mc_dropout_mi"}
MAPS = torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(3))


def _score(name):
    def run(model, x):
        options = dict(SCORE_OPTIONS.get(name, {}))
        if name == "mahalanobis":
            options["stats"] = mahalanobis_stats()
        return scores.uncertainty(name, model, x, **options)
    return run


#: name -> (call(model, x), bad_target_call(model, x) or None)
CASES = {
    **{f"explain:{m}": (lambda model, x, m=m: explain.explain(m, model, x, **FAST.get(m, {})),
                        lambda model, x, m=m: explain.explain(m, model, x, target=[0, K], **FAST.get(m, {})))
       for m in explain.METHODS},
    **{f"score:{s}": (_score(s), None) for s in scores.SCORES},
    "voice:contrast_cam": (lambda model, x: voice.voice(model, x),
                           lambda model, x: voice.voice(model, x, target=[0, K])),
    "voice:smoothgrad": (lambda model, x: voice.voice(model, x, explainer="smoothgrad", samples=2),
                         lambda model, x: voice.voice(model, x, target=[0, K], explainer="smoothgrad", samples=2)),
    "ua_backprop": (lambda model, x: attribution.ua_backprop(model, x, samples=2), None),
    "optimization_ua": (lambda model, x: attribution.optimization_ua(model, x, samples=2, steps=2, n_segments=(4,)),
                        None),
    "attribute:gradient": (lambda model, x: attribution.attribute("gradient", model, x, posterior_samples=2), None),
    "heatmap_masking": (lambda model, x: evaluate.heatmap_masking(model, x, MAPS),
                        lambda model, x: evaluate.heatmap_masking(model, x, MAPS, target=[0, K])),
    "insertion_deletion": (lambda model, x: evaluate.insertion_deletion(model, x, MAPS, steps=4),
                           lambda model, x: evaluate.insertion_deletion(model, x, MAPS, target=[0, K], steps=4)),
    "deletion_curve": (lambda model, x: evaluate.deletion_curve(model, x, MAPS, steps=4),
                       lambda model, x: evaluate.deletion_curve(model, x, MAPS, target=[0, K], steps=4)),
    "insertion_curve": (lambda model, x: evaluate.insertion_curve(model, x, MAPS, steps=4),
                        lambda model, x: evaluate.insertion_curve(model, x, MAPS, target=[0, K], steps=4)),
    "structure_curves": (lambda model, x: evaluate.structure_curves(model, x, MAPS, thresholds=(0.0, 0.5)),
                         lambda model, x: evaluate.structure_curves(model, x, MAPS, target=[0, K],
                                                                    thresholds=(0.0, 0.5))),
    "fgsm": (lambda model, x: intervene.fgsm(model, x), lambda model, x: intervene.fgsm(model, x, y=[0, K])),
    "pgd": (lambda model, x: intervene.pgd(model, x, steps=2),
            lambda model, x: intervene.pgd(model, x, y=[0, K], steps=2)),
    "robustness_curve": (lambda model, x: intervene.robustness_curve(model, x, [0, 1], epsilons=(0.0, 0.03),
                                                                     attack="fgsm"),
                         lambda model, x: intervene.robustness_curve(model, x, [0, K], epsilons=(0.0, 0.03),
                                                                     attack="fgsm")),
    "fisher.per_sample_grads": (lambda model, x: fisher.per_sample_grads(model, x, params="last_layer"),
                                lambda model, x: fisher.per_sample_grads(model, x, target=[0, K],
                                                                         params="last_layer")),
    "fisher.gradient_norms": (lambda model, x: fisher.gradient_norms(model, x),
                              lambda model, x: fisher.gradient_norms(model, x, target=[0, K])),
    "fisher.fisher_information": (lambda model, x: fisher.fisher_information(model, x, params="last_layer"), None),
    "fisher.embeddings": (lambda model, x: fisher.embeddings(model, x), None),
    "introspective_features": (lambda model, x: introspection.introspective_features(model, x), None),
    "predict_logits": (lambda model, x: models.predict_logits(model, x), None),
    "accuracy": (lambda model, x: models.accuracy(model, x, torch.tensor([0, 1])), None),
}
KINDS = ("mixed", "wrapper", "train")
#: cases whose forward pass stops before the bomb (``model.embed`` ends at the penultimate layer)
NO_BOMB = {"fisher.embeddings"}


def _target(name, kind):
    """The model a case is called with (an Ensemble for the ensemble scores) and its bomb."""
    model, bomb = build(kind)
    if name in ("score:ensemble", "score:ensemble_mi"):
        other, _ = build(kind, seed=1)
        model = Ensemble([model, other])
    return model, bomb


def _mode_warnings(record):
    return [w for w in record if issubclass(w.category, UserWarning) and "training mode" in str(w.message)]


def _expects_warning(name, kind):
    # MC dropout samples with dropout on: that is its definition, so the mixed model is not warned about
    return kind != "wrapper" and not (kind == "mixed" and name in MC_DROPOUT)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(CASES))
def test_model_untouched_and_warned_once(name, kind):
    model, _ = _target(name, kind)
    before = snapshot(model)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        CASES[name][0](model, x_())
    found = _mode_warnings(record)
    assert len(found) == (1 if _expects_warning(name, kind) else 0), [str(w.message) for w in found]
    assert_same(before, snapshot(model))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", [n for n in CASES if n not in NO_BOMB])
def test_model_untouched_when_the_forward_pass_raises(name, kind):
    model, bomb = _target(name, kind)
    before = snapshot(model)
    bomb.armed = "forward"  # after every batch norm: a training-mode model has updated them already
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match="boom"):
            CASES[name][0](model, x_())
    bomb.armed = None
    assert_same(before, snapshot(model))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", [n for n, (_, bad) in CASES.items() if bad is not None])
def test_model_untouched_after_a_bad_target(name, kind):
    model, _ = _target(name, kind)
    before = snapshot(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError):
            CASES[name][1](model, x_())
    assert_same(before, snapshot(model))


# --- the two behaviours -----------------------------------------------------------------------------------

def _bn_training(model):
    return [m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


def test_as_is_runs_in_training_mode_and_eval_policy_runs_in_eval_mode():
    model, _ = build("train")
    x = x_(4)
    reference = small_cnn(torch.float32, num_classes=K)
    reference.classifier.dropout2 = nn.Identity()
    with torch.no_grad():
        eval_logits = reference(x)
    seen = []
    handle = model.features.block1.bn1.register_forward_pre_hook(lambda m, _i: seen.append(m.training))
    try:
        with pytest.warns(UserWarning, match="defined at inference"):
            logits = models.predict_logits(model, x)
        assert seen == [False]
        assert torch.allclose(logits, eval_logits, atol=1e-5)
        seen.clear()
        with pytest.warns(UserWarning, match="mix the samples"):
            explain.saliency(model, x)
        assert seen == [True]  # run as the user left it
    finally:
        handle.remove()
    assert all(_bn_training(model)) and model.training


def test_guard_restores_buffers_and_flags_on_error_and_costs_nothing_in_eval_mode():
    model, _ = build("train")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    guard = model_guard(model, "test")
    with pytest.warns(UserWarning, match="mix the samples"):
        guard.__enter__()
    try:
        model(x_(4))
        model.eval()
        raise RuntimeError("inside")
    except RuntimeError:
        guard.__exit__(RuntimeError, None, None)
    assert all(m.training for m in model.modules())
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with model_guard(model, "test") as guard:
            assert guard._buffers == []


def test_nested_guards_warn_once_and_the_outer_policy_applies():
    model, _ = build("train")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        with model_guard(model, "outer", "eval"):
            assert not any(_bn_training(model))
            with model_guard(model, "inner"):
                assert not any(_bn_training(model))
    assert len(_mode_warnings(record)) == 1
    assert all(_bn_training(model))


def test_guarded_keeps_signature_and_docstring():
    for fn in (explain.saliency, models.predict_logits, fisher.per_sample_grads, scores.msp, voice.voice,
               introspection.IntrospectiveClassifier.predict):
        assert hasattr(fn, "__wrapped__")
        assert inspect.signature(fn) == inspect.signature(fn.__wrapped__)
        assert fn.__doc__ == fn.__wrapped__.__doc__ and fn.__doc__
    with pytest.raises(TypeError, match="no argument"):
        guarded()(lambda x: x)
    with pytest.raises(ValueError, match="policy"):
        guarded(policy="silent")
