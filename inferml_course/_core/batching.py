"""One batch-size rule for every family: ``batch_size`` is ``"auto"``, a positive int or ``None``.

* an int always wins; ``None`` runs all the work in one pass (Captum's behaviour);
* ``"auto"`` with the model known is chosen **by measurement** (:func:`auto_batch_size`): the first call
  for a (model, image shape, dtype, device, forward or backward) times the pixel rule's chunk, half and
  double it, on copies of the caller's images, and caches the fastest per image (:func:`_measure`). The
  candidates never exceed the memory budget :data:`MAX_PIXELS`; work smaller than :data:`MEASURE_FROM`
  images of 32 x 32 runs in one pass (measuring would cost more than it saves);
* ``"auto"`` without a model falls back to the pixel rule :data:`AUTO_PIXELS` (by image size and device).

:func:`batches` splits a tensor by that rule. The choice never changes a result beyond floating-point
rounding: the methods split their work, not their random draws.
"""
from __future__ import annotations

import sys
import time
import weakref

import torch
from torch import nn

__all__ = ["AUTO_PIXELS", "MAX_PIXELS", "MEASURE_FROM", "MAX_ELEMENTS", "check_batch_size", "chunk_size",
           "batches", "auto_batch_size", "clear_batch_cache", "row_chunk", "memory_cap"]


#: Pixels (images x H x W) per forward pass of the rule used when ``"auto"`` cannot measure (no model
#: given, or batch norm in training mode, where the chunk would change the result): 128 images of 32 x 32
#: on a CPU (the fastest chunk of the course models there), 4096 on a GPU.
AUTO_PIXELS = {"cpu": 128 * 32 * 32, "cuda": 4096 * 32 * 32}
#: The memory budget: ``"auto"`` never picks chunks of more pixels than this (512 images of 32 x 32 on a
#: CPU: 10 of 224 x 224; 8192 on a GPU).
MAX_PIXELS = {"cpu": 512 * 32 * 32, "cuda": 8192 * 32 * 32}
#: Work of at most this many pixels (256 images of 32 x 32) runs in one pass without measuring.
MEASURE_FROM = 256 * 32 * 32
#: The memory budget of :func:`row_chunk`: elements (e.g. per-sample gradient entries) held per chunk.
MAX_ELEMENTS = 2 ** 24

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {key: chunk size}


