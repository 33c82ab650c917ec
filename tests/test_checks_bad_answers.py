"""Every exercise checker judges a student's answer like any other input (issue 32).

The sweep finds every public ``check_*`` of every ``inferml_course/checks/lessonNN.py`` by itself, so a new
checker is covered (and fails here until it has a case in ``CASES``). For each checker it builds a valid
context (the arguments the notebook passes beside the answer) from tiny models and tensors, checks that
the right answer passes in the forms a student may give it, then puts bad values in every answer argument
that ``@checker`` declares (and in every part of a tuple answer, every value of a dict answer): NaN, +-inf,
a string, None, ..., a bool, a complex number, an object, a list of the wrong length, a ragged list, a
tensor of the wrong shape or dtype, the right answer with NaN or inf inside, a dict missing a key.
Each must get ``AssertionError("[TRY AGAIN] ...")`` with a message that says what it got, and nothing
may print ``[PASS]``. The checkers run strict (``INFERML_STRICT_CHECKS=1``): any other exception is a
failure here, so each cause is judged by the helpers of ``checks._common``, not by the catch-all. Outside
strict mode (a student's notebook) every checker returns None and raises nothing: a ``[PASS]`` is printed,
a ``[TRY AGAIN]`` shown as a box (Jupyter) or a line of text, so "Run All" goes on.
"""
from __future__ import annotations

import functools
import importlib
import inspect
import math
import pkgutil

import numpy as np
import pytest
import torch

from inferml_course import checks, datasets, evaluate, explain, models
from inferml_course.checks import _common
from inferml_course.datasets import CORRUPTIONS, ImageDataset
from inferml_course.explain import gradients
from inferml_course.fisher import toys
from inferml_course.findings import Finding
from inferml_course.intervene import adversarial, causal, membership
from inferml_course.uncertainty import attribution, bayesian, calibration, conformal, experiments, metrics, trust, \
    voice

from _explain_models import images, small_cnn

torch.set_num_threads(1)
NAN, INF = float("nan"), float("inf")
EPSILONS = [e / 255 for e in (0.5, 1, 2, 4, 8, 16, 32, 64, 128)]


def discover() -> dict:
    """{name: function} of every public check_* defined in a lessonNN module of inferml_course.checks."""
    found = {}
    for info in pkgutil.iter_modules(checks.__path__):
        if info.name.startswith("lesson"):
            module = importlib.import_module(f"{checks.__name__}.{info.name}")
            for name, fn in inspect.getmembers(module, inspect.isfunction):
                if name.startswith("check_") and fn.__module__ == module.__name__:
                    found[name] = fn
    return found


CHECKERS = discover()


# --------------------------------------------------------------------------- contexts: tiny, built once

@functools.lru_cache(maxsize=None)
def classifier(num_classes=5, seed=0):
    return small_cnn(torch.float32, seed=seed, num_classes=num_classes)


@functools.lru_cache(maxsize=None)
def batch(n=3, seed=1, size=16):
    return images(n, h=size, w=size, dtype=torch.float32, seed=seed)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@functools.lru_cache(maxsize=None)
def voice_result():
    return voice.voice(small_cnn(), images(3))


# Each case returns (the context as keyword arguments, the right answer).

def case_class_counts():
    labels = torch.tensor([0, 1, 2, 0, 1, 1])
    dataset = ImageDataset(batch(6), labels, ["a", "b", "c"])
    return {"dataset": dataset}, torch.bincount(labels, minlength=3)


def case_accuracy():
    x, y = batch(6), torch.tensor([0, 1, 2, 0, 1, 2])
    return {"model": classifier(3), "images": x, "labels": y}, models.accuracy(classifier(3), x, y)


