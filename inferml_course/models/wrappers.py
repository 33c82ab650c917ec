"""Models from other libraries in the course's contract: images in [0, 1] in, a logits tensor out.

Every method of the course calls ``model(x)`` on images ``x`` (N, C, H, W) in [0, 1] and expects the
logits (N, K) back; the normalisation lives inside the model. A Hugging Face classifier
(``ViTForImageClassification``, ``SwinForImageClassification``, ``ConvNextForImageClassification``, ...)
takes normalised ``pixel_values`` and returns an ``ImageClassifierOutput``; :func:`as_classifier` turns it
(or any model returning a ``ModelOutput``, a dict with ``"logits"`` or a tuple whose first entry is the
logits) into such a model::

    from transformers import ViTForImageClassification
    from inferml_course import explain, models

    hf = ViTForImageClassification.from_pretrained("google/vit-base-patch16-224")
    model = models.as_classifier(hf, normalize=([0.5] * 3, [0.5] * 3)).eval()
    explain.grad_cam(model, x)          # x in [0, 1]; the layer is found by structure

A timm model already returns the logits tensor: ``nn.Sequential(Normalize, model)`` or
``as_classifier(model, normalize=...)`` do the same.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .._core.arguments import checked
from .architectures import Normalize

__all__ = ["Classifier", "as_classifier", "logits_of"]


@checked
def logits_of(output) -> torch.Tensor:
    """The logits tensor in a model's output: the tensor itself, ``output.logits`` (a Hugging Face
    ``ModelOutput``), ``output["logits"]`` (a dict) or the first entry of a tuple or list."""
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if logits is None and isinstance(output, Mapping):
        logits = output.get("logits")
    if logits is None and isinstance(output, Sequence) and not isinstance(output, str) and len(output) > 0:
        logits = output[0]
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"cannot find the logits in the model's output ({type(output).__name__}): expected a tensor, "
                        "an object or dict with `logits`, or a tuple whose first entry is the logits")
    return logits


def _statistics(normalize, channels: int | None) -> Normalize | None:
    if normalize is None:
        return None
    if isinstance(normalize, Normalize):
        return normalize
    if not (isinstance(normalize, Sequence) and len(normalize) == 2):
        raise TypeError("normalize must be None, a Normalize module or a pair (mean, std) of per-channel sequences "
                        f"or tensors, got {type(normalize).__name__}")
    mean, std = (torch.as_tensor(v, dtype=torch.float32).flatten() for v in normalize)
    if mean.shape != std.shape or mean.numel() == 0:
        raise ValueError(f"normalize: mean and std must have one entry per channel, got {mean.numel()} and "
                         f"{std.numel()}")
    if channels is not None and mean.numel() != channels:
        raise ValueError(f"normalize: {mean.numel()} channels, the model reads {channels}")
    if not (torch.isfinite(mean).all() and torch.isfinite(std).all() and (std > 0).all()):
        raise ValueError("normalize: mean and std must be finite and std > 0")
    module = Normalize(mean.numel())
    module.mean.copy_(mean)
    module.std.copy_(std)
    return module


def _channels(model: nn.Module) -> int | None:
    config = getattr(model, "config", None)
    channels = getattr(config, "num_channels", None)
    return channels if isinstance(channels, int) else None


class Classifier(nn.Module):
    """``model`` behind an optional :class:`Normalize`, returning the logits tensor (see :func:`as_classifier`).

    Sub-modules: ``normalize`` (a :class:`Normalize`, or absent) and ``model`` (the wrapped model, unchanged,
    so layer names read ``model.<its own names>``). ``train()`` and ``eval()`` reach the wrapped model as
    usual; the wrapper's own ``training`` flag starts as the wrapped model's.
    """

    def __init__(self, model: nn.Module, normalize=None):
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        statistics = _statistics(normalize, _channels(model))
        if statistics is not None:
            self.normalize = statistics
            statistics.training = model.training
        self.model = model
        self.training = model.training   # the wrapped modules' flags stay as they are

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if "normalize" in self._modules:
            x = self.normalize(x)
        return logits_of(self.model(x))


@checked
def as_classifier(model: nn.Module, normalize=None) -> Classifier:
    """``model`` in the course's contract: a module whose forward takes images (N, C, H, W) in [0, 1] and
    returns the logits tensor (N, K).

    ``model``: any ``nn.Module`` whose output is the logits, a Hugging Face ``ModelOutput`` with
    ``.logits`` (``ImageClassifierOutput``), a dict with ``"logits"`` or a tuple starting with them; its first
    positional argument must be the images (Hugging Face's ``pixel_values``).
    ``normalize``: ``(mean, std)``, per-channel sequences or tensors in pixel units (the model's image
    processor's ``image_mean`` / ``image_std``), applied inside the wrapper as ``(x - mean) / std``; a
    :class:`Normalize` module; or None when the model normalises itself or reads raw pixels. The
    statistics are a :class:`Normalize` sub-module, so ``baseline="mean"`` finds the mean.

    Nothing of ``model`` is copied or changed: the wrapper shares its parameters, buffers and mode (its
    ``train()`` / ``eval()`` switch the wrapped model; the wrapper starts in the wrapped model's mode). A
    Hugging Face model built from a config starts in training mode (dropout on): call ``.eval()``, as for
    any model, before explaining it. Layers are named ``model.<name>`` (``layer="model.vit.layers.11
    .layernorm_before"``); the CAM layer and the classifier are found by structure without naming them.
    """
    return Classifier(model, normalize)
