"""Per-sample gradients in closed form: one batched forward and one backward (as Opacus and BackPACK do).

For a layer ``out = f(a; W)`` run on a batch, the gradient of the *sum* of per-sample losses with
respect to the layer's output, ``g_n = d sum_m L_m / d out_n``, is the gradient of sample n's own loss
``d L_n / d out_n`` when the samples do not interact (eval mode: batch norm uses its running
statistics). Each sample's parameter gradient is then a closed form of ``(a_n, g_n)``:

==================================  ==============================================================
module                              per-sample gradient (N = batch, L = positions)
==================================  ==============================================================
``nn.Linear``, input (N, ..., D)    weight ``sum_t g_nt a_nt^T`` (N, O, D); bias ``sum_t g_nt`` (N, O)
``nn.Conv1d`` / ``nn.Conv2d``       weight ``g_n (O, L) @ unfold(a_n) (L, C k)`` per group, computed as
                                    one weight-gradient convolution with the batch as N x G groups
                                    (stride, padding incl. ``"same"`` and non-zero padding modes,
                                    dilation, groups); bias ``sum_L g_n``
``nn.BatchNorm1d/2d/3d`` (eval)     weight ``sum_L g_n * (a_n - mean) / sqrt(var + eps)``; bias ``sum_L g_n``
``nn.LayerNorm``, ``nn.GroupNorm``  weight ``sum g_n * normalised(a_n)``; bias ``sum g_n``
==================================  ==============================================================

So per-sample gradients cost one batched forward (with forward hooks recording each selected
module's input and output), one backward to the module *outputs* (no parameter gradients are formed),
and one batched matrix product per layer: about the cost of an ordinary batched forward + backward.

The route is used only when it is exact (:func:`plan`, then checks during the forward):

* every selected parameter is the weight or bias of a supported module whose ``forward`` is the
  standard one, and no parameter is tied to another module;
* no batch norm mixes the samples (each has running statistics; none is in training mode);
* during the forward, each such module is called exactly once and each selected parameter enters
  exactly one torch operation (counted by a :class:`torch.overrides.TorchFunctionMode`), so a module
  called twice (weight sharing) or a parameter also used functionally elsewhere is detected;
* no recorded input is modified in place after its module ran (version counters).

Otherwise :class:`NotExact` says why, and :mod:`inferml_course.fisher.information` falls back to
its ``torch.func`` route. Hygiene: the hooks and the torch-function mode are removed in ``finally``
blocks (also when the model raises); parameters, ``requires_grad`` flags and ``.grad`` are never
touched (the backward runs with ``torch.autograd.grad`` to the module outputs only). When a recorded
output is changed in place later in the network (``ReLU(inplace=True)``, ``out += identity``: its
version counter moves), the chunk is run again with the network going on from copies of the
recorded outputs, so in-place operations do not change the gradients (they cost a second forward).
"""
from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from .._core.arguments import checked
from .._core.targets import check_model_output

__all__ = ["SUPPORTED", "NotExact", "Plan", "plan", "per_sample_chunk"]

_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
#: the module types the closed form handles (their standard ``forward``; subclasses that keep it)
SUPPORTED = (nn.Linear, nn.Conv1d, nn.Conv2d, *_BATCH_NORMS, nn.LayerNorm, nn.GroupNorm)


class NotExact(ValueError):
    """The closed form does not apply to this model / parameter selection (the message says why)."""


@dataclass
class Plan:
    """What the closed form differentiates: ``modules`` {module name: module}, ``leaves`` {parameter
    name: (module name, "weight" or "bias")} in the order of the selection; ``copy_outputs``: whether the
    network must go on from copies of the recorded outputs (found by the first chunk)."""

    modules: dict[str, nn.Module]
    leaves: dict[str, tuple[str, str]]
    param_ids: frozenset
    copy_outputs: bool = False  # set once a chunk found a recorded output changed in place


def _base(module: nn.Module):
    for base in SUPPORTED:
        if isinstance(module, base):
            return base
    return None


def _standard_forward(module: nn.Module, base) -> bool:
    kind = type(module)
    if kind.forward is not base.forward:
        return False
    return not (isinstance(module, (nn.Conv1d, nn.Conv2d)) and kind._conv_forward is not base._conv_forward)


