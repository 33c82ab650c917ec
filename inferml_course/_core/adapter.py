"""The model adapter: where a method finds the parts of a model it needs.

Every function that needs a part of the model takes it as a keyword (``layer=``, ``classifier=``,
``features=``, ``normalize=``); when it is not given, the part is found here by the course's
conventions and, failing those, by structure.
"""
from __future__ import annotations

import numbers

import torch
from torch import nn

from .checks import check_choice
from .modes import model_guard

__all__ = ["layer_candidates", "resolve_layer", "resolve_baseline", "last_layer", "forward_logits",
           "forward_with_features", "implicit_bias"]


def layer_candidates(model: nn.Module) -> list[str]:
    """Dotted names of every sub-module of ``model`` (what ``layer=`` accepts as a string)."""
    return [name for name, _ in model.named_modules() if name]


def resolve_layer(model: nn.Module, layer) -> nn.Module:
    """``layer`` as a module: a module of ``model``, a dotted name, or None for ``model.cam_layer``."""
    if layer is None:
        found = getattr(model, "cam_layer", None)
        if isinstance(found, nn.Module):
            return found
        names = layer_candidates(model)
        raise ValueError("layer is required: this model has no `cam_layer` attribute; pass a module or one of "
                         f"these names: {_shorten(names)}")
    if isinstance(layer, str):
        try:
            return model.get_submodule(layer)
        except AttributeError:
            raise ValueError(f"unknown layer name {layer!r}; valid names: {_shorten(layer_candidates(model))}") \
                from None
    if isinstance(layer, nn.Module):
        if not any(m is layer for m in model.modules()):
            raise ValueError("layer is a module that is not part of this model; pass one of its modules or one of "
                             f"these names: {_shorten(layer_candidates(model))}")
        return layer
    raise TypeError(f"layer must be an nn.Module, a dotted module name or None, got {type(layer).__name__}")


def _shorten(names: list[str], limit: int = 60) -> str:
    text = ", ".join(names[:limit])
    return text + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def _normalize_mean(model: nn.Module):
    norm = getattr(model, "normalize", None)
    mean = getattr(norm, "mean", None)
    return mean if isinstance(mean, torch.Tensor) else None


def resolve_baseline(model: nn.Module, x: torch.Tensor, baseline, argument: str = "baseline") -> torch.Tensor:
    """A reference image broadcastable to ``x``.

    * ``"mean"``: the per-channel mean colour of the training data, read from the model's
      ``normalize.mean`` buffer (for the course models it is exactly the training-set mean in pixel
      space, so this patch is the grey a zero-centred network sees as "nothing"); 0.5 when the
      model has no such buffer.
    * ``"zero"`` or ``"black"``: 0; a number: that grey level; a tensor of shape (C,), (C, H, W) or
      (N, C, H, W).
    """
    n, c, h, w = x.shape
    if isinstance(baseline, str):
        check_choice(baseline, ("mean", "zero", "black"), argument)
        if baseline == "mean":
            mean = _normalize_mean(model)
            if mean is not None and mean.numel() == c:
                return mean.detach().to(device=x.device, dtype=x.dtype).view(1, c, 1, 1)
            return torch.full((1, c, 1, 1), 0.5, device=x.device, dtype=x.dtype)
        return torch.zeros((1, c, 1, 1), device=x.device, dtype=x.dtype)
    if isinstance(baseline, numbers.Real) and not isinstance(baseline, bool):
        return torch.full((1, c, 1, 1), float(baseline), device=x.device, dtype=x.dtype)
    if isinstance(baseline, torch.Tensor):
        b = baseline.detach().to(device=x.device, dtype=x.dtype)
        if b.shape == (c,):
            b = b.view(1, c, 1, 1)
        elif b.shape == (c, h, w):
            b = b.unsqueeze(0)
        elif b.shape != (n, c, h, w) and b.shape != (1, c, h, w):
            raise ValueError(f"{argument} tensor must have shape ({c},), ({c}, {h}, {w}) or ({n}, {c}, {h}, {w}), "
                             f"got {tuple(b.shape)}")
        if not torch.isfinite(b).all():
            raise ValueError(f"{argument} contains NaN or infinite values")
        return b
    raise TypeError(f"{argument} must be 'mean', 'zero', a number or a tensor, got {type(baseline).__name__}")


def last_layer(model: nn.Module) -> nn.Linear:
    """``model.last_layer`` (the final nn.Linear producing the logits)."""
    layer = getattr(model, "last_layer", None)
    if not isinstance(layer, nn.Linear):
        raise TypeError("model must expose its final linear layer as `model.last_layer` (an nn.Linear, e.g. "
                        f"SmallCNN.classifier.fc2); {type(model).__name__} does not")
    return layer


@torch.no_grad()
def forward_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Logits (N, K) in eval mode, batched, on ``x.device``; modes are restored (a warning when this
    switches a training-mode module: see :mod:`.modes`)."""
    with model_guard(model, "forward_logits", "eval"):
        return torch.cat([model(chunk) for chunk in x.split(batch_size)])


@torch.no_grad()
def forward_with_features(model: nn.Module, x: torch.Tensor, batch_size: int = 512
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, K) and the input of ``model.last_layer`` (N, D) from ONE forward pass (eval mode).

    A forward hook on the last layer reads its input; the hook is removed even on errors.
    """
    layer = last_layer(model)
    store = []
    handle = layer.register_forward_hook(lambda _m, inputs, _out: store.append(inputs[0].detach()))
    try:
        with model_guard(model, "forward_with_features", "eval"):
            logits = torch.cat([model(chunk) for chunk in x.split(batch_size)])
    finally:
        handle.remove()
    return logits, torch.cat(store).flatten(1)


def implicit_bias(module: nn.Module):
    """The bias a module adds to its output channels, or None (conv and linear biases, the
    effective bias of an eval-mode batch norm, and the course's ``Normalize`` layer)."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        return None if module.bias is None else module.bias.detach()
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats \
            and module.running_mean is not None:
        scale = torch.rsqrt(module.running_var.detach() + module.eps)
        if module.weight is not None:
            scale = scale * module.weight.detach()
        bias = -module.running_mean.detach() * scale
        return bias + module.bias.detach() if module.bias is not None else bias
    mean, std = getattr(module, "mean", None), getattr(module, "std", None)
    if type(module).__name__ == "Normalize" and isinstance(mean, torch.Tensor) and isinstance(std, torch.Tensor):
        return -(mean / std).detach()
    return None