def case_corruption_accuracies():
    x, y = batch(6), torch.tensor([0, 1, 2, 0, 1, 2])
    table = models.accuracy_under_corruptions(classifier(3), x, y, severities=(5,), progress=False)[:, 0]
    return ({"model": classifier(3), "images": x, "labels": y, "severity": 5},
            {c: float(v) for c, v in zip(CORRUPTIONS, table)})


def case_bernoulli_fisher():
    return {"theta": 0.1}, 1 / (0.1 * 0.9)


def case_fisher_trace():
    g = torch.randn(6, 4, generator=gen())
    return {"grads": g}, float(g.pow(2).sum(1).mean())


def case_steepest_direction():
    theta = torch.tensor([1.0, -2.0], dtype=torch.float64)
    return {"theta": [1.0, -2.0]}, -toys.toy_gradient(toys.logistic_toy_loss, theta)


def case_saliency_by_hand():
    x = batch(2)
    return {"model": classifier(), "x": x, "target": None}, gradients.saliency(classifier(), x, channels="keep")


def case_ig_completeness():
    x = batch(2)
    _, gap = explain.integrated_gradients(classifier(), x, steps=4, return_gap=True)
    return {"model": classifier(), "x": x, "target": None, "steps": 4}, gap


def case_occlusion_randomization():
    x, other = batch(3), classifier(seed=1)
    maps = [explain.occlusion(m, x, window=4, stride=4) for m in (classifier(), other)]
    return ({"model": classifier(), "random_model": other, "x": x, "target": None, "window": 4, "stride": 4},
            float(evaluate.rank_correlation(*maps).mean()))


def case_contrast_signal():
    z = torch.tensor([2.0, 0.5, -1.0])
    right = torch.softmax(z, 0)
    right[1] -= 1
    return {"logits": z, "contrast": 1}, right


def case_energy_by_hand():
    maps = torch.randn(4, 6, 6, generator=gen())
    maps[3] = -maps[3].abs()                       # no positive mass: NaN is accepted for this image only
    masks = torch.zeros(4, 6, 6, dtype=torch.bool)
    masks[:, 1:4, 2:5] = True
    return {"maps": maps, "masks": masks}, evaluate.energy_pointing_game(maps, masks)


def case_question_gradient():
    h, z = torch.randn(8, generator=gen(1)), torch.randn(5, generator=gen(2))
    onehot = torch.nn.functional.one_hot(torch.tensor(2), 5).float()
    return {"h": h, "logits": z, "question": 2}, torch.outer(torch.softmax(z, 0) - onehot, h)


@functools.lru_cache(maxsize=None)
def calibration_set():
    probs = torch.softmax(3 * torch.randn(200, 4, generator=gen()), 1)
    labels = torch.where(torch.rand(200, generator=gen(1)) < 0.6, probs.argmax(1),
                         torch.randint(0, 4, (200,), generator=gen(2)))
    return probs, labels


def case_ece_by_hand():
    probs, labels = calibration_set()
    return {"probs": probs, "labels": labels}, calibration.expected_calibration_error(probs, labels, 15)


def case_decomposition():
    probs = torch.softmax(torch.randn(4, 6, 3, generator=gen()), -1)
    return {"probs": probs}, tuple(bayesian.decompose(probs))


def case_ece():
    probs, labels = calibration_set()
    return {"probs": probs, "labels": labels}, calibration.expected_calibration_error(probs, labels, 15)


def case_temperature():
    logits, y = 4 * torch.randn(80, 3, generator=gen()), torch.randint(0, 3, (80,), generator=gen(1))
    return {"logits": logits, "labels": y}, calibration.fit_temperature(logits, y)


def case_gradtrust():
    logits = 3 * torch.randn(10, 5, generator=gen())
    return {"logits": logits}, trust.gradtrust_from_logits(logits)


def case_auac():
    u, correct = torch.randn(100, generator=gen()), torch.rand(100, generator=gen(1)) < 0.6
    return {"scores": u, "correct": correct}, metrics.auac(u, correct)


