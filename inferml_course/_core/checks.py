"""Argument checks shared by every public function (one place, one wording)."""
from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn


def check_choice(value, valid: Iterable[str], argument: str) -> str:
    """Return ``value`` if it is one of ``valid``; else a ValueError listing the valid names."""
    valid = list(valid)
    if not isinstance(value, str) or value not in valid:
        raise ValueError(f"unknown {argument} {value!r}; valid names: {', '.join(valid)}")
    return value


def all_finite(x: torch.Tensor) -> bool:
    """True when every entry of the floating tensor ``x`` is finite. A NaN or an infinity makes the sum
    non-finite, so a finite sum (one reduction, no boolean copy of ``x``) settles it; only a non-finite
    sum (a bad entry, or an overflow of large finite values) pays for the entry-wise check."""
    if x.numel() == 0:
        return True
    return bool(torch.isfinite(x.sum())) or bool(torch.isfinite(x).all())


def check_float_tensor(x, argument: str, form: str, dim: int | None = None, min_dim: int = 1,
                       batch: bool = True, what: str = "") -> torch.Tensor:
    """Check a floating tensor of finite values with ``dim`` dimensions (or at least ``min_dim``).

    ``form`` is the shape as the error messages show it, e.g. ``"(N, C, H, W)"``; ``batch``: the
    first dimension is a batch that must not be empty; ``what`` is added to the dtype message.
    """
    if not isinstance(x, torch.Tensor):
        hint = f"; convert it with torch.from_numpy({argument})" if isinstance(x, np.ndarray) else ""
        raise TypeError(f"{argument} must be a torch.Tensor of shape {form}, got {type(x).__name__}{hint}")
    if not x.is_floating_point():
        raise TypeError(f"{argument} must be a floating-point tensor{what}, got dtype {x.dtype}")
    check_not_meta(x, argument)
    if (dim is not None and x.dim() != dim) or x.dim() < min_dim:
        raise ValueError(f"{argument} must have shape {form}, got shape {tuple(x.shape)}")
    if batch and x.shape[0] == 0:
        raise ValueError(f"{argument} is an empty batch (N = 0)")
    if not all_finite(x):
        raise ValueError(f"{argument} contains NaN or infinite values")
    return x


def check_images(x, argument: str = "x", channels: int | None = None, allow_empty: bool = False) -> torch.Tensor:
    """Check an image batch: a floating tensor of shape (N, C, H, W), finite values."""
    check_float_tensor(x, argument, "(N, C, H, W)", dim=4, batch=not allow_empty, what=" with values in [0, 1]")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{argument} must have {channels} channels, got shape {tuple(x.shape)}")
    return x


def check_segments(segments, x: torch.Tensor, argument: str = "segments") -> torch.Tensor:
    """Segment labels for the images ``x`` (N, C, H, W): an integer tensor (N, H, W) (not bool) of
    non-negative labels, returned as long on ``x.device``."""
    n, _, h, w = x.shape
    if not isinstance(segments, torch.Tensor) or segments.shape != (n, h, w) or segments.is_floating_point() \
            or segments.is_complex() or segments.dtype == torch.bool:
        shape = tuple(segments.shape) if isinstance(segments, torch.Tensor) else type(segments).__name__
        raise ValueError(f"{argument} must be an integer tensor of shape ({n}, {h}, {w}), got {shape}")
    if bool((segments < 0).any()):
        raise ValueError(f"{argument} must hold non-negative segment labels")
    return segments.to(device=x.device, dtype=torch.long)


def check_int_range(value, low: int, high: int, argument: str) -> int:
    """Check that ``value`` is an integer in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{argument} must be an integer from {low} to {high}, got {value!r}")
    return value


def check_positive_int(value, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{argument} must be a positive integer, got {value!r}")
    return value


def check_number(value, argument: str, positive: bool = True, allow_zero: bool = False) -> float:
    """A finite real number (not a bool) as a float; ``positive``: > 0, or >= 0 with ``allow_zero``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{argument} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or (positive and (value < 0 or (value == 0 and not allow_zero))):
        kind = ("non-negative " if allow_zero else "positive ") if positive else ""
        raise ValueError(f"{argument} must be a {kind}finite number, got {value!r}")
    return value