@checked
def plan(model: nn.Module, selected: dict[str, torch.Tensor]) -> Plan:
    """The closed-form :class:`Plan` for the parameters ``selected`` ({name: parameter}) of ``model``,
    or :class:`NotExact` naming the first parameter or module it cannot handle (static checks only;
    the call counts are checked during the forward by :func:`per_sample_chunk`)."""
    modules = dict(model.named_modules())
    owners = Counter(id(p) for _, p in model.named_parameters(remove_duplicate=False))
    for name, m in modules.items():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and (not m.track_running_stats or m.running_mean is None):
            raise NotExact(f"batch norm {name!r} ({type(m).__name__}) has no running statistics, so it mixes the "
                           "samples of a batch even in eval mode")
    used: dict[str, nn.Module] = {}
    leaves: dict[str, tuple[str, str]] = {}
    for pname, param in selected.items():
        prefix, _, attr = pname.rpartition(".")
        module = modules.get(prefix)
        base = _base(module)
        label = f"{prefix or '<model>'} ({type(module).__name__})"
        if base is None or attr not in ("weight", "bias") or getattr(module, attr, None) is not param:
            raise NotExact(f"parameter {pname!r} belongs to {label}, which the closed form does not handle "
                           f"(supported: {', '.join(b.__name__ for b in SUPPORTED)})")
        if not _standard_forward(module, base):
            raise NotExact(f"module {label} overrides the forward of {base.__name__}")
        if owners[id(param)] > 1:
            raise NotExact(f"parameter {pname!r} is shared by several modules (tied weights)")
        if isinstance(module, (nn.Conv1d, nn.Conv2d)) and module.padding_mode not in (
                "zeros", "reflect", "replicate", "circular"):
            raise NotExact(f"module {label} has padding_mode {module.padding_mode!r}")
        used[prefix] = module
        leaves[pname] = (prefix, attr)
    return Plan(modules=used, leaves=leaves, param_ids=frozenset(id(p) for p in selected.values()))


# --------------------------------------------------------------------------------------------------
# recording the forward
# --------------------------------------------------------------------------------------------------

class _Record:
    """What one module's hook saw: its call count, its input (with the version at the call) and output."""

    def __init__(self):
        self.calls, self.input, self.version, self.output, self.output_version = 0, None, None, None, None


class _CountUses(TorchFunctionMode):
    """Count the torch operations that receive each selected parameter."""

    def __init__(self, ids):
        super().__init__()
        self.ids, self.counts = ids, Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        for leaf in tree_leaves((args, kwargs)):
            if isinstance(leaf, torch.Tensor) and id(leaf) in self.ids:
                self.counts[id(leaf)] += 1
        return func(*args, **kwargs)


@contextmanager
def _recording(modules: dict[str, nn.Module], copy_outputs: bool):
    """Forward hooks that fill one :class:`_Record` per module; removed on exit (also on errors).
    ``copy_outputs``: the network goes on with a copy of each recorded output, so that in-place
    operations after a layer (``ReLU(inplace=True)``, ``out += identity``) leave the recorded one intact."""
    records = {name: _Record() for name in modules}
    handles = []

    def hook(record, _module, inputs, output):
        record.calls += 1
        if record.calls > 1 or not inputs or not isinstance(inputs[0], torch.Tensor) \
                or not isinstance(output, torch.Tensor):
            return None  # refused after the forward (call count / missing record)
        record.input, record.version = inputs[0], inputs[0]._version
        if not output.requires_grad:  # nothing upstream needs gradients: start the graph here
            output = output.detach().requires_grad_()
        record.output, record.output_version = output, output._version
        return output.clone() if copy_outputs else output

    try:
        for name, module in modules.items():
            handles.append(module.register_forward_hook(lambda m, i, o, r=records[name]: hook(r, m, i, o)))
        yield records
    finally:
        for handle in handles:
            handle.remove()


# --------------------------------------------------------------------------------------------------
# per-module closed forms: (module, input a (N, ...), grad_output g (N, ...), wanted attrs) -> {attr: (N, *shape)}
# --------------------------------------------------------------------------------------------------

def _linear(m: nn.Linear, a, g, wanted):
    n = a.shape[0]
    a3, g3 = a.reshape(n, -1, a.shape[-1]), g.reshape(n, -1, g.shape[-1])  # (N, T, D), (N, T, O)
    out = {}
    if "weight" in wanted:
        out["weight"] = torch.bmm(g3.transpose(1, 2), a3)
    if "bias" in wanted:
        out["bias"] = g3.sum(1)
    return out


def _conv(m, a, g, wanted):
    n = a.shape[0]
    padding = m.padding
    if isinstance(padding, str) or m.padding_mode != "zeros":  # pad as the module's own forward does
        mode = "constant" if m.padding_mode == "zeros" else m.padding_mode
        a = F.pad(a, m._reversed_padding_repeated_twice, mode=mode)
        padding = (0,) * len(m.kernel_size)
    out = {}
    if "weight" in wanted:
        # the batch as groups: one convolution weight-gradient with N x G groups gives every sample's
        # gradient (N O, C / G, k...) at once, without materialising the unfolded input
        weight_grad = torch.nn.grad.conv1d_weight if isinstance(m, nn.Conv1d) else torch.nn.grad.conv2d_weight
        grads = weight_grad(a.reshape(1, -1, *a.shape[2:]), (n * m.out_channels, *m.weight.shape[1:]),
                            g.reshape(1, -1, *g.shape[2:]), stride=m.stride, padding=padding,
                            dilation=m.dilation, groups=n * m.groups)
        out["weight"] = grads.reshape(n, *m.weight.shape)
    if "bias" in wanted:
        out["bias"] = g.reshape(n, m.out_channels, -1).sum(2)
    return out


def _channel_norm(m, a, g, wanted, normalised):
    n, c = a.shape[0], a.shape[1]
    out = {}
    if "weight" in wanted:
        out["weight"] = (g * normalised()).reshape(n, c, -1).sum(2)
    if "bias" in wanted:
        out["bias"] = g.reshape(n, c, -1).sum(2)
    return out


