"""Checkers for lesson 06 (gradient-based trust): each compares an answer with the package's own computation."""
from __future__ import annotations

import torch

from ._common import (as_keys, as_mapping, as_number, as_tensor as _as_tensor, checker, fail as _fail,
                      passed as _pass)
from ..uncertainty.trust import gradtrust_from_logits
from ..uncertainty.metrics import auac
from ..uncertainty.experiments import quadrant_counts
from ..findings import MIN_SEEDS

__all__ = ["check_gradtrust", "check_auac", "check_quadrant_shares", "check_asserted_findings"]


@checker(answer="gradtrust")
def check_gradtrust(answer, logits: torch.Tensor, rtol: float = 1e-4) -> None:
    """Lesson 06: GradTrust (N,) computed from ``logits`` (N, K) in closed form."""

    got = _as_tensor(answer, "gradtrust", shape=(logits.shape[0],), flat=True, hint="One value per image.").double()
    expected = gradtrust_from_logits(logits).double().cpu()
    if not torch.allclose(got, expected, rtol=rtol):
        k = logits.shape[1]
        if torch.allclose(got, 1.0 / expected, rtol=rtol):
            _fail("you computed mean / max; GradTrust is max over classes divided by the mean.")
        _fail(f"values differ. Hint: a = (logits - 1/{k}) ** 4, then a.max(1) / a.mean(1).")
    return _pass(f"GradTrust ranges from {float(expected.min()):.2f} to {float(expected.max()):.2f} "
                 f"(possible range 1 to {logits.shape[1]}).")


@checker(answer="auac")
def check_auac(answer, scores: torch.Tensor, correct: torch.Tensor, atol: float = 5e-3) -> None:
    """Lesson 06: the AUAC (a fraction in [0, 1]) of uncertainty ``scores`` for predictions marked ``correct``."""

    value = as_number(answer, "auac")
    if value > 1:
        _fail(f"{value} is above 1: give the AUAC as a fraction, not a percentage.")
    if value < 0:
        _fail(f"{value} is below 0: the AUAC is a mean of accuracies, between 0 and 1.")
    expected = auac(scores, correct)
    flipped = auac(scores, correct, kind="trust")
    if abs(value - expected) > atol:
        if abs(value - flipped) <= atol:
            _fail("you ordered the images the wrong way round: keep the LEAST uncertain (most trusted) images.")
        _fail(f"{value:.4f} differs from the AUAC we measure. Hint: sort by uncertainty, and for each "
              "percentile x = 0, 1, ..., 99 % keep the most trusted (100 - x) % and average their accuracies.")
    return _pass(f"AUAC {expected:.1%} (a useless score would give the accuracy, {float(correct.float().mean()):.1%}).")


@checker(answer="the shares")
def check_quadrant_shares(answer, trust: torch.Tensor, confidence: torch.Tensor, correct: torch.Tensor) -> None:
    """Lesson 06: {quadrant name: share of wrong predictions among its images}, each axis split at its median
    ("high" = strictly above), as ``experiments.quadrant_counts`` counts them (NaN or 0 accepted for an empty
    quadrant)."""

    trust, confidence = torch.as_tensor(trust).detach().cpu(), torch.as_tensor(confidence).detach().cpu()
    correct = torch.as_tensor(correct).cpu().bool()
    counts = quadrant_counts(trust, confidence, correct)
    names = [k for k in counts if k != "splits"]
    empty = {k: counts[k]["wrong"] + counts[k]["correct"] == 0 for k in names}  # NaN (0 / 0) accepted there
    answer = as_mapping(answer, "the shares", names, form="{quadrant name: share}",
                        keys_hint=f"{', '.join(repr(n) for n in names)} (the four names of quadrant_counts)")
    got = {k: as_number(v, f"the share of {k!r}", nan_ok=empty[k]) for k, v in answer.items()}

    def shares(c):
        return {k: c[k]["wrong"] / (c[k]["wrong"] + c[k]["correct"]) if c[k]["wrong"] + c[k]["correct"] else None
                for k in names}

    def same(other):
        return all(abs(got[k] - v) <= 1e-6 if v is not None else (got[k] != got[k] or got[k] == 0)
                   for k, v in other.items())

    expected = shares(counts)
    if same(expected):
        worst = max((k for k in names if expected[k] is not None), key=expected.get)
        table = "; ".join(f"{k}: {counts[k]['wrong']} wrong of {counts[k]['wrong'] + counts[k]['correct']} "
                          f"({expected[k]:.0%})" if expected[k] is not None else f"{k}: empty" for k in names)
        return _pass(f"{table}. The highest share of mistakes: {worst}.")
    total_wrong, n = max(int((~correct).sum()), 1), correct.numel()
    if same({k: float(counts[k]["wrong"]) for k in names}):
        _fail("those are counts of mistakes; divide by the number of images in the quadrant to get a share.")
    if same({k: None if v is None else 1 - v for k, v in expected.items()}):
        _fail("those are the shares of correct predictions; the exercise asks for the wrong ones (~correct).")
    if same({k: counts[k]["wrong"] / total_wrong for k in names}):
        _fail("you divided by all the mistakes; divide by the number of images in each quadrant instead.")
    if same({k: counts[k]["wrong"] / n for k in names}):
        _fail("you divided by all N images; divide by the number of images in each quadrant instead.")
    swapped = shares(quadrant_counts(confidence, trust, correct))
    if same(swapped):
        _fail("trust and confidence are swapped: 'low trust, high confidence' means GradTrust below its median and "
              "the softmax confidence above its median.")
    if same(shares(quadrant_counts(trust, confidence, correct, float(trust.double().mean()),
                                   float(confidence.double().mean())))):
        _fail("you split at the means; split each axis at its median (torch.median).")
    _fail("not quite. Hint: high_t = trust > trust.median(), high_c = confidence > confidence.median(); for each "
          "quadrant mask, share = (~correct[mask]).float().mean().")


@checker(answer="the keys")
def check_asserted_findings(answer, found: dict) -> None:
    """Lesson 06 (a judgement): the keys of ``found`` ({key: findings.Finding}) whose comparison the lesson may
    assert: the 95 % interval excludes 0 and the effect has that sign on every one of at least
    ``findings.MIN_SEEDS`` retrainings (``Finding.holds``)."""

    got = as_keys(answer, "the keys", found, "found")
    expected = {k for k, f in found.items() if f.holds}
    if got == expected:
        return _pass(f"{len(expected)} of {len(found)} comparisons may be asserted; the others are stated with "
                     "their interval and range, without an assert.")
    extra, missing = got - expected, expected - got
    if extra:
        k = sorted(extra)[0]
        f = found[k]
        if f.low <= 0 <= f.high:
            _fail(f"{k!r}: its 95 % interval ({f.low:+.3f} to {f.high:+.3f}) contains 0, so it is within noise.")
        if len(f.seeds) < MIN_SEEDS:
            _fail(f"{k!r}: measured on {len(f.seeds)} retrainings; the rule needs at least {MIN_SEEDS}.")
        lo, hi = f.seed_range
        _fail(f"{k!r}: over the retrainings it ranges from {lo:+.3f} to {hi:+.3f}, so its sign depends on the "
              "training: seed-dependent, not asserted.")
    k = sorted(missing)[0]
    _fail(f"{k!r} also holds: its interval excludes 0 and it keeps its sign on every retraining.")