def check_unit_interval(value, argument: str, low_open: bool = False, high_open: bool = False,
                        what: str = "") -> float:
    """A real number (not a bool) in [0, 1] as a float; ``low_open`` / ``high_open`` exclude 0 / 1.

    For probabilities, fractions, thresholds and rates; ``what`` is added to the message (e.g. what
    the number is a fraction of)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{argument} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    low_ok = value > 0 if low_open else value >= 0
    high_ok = value < 1 if high_open else value <= 1
    if not (math.isfinite(value) and low_ok and high_ok):
        interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
        raise ValueError(f"{argument} must be a number in {interval}{what}, got {value!r}")
    return value


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


def check_length(value, n: int, argument: str, of: str):
    """Paired arguments: ``value`` has ``n`` rows (``len`` or ``shape[0]``), else a ValueError naming both, e.g.
    ``id_scores['msp'] has 2 rows but id_images has 8``."""
    rows = value.shape[0] if hasattr(value, "shape") and len(value.shape) else len(value)
    if rows != n:
        raise ValueError(f"{argument} has {rows} rows but {of} has {n}; they must describe the same items")
    return value


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


def check_model(model) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


# ------------------------------------------------------------------------- seeds, devices, models
_SEED_RANGE = (-0x8000_0000_0000_0000, 0xFFFF_FFFF_FFFF_FFFF)  # what torch.Generator.manual_seed accepts


def check_seed(seed, argument: str = "seed") -> int:
    """An integer seed (not a bool, not a float) in the range ``torch.Generator.manual_seed`` accepts."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{argument} must be an int, got {type(seed).__name__} {seed!r}")
    seed = int(seed)
    if not _SEED_RANGE[0] <= seed <= _SEED_RANGE[1]:
        raise ValueError(f"{argument} must be an integer from {_SEED_RANGE[0]} to {_SEED_RANGE[1]}, got {seed}")
    return seed


def check_not_meta(x, argument: str) -> None:
    """A tensor on the ``meta`` device has a shape but no values: refuse it before anything reads it."""
    if isinstance(x, torch.Tensor) and x.is_meta:
        raise ValueError(f"{argument} is on the meta device (a shape without values); create it on a real "
                         f"device (e.g. device='cpu') or move it there with {argument}.to('cpu')")


def check_device(device, argument: str = "device") -> torch.device:
    """``device`` (a string such as ``"cpu"`` / ``"cuda:0"``, a ``torch.device`` or a CUDA index) as a
    ``torch.device`` that exists on this machine; the meta device (no values) is refused."""
    if isinstance(device, bool) or not isinstance(device, (str, torch.device, numbers.Integral)):
        raise TypeError(f"{argument} must be a string such as 'cpu' or 'cuda:0', a torch.device or a CUDA index, "
                        f"got {type(device).__name__} {device!r}")
    try:
        dev = torch.device(device if not isinstance(device, numbers.Integral) else int(device))
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{argument} {device!r} is not a device name; use 'cpu', 'cuda', 'cuda:0', 'mps', ...") \
            from None
    if dev.type == "meta":
        raise ValueError(f"{argument}='meta' holds shapes without values; use a real device such as 'cpu' or 'cuda'")
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"{argument}={str(dev)!r}, but CUDA is not available on this machine; use 'cpu'")
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"{argument}={str(dev)!r}, but this machine has {count} CUDA device(s): "
                             f"cuda:0 to cuda:{count - 1}")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"{argument}='mps', but MPS is not available on this machine; use 'cpu'")
    return dev


def model_reference_tensor(model: nn.Module) -> torch.Tensor | None:
    """The tensor that fixes ``model``'s input dtype and device: its first floating parameter (else its first
    floating buffer, else None). A model whose tensors are on the meta device gets a ValueError."""
    first = None
    for tensor in itertools.chain(model.parameters(), model.buffers()):  # one pass over the model
        if tensor.is_meta:
            raise ValueError("model is on the meta device (its parameters have shapes but no values); load real "
                             "weights first, e.g. model.to_empty(device='cpu') then model.load_state_dict(...)")
        if first is None and tensor.is_floating_point():
            first = tensor
    return first


