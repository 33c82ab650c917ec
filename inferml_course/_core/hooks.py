"""Context managers that touch a model during one explanation and always undo it.

Every hook registered here is removed in a ``finally`` block, so an exception inside an
explanation (a bad target, an out-of-memory error, a keyboard interrupt) leaves the model
exactly as it was: no stray hooks, unchanged ``requires_grad`` flags, unchanged ``.grad``.

* :func:`capture` records the output of one module (the activations ``A`` of a CAM layer).
* :func:`capture_many` records the outputs of several modules (FullGrad's bias terms).
* :func:`relu_rule` swaps the backward pass of every ``nn.ReLU`` module for the guided
  backpropagation or deconvnet rule, keeping the forward values unchanged.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["capture", "capture_many", "relu_rule"]


class _Store:
    """What a capturing hook saw: the last output of its module."""

    def __init__(self):
        self.output = None


@contextmanager
def capture(module: nn.Module, graph_from_here: bool = False):
    """Record the output of ``module`` during the forward passes inside the ``with`` block.

    The network goes on with a copy of the recorded tensor (an identity for autograd), so gradients
    with respect to it (``torch.autograd.grad(score, store.output)``) are exact and the values stay
    those of the layer even when the model changes them in place afterwards (``ReLU(inplace=True)``,
    ``out += identity`` in a residual block).

    ``graph_from_here``: for a forward run under ``torch.no_grad()`` when only gradients with respect
    to this output are needed (the CAMs): the hook turns gradient recording on and records a fresh
    leaf, so autograd keeps no graph for the layers before it. The gradient of anything downstream
    with respect to the output is the same: what the network computed before the layer enters after
    it only as constants. The caller's ``no_grad`` block restores the grad mode on exit.
    """
    store = _Store()

    def hook(_module, _inputs, output):
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"the hooked layer returns {type(output).__name__}, not a tensor; pick another layer")
        if graph_from_here:
            torch.set_grad_enabled(True)
            output = output.detach().requires_grad_(True)
        store.output = output
        return output.clone()

    handle = module.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


@contextmanager
def capture_many(modules):
    """Record the outputs of several modules; yields a list of lists (one list of outputs per module,
    one entry per call, so modules that run twice in a forward pass are handled). As in :func:`capture`,
    the network goes on with copies, so in-place operations after a module do not change what was
    recorded (FullGrad's bias terms on a torchvision ResNet)."""
    outputs = [[] for _ in modules]
    handles = []

    def hook(i, output):
        outputs[i].append(output)
        return output.clone() if isinstance(output, torch.Tensor) else None

    try:
        for i, module in enumerate(modules):
            handles.append(module.register_forward_hook(lambda _m, _i, out, i=i: hook(i, out)))
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


class _DeconvReLU(torch.autograd.Function):
    """ReLU forward; backward is a ReLU applied to the gradient (the forward mask is ignored)."""

    @staticmethod
    def forward(ctx, z):
        return z.clamp_min(0)

    @staticmethod
    def backward(ctx, grad):
        return grad.clamp_min(0)


@contextmanager
def relu_rule(model: nn.Module, rule: str):
    """Inside the block, every ``nn.ReLU`` module of ``model`` back-propagates with ``rule``
    (``"guided"`` or ``"deconvnet"``); forward values are unchanged.

    * guided: a forward hook registers a gradient hook on each ReLU output that rectifies the
      incoming gradient; the ReLU's own backward then applies its forward mask (input > 0). No
      extra forward work, one extra elementwise pass backward.
    * deconvnet: the mask must *not* be applied, so the ReLU's backward is bypassed: a forward
      pre-hook computes the ReLU itself with a function whose backward rectifies the gradient only
      (it saves nothing), hands the module a detached alias of that result (an in-place ReLU then
      rewrites equal values) and the forward hook returns the rectified tensor in the module's place.

    Functional ``F.relu`` calls cannot be seen by hooks and keep the ordinary gradient, as in
    Captum; a warning says so when the model has no ``nn.ReLU`` module at all.
    """
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        warnings.warn(f"{rule} rule: the model has no nn.ReLU modules, so the result is the plain gradient",
                      stacklevel=3)
    stash: dict[int, torch.Tensor] = {}
    handles = []

    def rectify_gradient(module, _inputs, output):
        if output.requires_grad:
            output.register_hook(torch.relu)

    def pre_hook(module, inputs):
        rectified = _DeconvReLU.apply(inputs[0])
        stash[id(module)] = rectified
        return (rectified.detach(), *inputs[1:])

    def deconv_hook(module, _inputs, _output):
        return stash.pop(id(module))

    try:
        for m in relus:
            if rule == "guided":
                handles.append(m.register_forward_hook(rectify_gradient))
            else:
                handles.append(m.register_forward_pre_hook(pre_hook))
                handles.append(m.register_forward_hook(deconv_hook))
        yield
    finally:
        for handle in handles:
            handle.remove()
        stash.clear()
