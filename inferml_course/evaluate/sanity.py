"""The model-randomisation sanity check (Adebayo et al. 2018).

An explanation of a decision should depend on what the network learned. Re-initialise the
weights and explain again: if the map barely changes, it shows the image (edges, the model's
architecture) rather than the decision. :func:`randomized_copy` builds the random network,
:func:`rank_correlation` compares two sets of maps per image (Spearman's rho, as in the paper).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .._core.arguments import checked
from .._core.checks import check_seed
from .._core.ranks import average_ranks

__all__ = ["randomized_copy", "rank_correlation"]


@checked
def randomized_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """A deep copy of ``model`` whose layers are re-initialised (``reset_parameters``) with a local
    seed; the original and the global random state are untouched. Buffers that are not parameters
    (for example the input normalisation) are kept; batch-norm statistics are reset."""
    clone = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(check_seed(seed))
        for module in clone.modules():
            if hasattr(module, "reset_parameters") and callable(module.reset_parameters):
                module.reset_parameters()
    return clone  # deepcopy keeps every module's own training flag (clone.train(flag) would flatten them)


@checked
def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation (N,) between maps a[i] and b[i] (any shape (N, ...)); ties get
    average ranks; a constant map gives 0."""
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor) or a.shape != b.shape or a.dim() < 2:
        raise ValueError("a and b must be tensors of the same shape (N, ...)")
    ra = average_ranks(a.flatten(1), axis=1).cpu()   # scipy.stats.rankdata per map
    rb = average_ranks(b.flatten(1), axis=1).cpu()
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    denom = (ra.norm(dim=1) * rb.norm(dim=1))
    return torch.where(denom > 0, (ra * rb).sum(1) / denom.clamp_min(1e-300), torch.zeros_like(denom)).float()

