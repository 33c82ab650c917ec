"""Gradients of one output for many cotangents at once (Contrast-CAM of every class, VOICE, UA-Backprop)."""
from __future__ import annotations

import torch

__all__ = ["batched_grad"]


def batched_grad(output: torch.Tensor, inputs, grad_outputs: torch.Tensor, vectorize: bool | None = None):
    """Gradients of ``output`` for B stacked ``grad_outputs`` (B, *output.shape) with respect to ``inputs``
    (a tensor or a list): one (B, *input.shape) tensor per input (None for an unreachable input).

    ``vectorize=True``: one vectorised backward (``is_grads_batched``); ``False``: B backward passes
    on one retained graph; ``None``: vectorised on CUDA devices, looped elsewhere (same numbers).
    """
    single = isinstance(inputs, torch.Tensor)
    inputs = [inputs] if single else list(inputs)
    if vectorize is None:
        vectorize = output.device.type == "cuda"
    if vectorize:
        grads = torch.autograd.grad(output, inputs, grad_outputs=grad_outputs, is_grads_batched=True,
                                    retain_graph=True, allow_unused=True)
    else:
        per = [torch.autograd.grad(output, inputs, grad_outputs=go, retain_graph=True, allow_unused=True)
               for go in grad_outputs]
        grads = tuple(None if per[0][i] is None else torch.stack([p[i] for p in per]) for i in range(len(inputs)))
    return grads[0] if single else list(grads)
