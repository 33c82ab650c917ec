"""Shared machinery of the network evaluations: argument checks, substrates.

Every network evaluation perturbs an image ``x`` towards a *substrate* (what a removed pixel
becomes) and reads one class score of the perturbed images. The pieces here do that for many
images, many maps and many perturbation levels at once: the checks, the first pass and the chunked
scoring are the engine's (:mod:`inferml_course._core.perturb`).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from .._core.arguments import checked
from .._core.checks import check_choice, check_float_tensor, check_number
from .._core.images import gaussian_blur, minmax
from .._core.adapter import resolve_baseline

__all__ = ["SUBSTRATES", "as_map_dict", "check_maps", "substrate_images", "gaussian_blur", "minmax"]

#: What a removed pixel becomes: a blurred copy of the image, the training-set mean colour, or black.
SUBSTRATES = ("blur", "mean", "black")

#: Default blur of the "blur" substrate, in pixels (see :func:`gaussian_blur`).
DEFAULT_BLUR_SIGMA = 3.0


def check_maps(maps, x: torch.Tensor | None = None, argument: str = "maps", shape=None) -> torch.Tensor:
    """A map batch (N, H, W): a floating tensor, finite, matching the images ``x`` (N, C, H, W)."""
    check_float_tensor(maps, argument, "(N, H, W)", dim=3)
    expected = shape
    if x is not None:
        expected = (x.shape[0], x.shape[2], x.shape[3])
    if expected is not None and tuple(maps.shape) != tuple(expected):
        raise ValueError(f"{argument} must have shape {tuple(expected)} (one map per image, at image resolution), "
                         f"got {tuple(maps.shape)}")
    return maps


def as_map_dict(maps, x: torch.Tensor | None = None, argument: str = "maps", shape=None):
    """``maps`` as (dict name -> (N, H, W), was_single). A bare tensor becomes ``{"map": maps}``."""
    if isinstance(maps, np.ndarray):
        raise TypeError(f"{argument} must be a torch.Tensor (N, H, W) or a dict of them, got a NumPy array; "
                        f"convert it with torch.from_numpy({argument})")
    single = isinstance(maps, torch.Tensor)
    if single:
        maps = {"map": maps}
    if not isinstance(maps, dict) or not maps:
        raise TypeError(f"{argument} must be a tensor (N, H, W) or a non-empty dict name -> tensor (N, H, W), "
                        f"got {type(maps).__name__}")
    out = {}
    for name, m in maps.items():
        out[str(name)] = check_maps(m, x, f"{argument}[{name!r}]" if not single else argument, shape)
    return out, single


@checked
def substrate_images(model: nn.Module, x: torch.Tensor, substrate, blur_sigma: float = DEFAULT_BLUR_SIGMA,
                     argument: str = "substrate", normalize=None) -> torch.Tensor:
    """The image every removed pixel is taken from, (N, C, H, W).

    * ``"blur"``: a Gaussian blur of ``x`` (``blur_sigma`` pixels), the RISE insertion substrate;
    * ``"mean"``: the training-set mean colour (the model's ``normalize.mean``, or ``normalize=``: a
      module with a ``mean`` tensor or the (C,) mean; a model without either gets a ``ValueError``),
      the grey that a zero-centred network reads as "no evidence";
    * ``"black"``: 0, the literal pixel product ``x * mask``;
    * a number (a grey level) or a tensor (C,), (C, H, W) or (N, C, H, W).
    """
    if isinstance(substrate, str):
        check_choice(substrate, SUBSTRATES, argument)
        if substrate == "blur":
            return gaussian_blur(x, check_number(blur_sigma, "blur_sigma"))
    return resolve_baseline(model, x, substrate, argument, normalize).expand_as(x)


def warn_nan(count: int, total: int, what: str, stacklevel: int = 3):
    """Warn that ``count`` of ``total`` values are NaN, and why."""
    if count:
        warnings.warn(f"{count} of {total} values are NaN: {what}", RuntimeWarning, stacklevel=stacklevel)