def _budget(table: dict, x: torch.Tensor) -> int:
    return max(1, table.get(x.device.type, table["cuda"]) // (x.shape[-1] * x.shape[-2]))


def memory_cap(x: torch.Tensor) -> int:
    """The most images like ``x`` (N, C, H, W) per chunk that the memory budget :data:`MAX_PIXELS` allows:
    the ``"auto"`` size of methods whose random draws depend on the chunking (MC dropout), which must not
    be chosen by a timing."""
    return _budget(MAX_PIXELS, x)


def clear_batch_cache() -> None:
    """Forget every measured ``"auto"`` chunk size (the next call measures again)."""
    _CACHE.clear()


def _owner(model):
    """The module whose speed is measured: the model, or the first member of a list / tuple (an ensemble)."""
    if isinstance(model, (list, tuple)):
        model = next((m for m in model if isinstance(m, nn.Module)), None)
    return model if isinstance(model, nn.Module) else None


def _candidates(x: torch.Tensor) -> tuple[int, list[int]]:
    """The pixel rule's chunk for images like ``x`` and the sizes measured around it: half, itself and
    double, within the memory budget."""
    prior, cap = _budget(AUTO_PIXELS, x), _budget(MAX_PIXELS, x)
    return prior, sorted({max(1, min(cap, s)) for s in (prior // 2, prior, 2 * prior)})


def _measure(model: nn.Module, x: torch.Tensor, backward: bool) -> int:
    """Time forward (and input-gradient backward) passes of the candidate chunk sizes; the fastest per image.

    The candidates are the pixel rule's chunk, half and double it (:func:`_candidates`): a wide search
    risks more than it gains, because a timing taken while other jobs run can be wrong by a factor of
    several (we saw chunks of 8 chosen on a busy machine, 8 times slower than 128 once it was free), while
    the best of the three is rarely more than 30 % faster than the rule. The rounds alternate the sizes
    and keep each size's best pass, so a burst of load hits them alike; on a CPU the clock is this
    process's CPU time (the scheduler interrupts long passes more often than short ones). The rule's
    chunk is kept unless another is more than 5 % faster. Runs on copies of ``x``'s images in a forked
    random state with every buffer written back, so the caller's results and the model are unchanged.
    """
    prior, sizes = _candidates(x)
    if len(sizes) == 1:
        return sizes[0]
    images = x.detach()[torch.arange(sizes[-1], device=x.device) % x.shape[0]]
    buffers = [(b, b.clone()) for b in model.buffers()]
    cuda = x.device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    clock = time.perf_counter if cuda else time.process_time

    def run(n):
        chunk = images[:n]
        if backward:
            with torch.enable_grad():
                chunk = chunk.clone().requires_grad_(True)
                out = model(chunk)
                torch.autograd.grad(out.float().sum(), chunk)
        else:
            with torch.no_grad():
                model(chunk)
        sync()

    per_image = dict.fromkeys(sizes, float("inf"))
    devices = [x.device] if cuda else []
    try:
        with torch.random.fork_rng(devices=devices):
            run(sizes[0])  # warm-up: the first pass pays one-off costs
            for _ in range(3):
                for n in sizes:
                    start = clock()
                    run(n)
                    per_image[n] = min(per_image[n], (clock() - start) / n)
    finally:
        with torch.no_grad():
            for buf, saved in buffers:
                buf.copy_(saved)
    best = min(sizes, key=per_image.__getitem__)
    return prior if prior in per_image and per_image[prior] <= 1.05 * per_image[best] else best


def auto_batch_size(model, x: torch.Tensor, work: int | None = None, backward: bool = False) -> int:
    """The ``"auto"`` chunk size for pushing images like ``x`` (N, C, H, W) through ``model``.

    ``work``: how many images the caller will push in all (None: unknown). ``backward``: the chunks also
    go through a backward pass to the input. Measured once per (model, image shape, dtype, device,
    backward) and cached (see the module docstring); falls back to :data:`AUTO_PIXELS` without a module,
    when batch norm is in training mode, or for work too small to be worth measuring.
    """
    rule = _budget(AUTO_PIXELS, x)
    if work is not None and work * x.shape[-1] * x.shape[-2] <= MEASURE_FROM:
        return max(1, min(work, _budget(MAX_PIXELS, x)))
    owner = _owner(model)
    if owner is None or x.ndim < 2 or x.shape[0] == 0:
        return rule
    if any(isinstance(m, nn.modules.batchnorm._NormBase) and m.training for m in owner.modules()):
        return rule
    key = (tuple(x.shape[1:]), x.dtype, x.device, bool(backward))
    sizes = _CACHE.setdefault(owner, {})
    if key not in sizes:
        sizes[key] = _measure(owner, x, backward)
    return sizes[key]


def check_batch_size(batch_size, x: torch.Tensor | None = None, argument: str = "batch_size", *,
                     model=None, work: int | None = None, backward: bool = False) -> int | None:
    """A positive int, None (everything in one pass), or ``"auto"``: returned as is without ``x`` (only
    validated), else resolved for images like ``x`` by :func:`auto_batch_size` (``model``, ``work``,
    ``backward`` as there; without ``model`` the pixel rule)."""
    if batch_size is None:
        return None
    if isinstance(batch_size, str) and batch_size == "auto":
        if x is None:  # validated; resolved later, once x is known
            return "auto"
        return auto_batch_size(model, x, work=work, backward=backward)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"{argument} must be a positive integer, 'auto' or None, got {batch_size!r}")
    return batch_size


def chunk_size(batch_size, x: torch.Tensor, argument: str = "batch_size", *, model=None,
               work: int | None = None, backward: bool = False) -> int:
    """The :func:`check_batch_size` rule as a step for ``range`` and slicing: ``None`` (all the work in one
    pass) becomes an unbounded step."""
    size = check_batch_size(batch_size, x, argument, model=model, work=work, backward=backward)
    return sys.maxsize if size is None else size


def batches(t: torch.Tensor, batch_size, images: torch.Tensor | None = None, *, model=None,
            backward: bool = False) -> tuple[torch.Tensor, ...]:
    """``t`` split along dim 0 by the :func:`check_batch_size` rule (``images`` sets the image size that
    ``"auto"`` reads, default ``t`` itself; the work is ``len(t)``); ``None`` is one chunk."""
    size = check_batch_size(batch_size, t if images is None else images, model=model, work=len(t),
                            backward=backward)
    return (t,) if size is None or size >= max(len(t), 1) else t.split(size)


def row_chunk(batch_size, rows: int, per_row: int) -> int:
    """Rows per chunk for work on features rather than images (e.g. per-sample gradients of a linear
    head, ``per_row`` elements each): an int wins, None is every row, ``"auto"`` keeps a chunk within
    :data:`MAX_ELEMENTS` elements."""
    size = check_batch_size(batch_size)
    if size is None:
        return max(rows, 1)
    if size == "auto":
        return max(1, min(max(rows, 1), MAX_ELEMENTS // max(per_row, 1)))
    return size