def case_quadrant_shares():
    t, c = torch.randn(101, generator=gen(1)).exp(), torch.rand(101, generator=gen(2))
    correct = torch.rand(101, generator=gen(3)) < 0.6
    counts = experiments.quadrant_counts(t, c, correct)
    right = {k: v["wrong"] / (v["wrong"] + v["correct"]) for k, v in counts.items() if k != "splits"}
    return {"trust": t, "confidence": c, "correct": correct}, right


def case_asserted_findings():
    seeds = {f"seed {s}": v for s, v in zip(range(11, 16), (0.2, 0.3, 0.25, 0.1, 0.4))}
    found = {"holds": Finding("06", "a", 0.3, 0.2, 0.4, seeds), "noise": Finding("06", "b", 0.05, -0.01, 0.1, seeds)}
    return {"found": found}, ["holds"]


def case_voice_map():
    result = voice_result()
    return {"result": result}, explain.normalize_maps(result.contrast_maps.var(1))


def case_voice_snr():
    result = voice_result()
    return {"result": result, "correct": torch.tensor([True, False, True])}, voice.snr(result.uncertainty)


def case_explanation_overlap():
    result = voice_result()
    return ({"result": result, "threshold": 0.3},
            voice.explanation_overlap(result.explanation, result.uncertainty, 0.3))


def case_class_shares():
    probs = torch.softmax(torch.randn(20, 2, 5, generator=gen(), dtype=torch.float64), -1)
    return {"probs": probs, "measure": "epistemic"}, attribution.class_shares(probs)["epistemic"]


def case_murr():
    ratios = torch.tensor([[1.0, 0.9, 0.8, 0.5, 0.7], [1.0, 0.95, 0.9, 0.85, 0.6]])
    result = attribution.BlurringResult({0.02: 0.15, 0.05: 0.45}, {}, torch.tensor([0, 10, 20, 30, 51]), ratios,
                                        torch.ones(2))
    return {"result": result, "budget": 0.05}, 0.45


def case_anomaly_iou():
    maps = torch.randn(3, 8, 8, generator=gen(), dtype=torch.float64)
    masks = torch.zeros(3, 8, 8, dtype=torch.bool)
    masks[:, 2:5, 3:6] = True
    return {"maps": maps, "masks": masks}, attribution.anomaly_localization(maps, masks)["iou"]


def case_fgsm():
    x, y = batch(2), torch.tensor([0, 1])
    return ({"model": classifier(), "x": x, "y": y, "epsilon": 4 / 255},
            adversarial.fgsm(classifier(), x, y, epsilon=4 / 255))


def case_tpr_at_fpr():
    scores, member = torch.randn(200, generator=gen()), torch.rand(200, generator=gen(1)) < 0.5
    scores = scores + member.float()
    return {"scores": scores, "is_member": member, "fpr": 0.05}, membership.tpr_at_fpr(scores, member, 0.05)


def case_watermark_following():
    probs = torch.softmax(torch.randn(3, 4, 5, 3, generator=gen()), -1)
    return {"probs": probs}, causal.follow_rates(probs)["watermark"]


def case_average_drop():
    return {"full": torch.tensor([0.8, 0.5]), "masked": torch.tensor([0.6, 0.6])}, 12.5


def case_huffman_bits():
    return {"counts": [45, 13, 12, 16, 9, 5]}, 224


def case_deletion_curve():
    x, m = batch(1, size=8)[0], torch.rand(8, 8, generator=gen())
    right = evaluate.deletion_curve(classifier(), x[None], m[None], steps=16, substrate="black")[0]
    return {"model": classifier(), "image": x, "saliency_map": m, "steps": 16, "substrate": "black"}, right


@functools.lru_cache(maxsize=None)
def shipped(name):
    """A shipped tiny trained model (loads from data/, offline): random weights never flip under FGSM."""
    return models.load_model(name, device="cpu", progress=False)