_BATCHED_FORMS = {3: "(N, C, L)", 4: "(N, C, H, W)", 5: "(N, C, D, H, W)"}


def input_layer(model: nn.Module) -> tuple[nn.Module | None, int | None]:
    """The first module of ``model`` (registration order) that has parameters of its own, and the input rank
    it expects for a batch: a ``ConvNd`` (or ``BatchNormNd`` for N = 2, 3) takes N + 2 dimensions; for other
    layers (``nn.Linear`` takes ``(N, D)`` or more, embeddings, ...) the rank is None (not fixed)."""
    for module in model.modules():
        if next(module.parameters(recurse=False), None) is None:
            continue
        if isinstance(module, nn.modules.conv._ConvNd):
            return module, len(module.kernel_size) + 2
        if isinstance(module, (nn.BatchNorm2d, nn.BatchNorm3d)):
            return module, 4 if isinstance(module, nn.BatchNorm2d) else 5
        return module, None
    return None, None


def check_model_input(model: nn.Module, x, argument: str = "x", images: bool = True,
                      same_device: bool = False) -> torch.Tensor:
    """Check the input batch of a function that runs ``model`` on it, and return it in the model's dtype.

    * ``model`` is an ``nn.Module`` whose tensors are not on the meta device; ``x`` is a tensor (a NumPy
      array gets a TypeError that says ``torch.from_numpy``), not on the meta device either;
    * ``x`` is an image batch (N, C, H, W) (``images=True``, :func:`check_images`) or a floating batch
      (N, ...) with at least 2 dimensions, finite, not empty;
    * the batch dimension is present: when the model's first layer with parameters is a convolution
      (:func:`input_layer`), ``x`` has its batched rank, so a single image (C, H, W) is refused with the
      advice to write ``x[None]`` instead of being read as C samples; and its channels are the ones that
      convolution takes (grey images on a colour model are refused, not broadcast by a normalisation);
    * **dtype rule**: ``x`` is cast to the dtype of the model's first floating parameter (float64 images on
      a float32 model run in float32; float32 images on a float64 model run in float64);
    * ``same_device``: ``x`` must be on the model's device (a ValueError naming both), for functions
      that follow ``x.device`` instead of moving the batch.
    """
    check_model(model)
    check_not_meta(x, argument)
    reference = model_reference_tensor(model)
    layer, rank = input_layer(model)
    want = 4 if images else rank  # images follow the (N, C, H, W) contract whatever the first layer
    if isinstance(x, torch.Tensor) and want is not None and x.dim() != want and (x.dim() == want - 1 or rank):
        form = _BATCHED_FORMS.get(want, f"{want}-D")
        why = (f" for this model (its first layer, {type(layer).__name__}, takes {rank}-D batches)"
               if rank == want else "")
        hint = (f": is it one input? Add a batch dimension, {argument}[None] (or {argument}.unsqueeze(0))"
                if x.dim() == want - 1 else "")
        raise ValueError(f"{argument} must be a batch of shape {form}{why}, got shape {tuple(x.shape)}{hint}")
    if (isinstance(x, torch.Tensor) and isinstance(layer, nn.modules.conv._ConvNd) and x.dim() == rank
            and x.shape[1] != layer.in_channels):  # a normalisation layer would broadcast 1 channel to 3
        hint = (f"; to show grey images to a colour model, repeat the channel: {argument}.expand(-1, 3, -1, -1)"
                if x.shape[1] == 1 and layer.in_channels == 3 else "")
        raise ValueError(f"{argument} has {x.shape[1]} channel(s) but the model's first layer "
                         f"({type(layer).__name__}) takes {layer.in_channels}{hint}")
    if images:
        check_images(x, argument)
    else:
        check_float_tensor(x, argument, "(N, ...) with a batch dimension N, e.g. images (N, C, H, W)", min_dim=2)
    if reference is not None:
        if same_device and x.device != reference.device:
            raise ValueError(f"{argument} is on {x.device} but the model is on {reference.device}; move one of "
                             f"them, e.g. {argument}.to('{reference.device}')")
        if x.dtype != reference.dtype:
            x = x.to(reference.dtype)
    return x