def _batch_norm(m, a, g, wanted):
    if m.training:
        raise NotExact("a batch norm is in training mode (it mixes the samples of a batch)")
    # sum_L g (a - mean) / sqrt(var + eps) = (sum_L g a - mean sum_L g) / sqrt(var + eps): no normalised copy
    n, c = a.shape[0], a.shape[1]
    g3, a3 = g.reshape(n, c, -1), a.reshape(n, c, -1)
    bias = g3.sum(2)
    out = {"bias": bias} if "bias" in wanted else {}
    if "weight" in wanted:
        out["weight"] = (torch.einsum("ncl,ncl->nc", g3, a3) - m.running_mean * bias) \
            * torch.rsqrt(m.running_var + m.eps)
    return out


def _group_norm(m, a, g, wanted):
    return _channel_norm(m, a, g, wanted, lambda: F.group_norm(a, m.num_groups, None, None, m.eps))


def _layer_norm(m, a, g, wanted):
    n, shape = a.shape[0], tuple(m.normalized_shape)
    out = {}
    if "weight" in wanted:
        xhat = F.layer_norm(a, shape, None, None, m.eps)
        out["weight"] = (g * xhat).reshape(n, -1, *shape).sum(1)
    if "bias" in wanted:
        out["bias"] = g.reshape(n, -1, *shape).sum(1)
    return out


def _rule(module):
    if isinstance(module, nn.Linear):
        return _linear
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        return _conv
    if isinstance(module, _BATCH_NORMS):
        return _batch_norm
    if isinstance(module, nn.GroupNorm):
        return _group_norm
    return _layer_norm


@checked
def per_sample_chunk(model: nn.Module, the_plan: Plan, x: torch.Tensor, labels) -> dict[str, torch.Tensor]:
    """Gradients ``{name: (b, *shape)}`` of ``-log p(y_n | x_n)`` for one chunk ``x`` (b, ...).

    ``labels(logits)`` maps the detached logits (b, K) of the batched forward to the classes (b,).
    The model must already be in eval mode. Raises :class:`NotExact` when a check made during the
    forward fails (a module called other than once, a parameter used elsewhere, an input changed in
    place); nothing of the model is changed either way.
    """
    grads = _chunk(model, the_plan, x, labels, copy_outputs=the_plan.copy_outputs)
    if grads is None:  # a recorded output was changed in place later in the network: run again with copies
        the_plan.copy_outputs = True  # (and do so for the next chunks)
        grads = _chunk(model, the_plan, x, labels, copy_outputs=True)
    return grads


def _chunk(model, the_plan, x, labels, copy_outputs):
    """:func:`per_sample_chunk` in one forward; None when ``copy_outputs`` is False and a recorded output
    was modified in place after its module ran (its gradient would be that of the modified tensor)."""
    n = x.shape[0]
    with torch.enable_grad(), _recording(the_plan.modules, copy_outputs) as records:
        with _CountUses(the_plan.param_ids) as uses:
            logits = check_model_output(model(x.detach()), n)
        for name, record in records.items():
            if record.calls > 1:
                raise NotExact(f"module {name!r} ({type(the_plan.modules[name]).__name__}) is called "
                               f"{record.calls} times in one forward (weight sharing)")
            if record.calls == 1 and record.output is None:
                raise NotExact(f"module {name!r} did not receive and return a tensor")
            if record.calls == 1 and record.input._version != record.version:
                raise NotExact(f"the input of module {name!r} is modified in place after the module ran")
        if not copy_outputs and any(r.calls == 1 and r.output._version != r.output_version for r in records.values()):
            return None
        for pname, (mname, _) in the_plan.leaves.items():
            expected = records[mname].calls
            used = uses.counts[id(getattr(the_plan.modules[mname], the_plan.leaves[pname][1]))]
            if used != expected:
                raise NotExact(f"parameter {pname!r} enters {used} operations in one forward, not only its "
                               f"module's own (it is used outside {mname!r} or shared)")
        y = labels(logits.detach())
        loss = -torch.log_softmax(logits, -1).gather(1, y.view(-1, 1)).sum()
        live = [name for name, r in records.items() if r.calls == 1]
        grads = (torch.autograd.grad(loss, [records[k].output for k in live], allow_unused=True)
                 if live and loss.requires_grad else [None] * len(live))
    by_module = dict(zip(live, grads))
    wanted: dict[str, set] = {}
    for mname, attr in the_plan.leaves.values():
        wanted.setdefault(mname, set()).add(attr)
    results: dict[str, dict[str, torch.Tensor]] = {}
    with torch.no_grad():
        for mname, attrs in wanted.items():
            module, g = the_plan.modules[mname], by_module.get(mname)
            if g is None:  # the module did not run or does not reach the logits: zero gradients
                results[mname] = {a: getattr(module, a).new_zeros(n, *getattr(module, a).shape) for a in attrs}
            else:
                results[mname] = _rule(module)(module, records[mname].input.detach(), g, attrs)
    return {pname: results[mname][attr] for pname, (mname, attr) in the_plan.leaves.items()}