def case_smallest_flip():
    model, x = shipped("signs_cnn"), datasets.generate_signs(1, seed=0).images
    with torch.no_grad():
        before = model(x).argmax(1)
        right = next(e for e in EPSILONS if model(adversarial.fgsm(model, x, epsilon=e)).argmax(1) != before)
    return {"model": model, "x": x, "epsilons": EPSILONS}, right


@functools.lru_cache(maxsize=None)
def audit():
    """Lesson 11's audit in small: the watermark-reading model on watermarked signs."""
    data = datasets.generate_signs(12, seed=0, spurious=True)
    return shipped("signs_spurious_cnn"), data.images, data.labels, data.masks["watermark"]


def case_watermark_share():
    model, x, _, masks = audit()
    share = evaluate.energy_pointing_game(explain.saliency(model, x), masks).mean().item()
    return {"model": model, "images": x, "masks": masks}, share


def case_shortcut():
    model, x, y, _ = audit()
    with torch.no_grad():
        drop = ((model(x).argmax(1) == y).float().mean()
                - (model(causal.set_watermark(x, None)).argmax(1) == y).float().mean()).item()
    return {"model": model, "images": x, "labels": y}, (drop, "watermark" if drop > 0.5 else "sign")


def _class_probs(n, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % k
    logits = torch.randn(n, k, generator=g, dtype=torch.float64) + 3 * torch.nn.functional.one_hot(labels, k)
    return logits.softmax(1), labels


def case_smallest_alpha():
    return {"n": 19}, 1 / 20


def case_aps_scores():
    probs, labels = _class_probs(12)
    return {"probs": probs, "labels": labels}, conformal.conformity_scores(probs, labels, "aps")


def case_conformal_choice():
    (p_cal, y_cal), (p_eval, y_eval) = _class_probs(400, seed=1), _class_probs(200, seed=2)
    context = {"p_cal": p_cal, "y_cal": y_cal, "p_eval": p_eval, "y_eval": y_eval}
    rates = {s: float((conformal.set_size(conformal.calibrate(p_cal, y_cal, 0.02, s, classwise=True, lam=0.1,
                                                                   k_reg=1).predict(p_eval)) > 1).double().mean())
             for s in ("lac", "aps", "raps")}
    return context, {"score": min(rates, key=rates.get), "classwise": True, "alpha": 0.02, "randomized": False}


CASES = {name[len("case_"):]: fn for name, fn in globals().items() if name.startswith("case_")}


# --------------------------------------------------------------------------- bad answers

def generic_bad():
    """Bad values for any answer: (label, value)."""
    return [("NaN", NAN), ("inf", INF), ("-inf", -INF), ("a numpy NaN", np.float64("nan")),
            ("a 0-d NaN tensor", torch.tensor(NAN)), ("a string", "abc"), ("an empty string", ""),
            ("None", None), ("...", ...), ("a bool", True), ("a complex number", 1 + 2j), ("an object", object()),
            ("a list of 2", [1, 2]), ("a ragged list", [[1, 2], [3]]), ("a list of strings", ["a", "b"]),
            ("a wrong-shape tensor", torch.zeros(7, 3, 5)), ("a bool tensor", torch.ones(7, 3, 5, dtype=torch.bool)),
            ("an empty tensor", torch.zeros(0)), ("an empty dict", {}), ("a set", {1.0})]


WELL_FORMED = {"a list of 2"}  # two numbers: the right form for a checker of two values (a wrong answer there)


def derived_bad(right):
    """Bad values made from the right answer: the right form with a wrong inside."""
    if isinstance(right, torch.Tensor):
        r = right.detach()
        inf = r.double().clone().flatten()
        inf[0] = INF
        out = [("the right shape, all NaN", torch.full(r.shape, NAN)), ("one inf inside", inf.view(r.shape)),
               ("the right shape as bool", r.bool()), ("the right shape as complex", r.to(torch.complex128)),
               ("the values twice", torch.cat([r.flatten(), r.flatten()])), ("as a string", str(r.tolist()))]
        if r.numel() > 1:
            out.append(("a list one short", r.flatten().tolist()[:-1]))
        return out
    if isinstance(right, (int, float)):
        return [("as a string", str(right)), ("twice, in a list", [right, right]),
                ("twice, in a tensor", torch.tensor([right, right])), ("as a complex", complex(right, 1)),
                ("in a bool tensor", torch.tensor(True))]
    if isinstance(right, dict):
        first = next(iter(right))
        out = [("a key missing", {k: v for k, v in right.items() if k != first}),
               ("an extra key", {**right, "extra": 0.5}), ("as a list of values", list(right.values()))]
        return out + [(f"{label} in the value of {first!r}", {**right, first: value})
                      for label, value in generic_bad() if not isinstance(value, dict)]
    if isinstance(right, list):  # a list of keys
        return [("an unhashable item", [list(right)]), ("an unknown key", right + ["nope"]),
                ("one key as a string", right[0]), ("a dict", dict.fromkeys(right, 1)),
                ("a tensor", torch.ones(len(right)))]
    raise TypeError(f"no bad values for a right answer of type {type(right).__name__}")


def bad_answers(fn, right):
    """(label, value of the answer argument) for every bad answer of ``fn``."""
    if fn.parts:  # a tuple answer: each part, then the tuple itself
        out = [("one part short", tuple(right[:-1])), ("one part too many", tuple(right) + (right[0],)),
               ("as a dict", dict(zip(fn.parts, right)))]
        for i, part in enumerate(fn.parts):
            bad = generic_bad() + (derived_bad(right[i]) if not isinstance(right[i], str) else [])
            out += [(f"{label} as {part}", tuple(value if j == i else r for j, r in enumerate(right)))
                    for label, value in bad]
        return out + generic_bad()
    return generic_bad() + derived_bad(right)


def good_forms(right):
    """The right answer in other forms a student may give it (all must pass)."""
    if isinstance(right, torch.Tensor):
        return [right, right.tolist(), right.numpy(), right.double(), right.clone().requires_grad_(
            right.is_floating_point())]
    if isinstance(right, (int, float)):
        return [right, torch.tensor(right), np.float64(right), torch.tensor([right])]
    return [right]


@functools.lru_cache(maxsize=None)
def built(name):
    return CASES[name]()


# --------------------------------------------------------------------------- the sweep

def test_every_checker_is_declared_and_has_a_case():
    assert len(CHECKERS) >= 35 and set(CHECKERS) == set(checks.__all__)
    undeclared = [n for n, fn in CHECKERS.items() if not hasattr(fn, "answers")]
    assert not undeclared, f"mark these with @checker(...) from checks._common: {undeclared}"
    missing = sorted(set(n[len("check_"):] for n in CHECKERS) - set(CASES))
    assert not missing, f"add case_<name> to {__name__} for: {missing}"
    for name, fn in CHECKERS.items():
        params = inspect.signature(fn).parameters
        assert all(a in params for a in fn.answers), name


@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_the_right_answer_passes_in_every_form(name, capsys):
    fn = CHECKERS[name]
    context, right = built(name[len("check_"):])
    for form in good_forms(right):
        assert fn(form, **context) is None    # no Out: True echo in the notebook
        assert capsys.readouterr().out.startswith("[PASS]"), (name, type(form))


@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_every_bad_answer_gets_try_again(name, capsys, monkeypatch):
    monkeypatch.setenv(_common.STRICT_ENV, "1")   # any other exception fails here
    fn = CHECKERS[name]
    context, right = built(name[len("check_"):])
    for argument in fn.answers:
        assert argument == "answer", "a second answer argument needs its right value in the case"
        for label, value in bad_answers(fn, right):
            with pytest.raises(AssertionError, match=r"^\[TRY AGAIN\] ") as caught:
                fn(**{**context, argument: value})
            message = str(caught.value)
            if label not in WELL_FORMED:  # malformed: the message says what it got
                assert "got" in message or "empty" in message, (name, label, message)
            assert not any(line.startswith("[PASS]") for line in capsys.readouterr().out.splitlines()), (name, label)


@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_a_student_sees_try_again_and_runs_on(name, capsys, monkeypatch):
    """Outside strict mode an empty or malformed answer raises nothing: the checker shows [TRY AGAIN] with its
    hint, returns None, and the notebook's next cell runs."""
    monkeypatch.setenv(_common.STRICT_ENV, "0")
    fn = CHECKERS[name]
    context, right = built(name[len("check_"):])
    for value in (..., "abc"):
        assert fn(**{**context, fn.answers[0]: value}) is None
        out = capsys.readouterr().out
        assert out.startswith("[TRY AGAIN] ") and len(out) > 40 and "[PASS]" not in out, (name, value, out)
        assert "Traceback" not in out and _common.REPORT not in out, (name, value, out)


# --------------------------------------------------------------------------- the examples

def test_a_nan_accuracy_gets_try_again_not_pass(capsys):
    context, _ = built("accuracy")
    with pytest.raises(AssertionError, match=r"^\[TRY AGAIN\] accuracy should be a finite number, got nan"):
        checks.check_accuracy(float("nan"), **context)
    assert "[PASS]" not in capsys.readouterr().out


def test_a_string_answer_gets_try_again_not_a_value_error():
    context, _ = built("accuracy")
    with pytest.raises(AssertionError, match=r"^\[TRY AGAIN\] accuracy should be one number, got the string 'abc'"):
        checks.check_accuracy("abc", **context)


# --------------------------------------------------------------------------- the catch-all of @checker

@_common.checker(answer="the toy answer")
def _check_toy(answer, context):
    _common.passed(f"{answer + context}")      # an odd answer makes + raise


class Odd:
    def __add__(self, other):
        raise RuntimeError("odd objects cannot be added")


def test_checker_turns_an_unexpected_exception_into_try_again(monkeypatch, capsys):
    monkeypatch.delenv(_common.STRICT_ENV, raising=False)
    assert _check_toy(Odd(), 1) is None
    assert capsys.readouterr().out == (
        "[TRY AGAIN] checking the toy answer stopped with RuntimeError: odd objects cannot be added. Check that "
        f"your answer has the form the exercise asks for (if it has, {_common.REPORT}).\n")
    assert _check_toy(1, 2) is None and capsys.readouterr().out == "[PASS] 3\n"
    monkeypatch.setenv(_common.STRICT_ENV, "1")          # the tests: a checker's own bug stays visible
    with pytest.raises(RuntimeError, match="cannot be added"):
        _check_toy(Odd(), 1)
    with pytest.raises(AssertionError, match=r"^\[TRY AGAIN\] the toy answer is still empty"):
        _check_toy(None, 1)                              # and a wrong answer fails the solution notebook
    monkeypatch.setenv(_common.STRICT_ENV, "0")
    assert _check_toy(Odd(), 1) is None
    assert capsys.readouterr().out.startswith("[TRY AGAIN] checking the toy answer stopped with RuntimeError")


def test_try_again_is_a_box_in_jupyter(monkeypatch, capsys):
    """In an IPython kernel the [TRY AGAIN] is one display: an HTML box (the hint escaped) with the same plain
    text beside it, and nothing on stdout, no traceback."""
    IPython = pytest.importorskip("IPython")
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: shown.append((obj, raw)))
    monkeypatch.setenv(_common.STRICT_ENV, "0")
    assert _check_toy(..., 1) is None
    assert capsys.readouterr().out == ""
    [(bundle, raw)] = shown
    assert raw and bundle["text/plain"] == "[TRY AGAIN] the toy answer is still empty: replace the ... with your answer."
    assert "[TRY AGAIN]</b> the toy answer is still empty" in bundle["text/html"]
    _common.show_try_again("[TRY AGAIN] a <b>hint</b> & more")
    assert "a &lt;b&gt;hint&lt;/b&gt; &amp; more" in shown[-1][0]["text/html"]


