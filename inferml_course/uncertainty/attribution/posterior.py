"""Posterior samples for uncertainty attribution: :class:`BayesianModel` (the S posterior networks of MC
dropout with fixed masks, or of a deep ensemble) and :class:`UncertaintyModel` (the scalar uncertainty
U(x) the attribution methods of :mod:`.methods` explain).
"""
from __future__ import annotations

import contextlib
import math
import numbers

import torch
from torch import nn

from ..._core.arguments import checked
from ..._core.adapter import dropout_head
from ..._core.checks import check_choice, check_positive_int, check_seed
from ..._core.modes import DROPOUT_TYPES, eval_mode
from ..bayesian import MEASURES, Decomposition, _decomposition

__all__ = ["BayesianModel", "UncertaintyModel", "uncertainty_from_probs", "SOURCES"]

#: Where the posterior samples come from.
SOURCES = ("mc_dropout", "ensemble")
#: Posterior samples by default.
DEFAULT_SAMPLES = 20


# --- posterior samples ----------------------------------------------------------------------------------

class BayesianModel(nn.Module):
    """S fixed posterior samples of a network: :meth:`sample_logits` returns logits (S, N, K).

    Args:
        model: a network with dropout (``source="mc_dropout"``), an ``Ensemble`` or a list of models
            (``source="ensemble"``). ``source=None`` picks ``"ensemble"`` for those and
            ``"mc_dropout"`` otherwise.
        samples: MC dropout: the number of dropout masks S (default 20). Ensemble: must be None or
            the number of members.
        seed: seeds the dropout masks (a local generator; the global RNG is untouched).

    ``forward(x)`` returns log of the mean predicted probability (N, K), like ``Ensemble``. The
    wrapped network is evaluated in eval mode (its flags are restored after every call).
    """

    def __init__(self, model, source: str | None = None, samples: int | None = None, seed: int = 0):
        super().__init__()
        if isinstance(model, BayesianModel):
            raise TypeError("model is already a BayesianModel; pass it directly to the attribution functions")
        if isinstance(model, (list, tuple)):
            if not model or not all(isinstance(m, nn.Module) for m in model):
                raise TypeError("model must be an nn.Module or a non-empty list of nn.Modules")
            model = nn.ModuleList(model)
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        is_ensemble = isinstance(model, nn.ModuleList) or hasattr(model, "member_logits")
        if source is None:
            source = "ensemble" if is_ensemble else "mc_dropout"
        check_choice(source, SOURCES, "source")
        self.model, self.source, self.seed = model, source, check_seed(seed)
        if source == "ensemble":
            if not is_ensemble:
                raise ValueError("source='ensemble' needs an Ensemble (with member_logits) or a list of models")
            members = len(model) if isinstance(model, nn.ModuleList) else len(model.members)
            if samples is not None and samples != members:
                raise ValueError(f"samples must be None or {members} (the number of ensemble members) for "
                                 f"source='ensemble', got {samples!r}")
            self.samples = members
            self._dropouts = []
        else:
            self.samples = DEFAULT_SAMPLES if samples is None else check_positive_int(samples, "samples")
            self._dropouts = [m for m in model.modules() if isinstance(m, DROPOUT_TYPES) and m.p > 0]
            if not self._dropouts:
                raise ValueError("source='mc_dropout' needs a model with dropout modules (p > 0); "
                                 "use an ensemble (source='ensemble') for a model without dropout")
        self._masks: dict = {}
        self._reuse_trunk = True  # run a dropout-free trunk once (:func:`dropout_head`); False: S full passes

    @property
    def normalize(self):
        """The wrapped network's input normalisation (so that ``baseline="mean"`` works in the explainers)."""
        net = self.model
        if isinstance(net, nn.ModuleList):
            net = net[0]
        elif hasattr(net, "members"):
            net = net.members[0]
        return getattr(net, "normalize", None)

    def _mask(self, index: int, module: nn.Module, shape, device, dtype) -> torch.Tensor:
        """Dropout masks (S, *shape) of dropout module ``index``, drawn once per feature shape."""
        key = (index, tuple(shape))
        if key not in self._masks:  # drawn on the CPU, so the masks are the same on every device
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + 7919 * index + 1)
            keep = (torch.rand((self.samples, *shape), generator=gen) >= module.p).double()
            self._masks[key] = keep / (1.0 - module.p)
        placed = (*key, str(device), dtype)
        if placed not in self._masks:
            self._masks[placed] = self._masks[key].to(device=device, dtype=dtype)
        return self._masks[placed]

    @contextlib.contextmanager
    def _fixed_masks(self):
        """Inside the block the dropout modules (in eval mode) multiply by the stored mask of sample
        ``state["s"]``; yields that mutable state. Hooks are removed even on errors."""
        state = {"s": 0}

        def hook_for(index):
            def hook(module, _inputs, output):
                return output * self._mask(index, module, output.shape[1:], output.device, output.dtype)[state["s"]]
            return hook

        handles = []
        try:
            for i, m in enumerate(self._dropouts):
                handles.append(m.register_forward_hook(hook_for(i)))
            yield state
        finally:
            for h in handles:
                h.remove()

    def _sampled_passes(self, x: torch.Tensor) -> list:
        net = self.model
        passes = []
        split = dropout_head(net) if self._reuse_trunk else None  # dropout in the head only: trunk once
        with self._fixed_masks() as state:
            if split is not None:
                trunk = split.features(x)
                for s in range(self.samples):
                    state["s"] = s
                    passes.append(split.head(trunk))
            else:
                for s in range(self.samples):
                    state["s"] = s
                    passes.append(net(x))
        return passes

    def sample_logit_list(self, x: torch.Tensor) -> list:
        """Logits of every posterior sample as a list of S tensors (N, K), differentiable with respect to
        x. Kept apart (not stacked) so that a backward pass from one sample visits only that sample's graph."""
        with eval_mode(self.model):
            net = self.model
            if self.source == "ensemble":
                if isinstance(net, nn.ModuleList):
                    out = [m(x) for m in net]
                elif isinstance(getattr(net, "members", None), nn.ModuleList):
                    out = [m(x) for m in net.members]
                else:
                    out = list(net.member_logits(x))
            else:
                out = self._sampled_passes(x)
        for z in out:
            if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[0] != x.shape[0]:
                shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
                raise ValueError(f"model must return logits of shape (N, K) = ({x.shape[0]}, K), got {shape}")
        return out

    def sample_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every posterior sample, (S, N, K), differentiable with respect to x."""
        return torch.stack(self.sample_logit_list(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_p = torch.log_softmax(self.sample_logits(x), dim=-1)
        return torch.logsumexp(log_p, 0) - math.log(self.samples)


def _as_bayesian(model, source, samples, seed) -> BayesianModel:
    if isinstance(model, UncertaintyModel):
        model = model.bayes
    if isinstance(model, BayesianModel):
        if source not in (None, model.source) or samples not in (None, model.samples):
            raise ValueError("model is a BayesianModel already: leave source and samples at None")
        return model
    return BayesianModel(model, source, samples, seed)


def _uncertainty_model(model, measure, source, samples, seed) -> "UncertaintyModel":
    """``model`` as an :class:`UncertaintyModel`; ``measure=None`` means the model's own measure (an
    UncertaintyModel) or ``"total"``."""
    own = model.measure if isinstance(model, UncertaintyModel) else None
    if measure is None:
        measure = own or "total"
    check_choice(measure, MEASURES, "measure")
    if own is not None and own != measure:
        raise ValueError(f"model is an UncertaintyModel of the {own!r} uncertainty, but measure={measure!r}; "
                         "leave measure at None or wrap the BayesianModel (model.bayes) instead")
    if own is not None and source is None and samples is None:
        return model
    return UncertaintyModel(model, measure, source, samples, seed)


@checked
def uncertainty_from_probs(probs: torch.Tensor) -> Decomposition:
    """Total, aleatoric and epistemic uncertainty (nats) of samples (S, N, K), differentiable:
    :func:`~inferml_course.uncertainty.bayesian.decompose` with ``clamp=False`` (epistemic = total -
    aleatoric exactly, so completeness is exact)."""
    if not isinstance(probs, torch.Tensor) or probs.dim() != 3:
        raise ValueError("probs must be a tensor (S, N, K): samples (or members), inputs, classes; got "
                         f"{tuple(probs.shape) if isinstance(probs, torch.Tensor) else type(probs).__name__}")
    return _decomposition(probs, clamp=False)


class UncertaintyModel(nn.Module):
    """The uncertainty of a Bayesian model as a one-output network: ``forward(x)`` is U(x), shape (N, 1).

    With it every explainer of :mod:`inferml_course.explain` attributes the uncertainty instead of a
    class score (``target=0``; perturbation methods need ``output="logit"``, since a softmax over a
    single output is always 1).

    Args: ``model`` (a network, an ensemble or a :class:`BayesianModel`), ``measure`` (``"total"``,
    ``"aleatoric"`` or ``"epistemic"``), ``source``, ``samples``, ``seed`` as in :class:`BayesianModel`.
    """

    def __init__(self, model, measure: str = "total", source: str | None = None, samples: int | None = None,
                 seed: int = 0):
        super().__init__()
        check_choice(measure, MEASURES, "measure")
        self.bayes = _as_bayesian(model, source, samples, seed)
        self.measure = measure

    @property
    def normalize(self):
        return self.bayes.normalize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(self.bayes.sample_logits(x), dim=-1)
        return getattr(uncertainty_from_probs(probs), self.measure).unsqueeze(1)


