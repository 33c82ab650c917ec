"""Checkers for lesson 12 (conformal prediction): each recomputes what it compares with from the package."""
from __future__ import annotations

import torch

from ._common import as_mapping, as_number, as_tensor, checker, fail as _fail, passed as _pass
from ..uncertainty.conformal import calibrate, conformity_scores, coverage, set_size

__all__ = ["check_smallest_alpha", "check_aps_scores", "check_conformal_choice"]


@checker(answer="my_alpha")
def check_smallest_alpha(answer, n: int, atol: float = 1e-3) -> None:
    """Lesson 12: the smallest miscoverage rate alpha that ``n`` calibration images support, 1 / (n + 1)."""

    value = as_number(answer, "my_alpha")
    if not 0 < value < 1:
        _fail(f"alpha is a miscoverage rate in (0, 1), got {value}.")
    expected = 1 / (n + 1)
    if abs(value - expected) <= atol:
        return _pass(f"alpha = 1/(n + 1) = {expected:.4f}: k = ceil((n + 1)(1 - alpha)) = {n} = n, the largest "
                     f"calibration score. Any smaller alpha asks for the {n + 1}-th smallest of {n} scores.")
    if abs(value - 1 / n) <= atol:
        _fail("close: count n + 1 places, not n. The test image is the (n + 1)-th; solve "
              "ceil((n + 1)(1 - alpha)) <= n for alpha.")
    if value > expected:
        _fail(f"alpha = {value:.4f} works, but a smaller one still does: find where ceil((n + 1)(1 - alpha)) "
              "first exceeds n.")
    _fail(f"with alpha = {value:.4f} the rank ceil((n + 1)(1 - alpha)) is larger than n = {n}: that order "
          "statistic does not exist (the package refuses it). Try a larger alpha.")


@checker(answer="my_aps")
def check_aps_scores(answer, probs: torch.Tensor, labels: torch.Tensor, atol: float = 1e-5) -> None:
    """Lesson 12: the non-randomised APS score of each true label, (N,): the probability mass of the labels
    ranked at or above it."""

    want = conformity_scores(probs, labels, "aps")
    got = as_tensor(answer, "my_aps", shape=tuple(want.shape), flat=True).double()
    if torch.allclose(got, want, atol=atol):
        return _pass(f"APS scores match; median {want.median():.4f}: for a confident model most true labels "
                     "sit at the top with nearly all the mass.")
    p = torch.as_tensor(probs).double()
    y = torch.as_tensor(labels).long()
    p_y = p[torch.arange(len(y)), y]
    if torch.allclose(got, want - p_y, atol=atol):
        _fail("you summed the labels ranked strictly above the true one: include its own probability too.")
    if torch.allclose(got, 1 - p_y, atol=atol):
        _fail("that is the LAC score 1 - p_y. APS adds up the sorted probabilities down to the true label.")
    if torch.allclose(got, 1 - want + p_y, atol=atol):  # summed from the least probable label upwards
        _fail("sort the probabilities in DECREASING order (most probable first) before the cumulative sum.")
    _fail("sort each row in decreasing order, take the cumulative sum, and read it at the true label's rank "
          "(torch.sort(..., descending=True), torch.cumsum, and the inverse of the sort order).")


_KEYS = ("score", "classwise", "alpha", "randomized")


def _rechecks(p_cal, y_cal, p_eval, score: str, alpha: float) -> float:
    predictor = calibrate(p_cal, y_cal, alpha, score, classwise=True, lam=0.1, k_reg=1)
    return float((set_size(predictor.predict(p_eval)) > 1).double().mean())


@checker(answer="my_choice")
def check_conformal_choice(answer, p_cal, y_cal, p_eval, y_eval) -> None:
    """Lesson 12 (a judgement): the returns desk's settings, a dict with ``score``, ``classwise``, ``alpha`` and
    ``randomized``, judged against the requirements of the exercise and the re-check rates on the evaluation
    half (sets with more than one label, class-wise calibration at alpha = 0.02)."""

    answer = as_mapping(answer, "my_choice", _KEYS)
    alpha = as_number(answer["alpha"], "my_choice['alpha']")
    if answer["randomized"] is not False:
        _fail("the desk refuses sets that depend on a coin flip: randomized must be False.")
    if answer["classwise"] is not True:
        _fail("'at most 2 % for EVERY class' is a class-conditional requirement: the marginal guarantee only "
              "holds on average over classes, so calibrate each class on its own (classwise=True).")
    if abs(alpha - 0.02) > 1e-9:
        hint = ("it would miss more often than allowed" if alpha > 0.02 else
                "it is safe, but every extra percent of coverage costs re-checks")
        _fail(f"alpha is the miss rate you accept: {alpha:g} does not match 'at most 2 %' ({hint}).")
    score = answer["score"]
    if not isinstance(score, str) or score not in ("lac", "aps", "raps"):
        _fail(f"my_choice['score'] must be one of 'lac', 'aps', 'raps', got {score!r}.")
    rates = {s: _rechecks(p_cal, y_cal, p_eval, s, 0.02) for s in ("lac", "aps", "raps")}
    best = min(rates, key=rates.get)
    table = ", ".join(f"{s.upper()} {r:.1%}" for s, r in rates.items())
    if rates[score] > 1.05 * rates[best]:
        _fail(f"with these settings the re-check rates (sets of 2+ labels) are {table}: {score.upper()} sends "
              f"more parcels back than needed. Which score makes the smallest sets?")
    sets = calibrate(p_cal, y_cal, 0.02, score, classwise=True, lam=0.1, k_reg=1).predict(p_eval)
    return _pass(f"{score.upper()}, class-wise, alpha = 0.02, not randomised: re-check rates {table}; coverage "
                 f"{coverage(sets, y_eval):.1%} on the evaluation half.")