def test_checker_keeps_its_own_hints_and_names_its_answers():
    assert CHECKERS["check_shortcut"].parts == ("accuracy_drop", "shortcut")
    assert CHECKERS["check_accuracy"].answers == ("answer",)
    assert inspect.signature(CHECKERS["check_accuracy"]).parameters["answer"].kind.name == "POSITIONAL_OR_KEYWORD"
    with pytest.raises(TypeError, match="no argument 'reply'"):
        _common.checker(reply="the reply")(lambda answer: None)
    with pytest.raises(AssertionError, match=r"^\[TRY AGAIN\] the toy answer is still empty"):
        _check_toy(..., None)                              # empty: judged before the context is touched
    with pytest.raises(AssertionError, match=r"^\[TRY AGAIN\] shortcut is still empty"):
        checks.check_shortcut((0.5, None), None, None, None)
    context, right = built("average_drop")
    with pytest.raises(AssertionError, match=r"^\[TRY AGAIN\] .*percent"):
        checks.check_average_drop(right / 100, **context)


def test_helpers_by_cause():
    t = _common.as_tensor([[1, 2], [3, 4]], "x", shape=(4,), flat=True)
    assert t.shape == (4,) and _common.as_tensor(np.ones((2, 3)), "x", shape=(2, 3)).dtype == torch.float64
    assert _common.as_number(np.float32(0.5), "x") == 0.5 and math.isnan(_common.as_number(NAN, "x", nan_ok=True))
    assert _common.as_int(3.0, "x") == 3 and _common.as_text("  Sign ", "x") == "Sign"
    nan_ok = torch.tensor([False, True])
    assert _common.as_tensor([1.0, NAN], "x", shape=(2,), nan_ok=nan_ok).isnan().tolist() == [False, True]
    cases = [(lambda: _common.as_tensor([NAN, 1.0], "x", nan_ok=nan_ok), r"x should hold finite numbers, got 1 NaN "
              r"value of 2 \(the first at index 0\)"),
             (lambda: _common.as_tensor(torch.ones(2, 2) * INF, "x"), r"4 infinite values of 4 .*index \(0, 0\)"),
             (lambda: _common.as_tensor([1.5, 2], "counts", dtype="integer"), "whole numbers, got 1.5 at index 0"),
             (lambda: _common.as_tensor(torch.ones(3), "x", shape=(2, 2)), r"shape \(2, 2\), got a tensor of shape"),
             (lambda: _common.as_int(2.5, "bits"), "whole number, got 2.5"),
             (lambda: _common.as_int(-1, "bits", low=0), "between 0 and inf, got -1"),
             (lambda: _common.as_mapping({"a": 1}, "d", ["a", "b"]), r"missing \['b'\], unexpected \[\]"),
             (lambda: _common.as_mapping({"a": "x", "b": 1}, "d", ["a", "b"], value=_common.as_number),
              r"d\['a'\] should be one number, got the string 'x'"),
             (lambda: _common.as_parts((1, 2, 3), "pair", ("a", "b")),
              r"pair should be 2 things: \(a, b\), got a tuple"),
             (lambda: _common.as_keys([{}], "keys", {"k": 1}, "found"), "not keys"),
             (lambda: _common.as_keys(["z"], "keys", {"k": 1}, "found"), "'z', which is not a key of found"),
             (lambda: _common.as_text("  ", "word"), "empty string")]
    for make, message in cases:
        with pytest.raises(AssertionError, match=r"^\[TRY AGAIN\] .*" + message):
            make()
