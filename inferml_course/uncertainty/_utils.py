"""Shared helpers of the uncertainty package: mode context managers, argument checks, a hooked forward."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from .._modes import eval_mode, restore_modes, save_modes  # noqa: F401 (eval_mode is re-exported)
from .._validate import check_images


# ----------------------------------------------------------------------------------------------- modes
DROPOUT_TYPES = (nn.modules.dropout._DropoutNd,)


def dropout_modules(model: nn.Module) -> list[nn.Module]:
    """Every dropout module (Dropout, Dropout1d/2d/3d, AlphaDropout, FeatureAlphaDropout) of ``model``."""
    return [m for m in model.modules() if isinstance(m, DROPOUT_TYPES)]


@contextlib.contextmanager
def mc_dropout_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode everywhere except the dropout modules, which sample (train mode).

    Batch norm therefore keeps using (and never updates) its running statistics. Every module's
    own flag is restored on exit, also when the body raises.
    """
    drops = dropout_modules(model)
    if not any(m.p > 0 for m in drops):
        raise ValueError("model has no dropout module with p > 0, so MC dropout would return S identical "
                         "predictions; use a model with nn.Dropout layers (e.g. SmallCNN)")
    saved = save_modes(model)
    try:
        model.eval()
        for m in drops:
            m.train()
        yield model
    finally:
        restore_modes(saved)


# ------------------------------------------------------------------------------------------- arguments
def as_float_tensor(value, argument: str) -> torch.Tensor:
    """A tensor or numpy array -> a floating tensor (float64 for float64 input, else float32)."""
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{argument} must be a torch.Tensor (or numpy array), got {type(value).__name__}")
    if value.dtype == torch.bool or not (value.is_floating_point() or value.dtype in (
            torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)):
        raise TypeError(f"{argument} must hold real numbers, got dtype {value.dtype}")
    return value if value.is_floating_point() else value.float()


def check_scores(scores, argument: str = "scores", min_len: int = 1) -> torch.Tensor:
    """A 1-D float tensor of finite scores."""
    scores = as_float_tensor(scores, argument)
    if scores.dim() != 1:
        raise ValueError(f"{argument} must be 1-D (one score per sample), got shape {tuple(scores.shape)}")
    if scores.numel() < min_len:
        raise ValueError(f"{argument} needs at least {min_len} values, got {scores.numel()}")
    if not torch.isfinite(scores).all():
        raise ValueError(f"{argument} contains NaN or infinite values")
    return scores


def check_binary(values, argument: str, n: int | None = None) -> torch.Tensor:
    """A 1-D tensor of 0/1 (or bool) values, returned as bool."""
    if isinstance(values, np.ndarray):
        values = torch.from_numpy(values)
    if not isinstance(values, torch.Tensor):
        raise TypeError(f"{argument} must be a torch.Tensor (or numpy array) of 0/1 values, "
                        f"got {type(values).__name__}")
    if values.dim() != 1:
        raise ValueError(f"{argument} must be 1-D, got shape {tuple(values.shape)}")
    if n is not None and values.numel() != n:
        raise ValueError(f"{argument} must have {n} entries (one per score), got {values.numel()}")
    if values.dtype != torch.bool:
        if not ((values == 0) | (values == 1)).all():
            raise ValueError(f"{argument} must hold only 0/1 (or True/False) values")
        values = values != 0
    return values


def check_labels(labels, argument: str, n: int, num_classes: int | None = None) -> torch.Tensor:
    """Integer class labels of shape (n,), in [0, num_classes)."""
    if isinstance(labels, np.ndarray):
        labels = torch.from_numpy(labels)
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"{argument} must be a torch.Tensor of class indices, got {type(labels).__name__}")
    if labels.is_floating_point() or labels.dtype == torch.bool or labels.is_complex():
        raise TypeError(f"{argument} must be an integer tensor of class indices, got dtype {labels.dtype}")
    if labels.shape != (n,):
        raise ValueError(f"{argument} must have shape ({n},), got {tuple(labels.shape)}")
    if n and num_classes is not None and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{argument} must be in [0, {num_classes}), got range "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    return labels.long()


def check_probs(probs, argument: str = "probs", atol: float | None = None) -> torch.Tensor:
    """Probabilities (N, K): finite, in [0, 1], each row summing to 1.

    Logits are rejected (never silently softmaxed): the message says to apply a softmax first.
    """
    probs = as_float_tensor(probs, argument)
    if probs.dim() != 2:
        raise ValueError(f"{argument} must have shape (N, K) (one probability vector per row), "
                         f"got shape {tuple(probs.shape)}")
    if probs.shape[0] == 0 or probs.shape[1] < 2:
        raise ValueError(f"{argument} needs N >= 1 rows and K >= 2 classes, got shape {tuple(probs.shape)}")
    if not torch.isfinite(probs).all():
        raise ValueError(f"{argument} contains NaN or infinite values")
    if probs.min() < 0 or probs.max() > 1:
        raise ValueError(f"{argument} must lie in [0, 1]; got values in [{probs.min().item():.3g}, "
                         f"{probs.max().item():.3g}]. Did you pass logits? Apply torch.softmax(logits, 1) first")
    if atol is None:
        tol = {torch.float64: 1e-8, torch.float32: 1e-4}.get(probs.dtype, 1e-2)  # half precision: coarse
    else:
        tol = atol
    err = (probs.sum(1) - 1).abs().max().item()
    if err > tol:
        raise ValueError(f"each row of {argument} must sum to 1 (largest deviation {err:.3g}). "
                         "Pass probabilities, e.g. torch.softmax(logits, 1); they are not normalised for you")
    return probs


def check_prob_samples(probs, argument: str = "probs") -> torch.Tensor:
    """Sampled probabilities (S, N, K): S stochastic passes or ensemble members, rows summing to 1."""
    probs = as_float_tensor(probs, argument)
    if probs.dim() != 3:
        raise ValueError(f"{argument} must have shape (S, N, K): samples (or members), inputs, classes; "
                         f"got shape {tuple(probs.shape)}")
    s, n, k = probs.shape
    if s == 0:
        raise ValueError(f"{argument} has no samples (S = 0)")
    check_probs(probs.reshape(s * n, k), argument)
    return probs


def check_logits(logits, argument: str = "logits") -> torch.Tensor:
    logits = as_float_tensor(logits, argument)
    if logits.dim() != 2 or logits.shape[0] == 0 or logits.shape[1] < 2:
        raise ValueError(f"{argument} must have shape (N, K) with N >= 1 and K >= 2, got {tuple(logits.shape)}")
    if not torch.isfinite(logits).all():
        raise ValueError(f"{argument} contains NaN or infinite values")
    return logits


def check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


def check_model(model) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


def last_layer(model: nn.Module) -> nn.Linear:
    """``model.last_layer`` (the final nn.Linear producing the logits)."""
    layer = getattr(model, "last_layer", None)
    if not isinstance(layer, nn.Linear):
        raise TypeError("model must expose its final linear layer as `model.last_layer` (an nn.Linear, e.g. "
                        f"SmallCNN.classifier.fc2); {type(model).__name__} does not")
    return layer


# ------------------------------------------------------------------------------------------- forwards
@torch.no_grad()
def forward_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Logits (N, K) in eval mode, batched, on ``x.device``; modes are restored."""
    with eval_mode(model):
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
        with eval_mode(model):
            logits = torch.cat([model(chunk) for chunk in x.split(batch_size)])
    finally:
        handle.remove()
    return logits, torch.cat(store).flatten(1)


def validate_images(x, argument: str = "x") -> torch.Tensor:
    return check_images(x, argument)
