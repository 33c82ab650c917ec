"""The model adapter: where a method finds the parts of a model it needs.

Every function that needs a part of the model takes it as a keyword; when it is not given, the part
is found by the course's conventions and, failing those, by structure:

==============  ===========================================  =================================================
keyword         course convention                            found by structure
==============  ===========================================  =================================================
``layer=``      ``model.cam_layer``                          the input of the last attention block's queries,
                                                             its pre-norm (ViT, DeiT, Swin of torchvision, timm
                                                             and Hugging Face; attention known by its q / k / v
                                                             projections), else the last module holding a
                                                             ``Conv2d`` whose output is a 4-D map with h w > 1,
                                                             never a layer at the input, seen in one probe
                                                             forward of one image (eval mode); its layout
                                                             (channels-first / -last, tokens) is read by
                                                             :mod:`.layouts` (``reshape=`` overrides)
``classifier=`` ``model.last_layer``                         the last registered ``nn.Linear``; checked on
                                                             every forward: its output must be the logits
                                                             (a tuple of heads whose outputs' mean is the
                                                             logits: :class:`LinearHeads`)
``features=``   --                                           the input of the classifier (penultimate features)
``normalize=``  ``model.normalize`` (``mean``/``std``)       the one sub-module with ``mean`` and ``std`` tensors
==============  ===========================================  =================================================

A part that cannot be found, or that is ambiguous, is a ``ValueError`` listing the candidates. Nothing
here changes the model: probes run under ``torch.no_grad`` in eval mode and every flag is restored.
"""
from __future__ import annotations

import difflib
import math
import numbers
import weakref
from typing import NamedTuple

import torch
import torch.fx
from torch import nn

from .checks import check_choice
from .batching import batches
from .hooks import capture
from .layouts import feature_map_view
from .targets import check_model_output
from .modes import dropout_modules, eval_mode, model_guard

__all__ = ["forward_images", "layer_candidates", "LinearHeads", "shorten", "query_projection", "prefix_tokens", "resolve_layer", "find_cam_layer", "logits_and_feature_maps", "resolve_classifier",
           "resolve_normalize",
           "resolve_baseline", "forward_logits", "classifier_pass", "forward_with_features", "penultimate_features", "implicit_bias",
           "HeadSplit", "head_after_features", "dropout_head"]


def layer_candidates(model: nn.Module) -> list[str]:
    """Dotted names of every sub-module of ``model`` (what ``layer=`` accepts as a string)."""
    return [name for name, _ in model.named_modules() if name]


def shorten(names, limit: int = 5, near: str | None = None) -> str:
    """At most ``limit`` of ``names`` for an error message, then how many more there are; with ``near`` (a
    name the user gave), the closest names first."""
    names = list(names)
    if near is not None and len(names) > limit:
        close = difflib.get_close_matches(near, names, n=limit, cutoff=0.0)
        names = close + [n for n in names if n not in close]
    text = ", ".join(names[:limit])
    return text + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


_shorten = shorten


def _module_of(model: nn.Module, part, argument: str) -> nn.Module:
    """``part`` (a module of ``model`` or a dotted name) as a module of ``model``."""
    if isinstance(part, str):
        try:
            return model.get_submodule(part)
        except AttributeError:
            raise ValueError(f"unknown {argument} name {part!r}; valid names include: "
                             f"{shorten(layer_candidates(model), near=part)}") \
                from None
    if isinstance(part, nn.Module):
        if not any(m is part for m in model.modules()):
            raise ValueError(f"{argument} is a module that is not part of this model; pass one of its modules or one "
                             f"of these names: {_shorten(layer_candidates(model))}")
        return part
    raise TypeError(f"{argument} must be an nn.Module, a dotted module name or None, got {type(part).__name__}")


def resolve_layer(model: nn.Module, layer, x: torch.Tensor | None = None) -> nn.Module:
    """``layer`` as a module: a module of ``model``, a dotted name, or None for ``model.cam_layer`` and,
    on a model without one, :func:`find_cam_layer` on the images ``x``."""
    if layer is not None:
        return _module_of(model, layer, "layer")
    found = getattr(model, "cam_layer", None)
    if isinstance(found, nn.Module):
        return found
    if x is None:
        raise ValueError("layer is required: this model has no `cam_layer` attribute; pass a module or one of "
                         f"these names: {_shorten(layer_candidates(model))}")
    return find_cam_layer(model, x)


def _contains_conv(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.conv._ConvNd) for m in module.modules())


def _channels_last_hook(sizes: set):
    """A LayerNorm forward pre-hook adding the size of the last axis of every 4-D input it normalises
    over that axis alone (the evidence of a channels-last layout: see :mod:`.layouts`)."""
    def hook(module, inputs):
        first = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
        if first is not None and first.dim() == 4 and tuple(module.normalized_shape) == (first.shape[-1],):
            sizes.add(int(first.shape[-1]))
    return hook


def _layer_norms(model: nn.Module):
    return [m for m in model.modules() if isinstance(m, nn.LayerNorm)]


#: The names of the query / key / value projections of an attention module (its direct ``nn.Linear``
#: children): one fused ``qkv`` (timm, torchvision Swin) or three (``q``/``k``/``v``, ``query``/``key``/``value``,
#: ``q_proj``/``k_proj``/``v_proj``: Hugging Face). The first name of each is the one computing the queries.
ATTENTION_PROJECTIONS = (("qkv",), ("q", "k", "v"), ("query", "key", "value"), ("q_proj", "k_proj", "v_proj"))


def query_projection(module: nn.Module) -> nn.Linear | None:
    """The ``nn.Linear`` computing the queries when ``module`` is an attention module by structure (it has
    the direct ``nn.Linear`` children of one of :data:`ATTENTION_PROJECTIONS`), else None."""
    children = dict(module.named_children())
    for names in ATTENTION_PROJECTIONS:
        if all(isinstance(children.get(n), nn.Linear) for n in names):
            return children[names[0]]
    return None


def _is_attention(module: nn.Module) -> bool:
    return isinstance(module, nn.MultiheadAttention) or query_projection(module) is not None


def prefix_tokens(model: nn.Module) -> int | None:
    """The number of leading non-patch tokens (class, distillation, register tokens) that the model
    declares in timm's ``num_prefix_tokens`` attribute (on itself or one sub-module), else None."""
    found = {int(getattr(m, "num_prefix_tokens")) for m in model.modules()
             if isinstance(getattr(m, "num_prefix_tokens", None), int)
             and not isinstance(getattr(m, "num_prefix_tokens"), bool)}
    return found.pop() if len(found) == 1 else None


class _Probe:
    """What one forward pass shows about every sub-module (see :func:`find_cam_layer`): the tick at which
    it started and finished, how often it ran, its output (kept alive so that ``id`` stays unique), and
    the tensor each attention module's query projection read."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.names = {id(m): name for name, m in model.named_modules() if name}
        self.tick = 0
        self.start, self.finish, self.calls = {}, {}, {}
        self.outputs = {}           # id(output tensor) -> (tensor, first module to return it)
        self.queries = {}           # id(attention module) -> the tensor its queries were computed from
        self.maps = []              # (module, output shape): conv-holding modules with a 4-D output, h w > 1
        self.weights = []           # the convolutions and linear layers, in the order they finished

    def run(self, x: torch.Tensor) -> "_Probe":
        handles = []
        try:
            for name, m in self.model.named_modules():
                if not name:
                    continue
                handles.append(m.register_forward_pre_hook(self._started))
                handles.append(m.register_forward_hook(self._finished))
                if isinstance(m, nn.MultiheadAttention):
                    handles.append(m.register_forward_pre_hook(self._mha_query(m), with_kwargs=True))
                else:
                    projection = query_projection(m)
                    if projection is not None:
                        handles.append(projection.register_forward_pre_hook(self._projection_query(m)))
            with eval_mode(self.model):
                self.model(x)
        finally:
            for h in handles:
                h.remove()
        return self

    def _started(self, module, _inputs):
        self.tick += 1
        self.start.setdefault(id(module), self.tick)

    def _finished(self, module, _inputs, output):
        self.tick += 1
        key = id(module)
        self.calls[key] = self.calls.get(key, 0) + 1
        self.finish[key] = self.tick
        if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
            self.weights.append(module)
        if not isinstance(output, torch.Tensor):
            return
        self.outputs.setdefault(id(output), (output, module))
        if output.dim() == 4 and output.shape[2] * output.shape[3] > 1 and _contains_conv(module):
            self.maps.append((module, tuple(output.shape)))

    def _mha_query(self, attention):
        def hook(_module, args, kwargs):
            query = args[0] if args else kwargs.get("query")
            if isinstance(query, torch.Tensor):
                self.queries[id(attention)] = query
        return hook

    def _projection_query(self, attention):
        def hook(_module, inputs):
            if inputs and isinstance(inputs[0], torch.Tensor):
                self.queries.setdefault(id(attention), inputs[0])
        return hook

    def attention_modules(self) -> list[nn.Module]:
        """The attention modules that ran, in the order they started."""
        found = [m for m in self.model.modules() if id(m) in self.start and _is_attention(m)]
        return sorted(found, key=lambda m: self.start[id(m)])

    def query_input(self, attention: nn.Module) -> nn.Module | None:
        """The pre-norm of ``attention``: the module whose output its queries read (torchvision's and timm's
        ViT, Hugging Face's ViT), else the last ``LayerNorm`` to finish before it started inside its block
        (the smallest module around it holding a ``LayerNorm`` of its own; Swin, whose windows are cut from
        the norm's output before the queries), else None (no pre-norm: a post-norm block)."""
        query = self.queries.get(id(attention))
        if query is not None and id(query) in self.outputs:
            return self.outputs[id(query)][1]
        inside = {id(m) for m in attention.modules()}
        parents = _ancestors(self.model, attention)
        for parent in parents:
            norms = [m for m in parent.modules() if isinstance(m, nn.LayerNorm) and id(m) not in inside]
            if not norms:
                continue
            before = [m for m in norms if self.finish.get(id(m), float("inf")) < self.start[id(attention)]]
            return max(before, key=lambda m: self.finish[id(m)]) if before else None
        return None

    def weight_depth(self, module: nn.Module) -> tuple[int, int]:
        """(weight layers, convolutions and linear layers, that finished up to the end of ``module``, and
        after it)."""
        end = self.finish[id(module)]
        upto = sum(1 for m in self.weights if self.finish[id(m)] <= end)
        return upto, len(self.weights) - upto


def _ancestors(model: nn.Module, module: nn.Module) -> list[nn.Module]:
    """The modules containing ``module``, innermost first, ``model`` last."""
    path = None
    for name, m in model.named_modules():
        if m is module:
            path = name
            break
    if not path:
        return [model]
    parts = path.split(".")
    return [model.get_submodule(".".join(parts[:i])) for i in range(len(parts) - 1, 0, -1)] + [model]


@torch.no_grad()
def find_cam_layer(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """The CAM layer by structure, from one probe forward of ``x[:1]`` in eval mode:

    * a model with attention (an ``nn.MultiheadAttention``, or a module whose direct ``nn.Linear`` children
      are query / key / value projections: :data:`ATTENTION_PROJECTIONS`): the pre-norm of the last
      attention module to run, the module whose output its queries read (torchvision's ViT
      ``encoder.layers[-1].ln_1``, timm's ViT / DeiT ``blocks[-1].norm1``, Hugging Face's ViT
      ``vit.layers[-1].layernorm_before``), or, where the queries are computed from windows cut out of it,
      the last ``LayerNorm`` of the attention's block to run before it (Swin: timm's and torchvision's
      ``norm1``, Hugging Face's ``layernorm_before`` of the last block). This is the layer pytorch-grad-cam
      recommends; the tokens after the last block reach a ViT's logits only through the class token, so
      their gradients vanish on every patch. A model whose last attention has no pre-norm (a post-norm
      block) is refused: pass ``layer=``;
    * otherwise the last module to finish that holds a convolution and outputs a 4-D map with more
      than one position (torchvision: ResNet ``layer4``, VGG / DenseNet / MobileNet / ConvNeXt
      ``features``; timm's ResNet ``layer4``, EfficientNet ``conv_head``; Hugging Face's ConvNext).

    Never a layer at the input: a candidate that holds the model's first weight layer (convolution or
    linear) and no other, while more than one weight layer follows it (a patch embedding, a stem), is
    refused with a ``ValueError`` that says to pass ``layer=``; a one-convolution CNN whose map goes straight
    to its linear classifier keeps that convolution. A module that runs more than once per forward pass is
    refused too.
    """
    probe = _Probe(model).run(x[:1])
    names = probe.names
    attention = probe.attention_modules()
    if attention:
        last = attention[-1]
        module = probe.query_input(last)
        if module is None or module is model:
            raise ValueError(f"cannot find a CAM layer by structure: the last attention module, "
                             f"{names.get(id(last), '<model>')!r}, has no pre-norm (its queries read no module's "
                             "output and no LayerNorm of its block runs before it); pass layer= (the module whose "
                             "output the last attention block reads) and reshape= if its output is not a feature "
                             "map")
    elif probe.maps:
        module = probe.maps[-1][0]
    else:
        raise ValueError("cannot find a CAM layer by structure: no module holding a convolution outputs a feature "
                         f"map with h w > 1, and no attention layer reads tokens; pass layer= (one of: "
                         f"{_shorten(layer_candidates(model))})")
    name = names.get(id(module), "<model>")
    upto, after = probe.weight_depth(module)
    holds_weights = any(isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)) for m in module.modules())
    if upto <= 1 and holds_weights and after > 1:
        raise ValueError(f"cannot find a CAM layer by structure: the only candidate, {name!r}, is the model's first "
                         f"layer (at the input, {after} weight layers before the logits: a patch embedding or a "
                         "stem); a CAM there shows the pixels, not the decision; pass layer= (a module near the "
                         "end of the network)")
    if probe.calls[id(module)] > 1:
        raise ValueError(f"cannot find a CAM layer by structure: {name!r} runs {probe.calls[id(module)]} "
                         "times in one forward pass; pass layer=")
    return module


#: The error of a CAM layer whose output does not reach the logits.
UNREACHED_LAYER = ("the logits do not depend on the layer's output (no gradient reaches it); pick a layer on the "
                   "path to the logits")


def reached(grad: torch.Tensor | None) -> torch.Tensor:
    """``grad`` of the logits with respect to a layer's output (``allow_unused=True``), or the error of
    a layer off the path to the logits when it is None."""
    if grad is None:
        raise ValueError(UNREACHED_LAYER)
    return grad


def logits_and_feature_maps(model: nn.Module, x: torch.Tensor, module: nn.Module, reshape=None):
    """Forward ``x`` (N, C, H, W) keeping the output of ``module``.

    Returns the logits (N, K), the layer's output as the model computed it (``raw``, in the graph:
    take gradients with respect to it) and ``to_map``, which turns ``raw`` or any tensor of its shape
    (a gradient) into channels-first feature maps (N, k, h, w) (:func:`.layouts.feature_map_view`;
    ``reshape`` overrides the detected layout). ``raw`` is a leaf that requires grad (also when every
    parameter is frozen) and the graph starts there: the layers before it run without autograd
    (:func:`.hooks.capture` with ``graph_from_here``), which saves their bookkeeping and memory and
    leaves d(anything)/d raw unchanged. Call this under ``torch.enable_grad()``.
    """
    n = x.shape[0]
    channels_last: set = set()
    handles = [m.register_forward_pre_hook(_channels_last_hook(channels_last)) for m in _layer_norms(model)]
    try:
        with torch.no_grad(), capture(module, graph_from_here=True) as store:
            logits = check_model_output(forward_images(model, x.detach()), n)
    finally:
        for h in handles:
            h.remove()
    raw = store.output
    if raw is None:
        raise ValueError("layer did not run during the forward pass; pick a layer the model uses")
    if not logits.requires_grad:
        raise ValueError(UNREACHED_LAYER)
    if raw.shape[0] != n:
        raise ValueError(f"layer output {tuple(raw.shape)} does not start with the batch size {n}; pass another "
                         "layer or reshape=")
    to_map = feature_map_view(raw, x.shape[-2:], reshape, channels_last, prefix_tokens(model) if raw.dim() == 3 else None)
    return logits, raw, to_map


class LinearHeads:
    """Several ``nn.Linear`` heads of one model whose outputs' **mean** is the logits (timm's distilled DeiT
    in eval mode: ``(head(cls) + head_dist(dist)) / 2``), read as one linear layer.

    With heads ``z_i = W_i h_i + b_i``, i = 1..m: ``z = mean_i z_i = W h + b`` for ``W = [W_1 ... W_m]``
    (K x sum D_i), ``h = [h_1 ... h_m] / m`` (the heads' inputs side by side, over m) and
    ``b = mean_i b_i``. So the gradient of any loss of the logits with respect to ``W`` is exactly the heads'
    weight gradients side by side, and every method that reads "the final linear layer and its input"
    (GradNorm, GradTrust, top-k GradTrust, Mahalanobis, introspective features) reads all heads at once.
    Pass ``classifier=(head_1, head_2)`` (modules or dotted names); the mean is checked on every forward.
    """

    def __init__(self, heads):
        self.heads = tuple(heads)
        if len(self.heads) < 2 or not all(isinstance(h, nn.Linear) for h in self.heads):
            raise TypeError("classifier heads must be two or more nn.Linear modules")
        if len({h.out_features for h in self.heads}) != 1:
            raise ValueError("classifier heads must all output the K logits; got out_features "
                             f"{[h.out_features for h in self.heads]}")
        if len({id(h) for h in self.heads}) != len(self.heads):
            raise ValueError("classifier heads must be different modules")

    @property
    def weight(self) -> torch.Tensor:
        return torch.cat([h.weight for h in self.heads], 1)

    @property
    def bias(self) -> torch.Tensor | None:
        biases = [h.bias for h in self.heads]
        if all(b is None for b in biases):
            return None
        return torch.stack([torch.zeros_like(self.heads[0].weight[:, 0]) if b is None else b
                            for b in biases]).mean(0)

    @property
    def in_features(self) -> int:
        return sum(h.in_features for h in self.heads)

    @property
    def out_features(self) -> int:
        return self.heads[0].out_features

    def features(self, inputs) -> torch.Tensor:
        """``h = [h_1 ... h_m] / m`` from the heads' inputs."""
        return torch.cat([i.flatten(1) for i in inputs], 1) / len(self.heads)

    def __repr__(self):
        return f"LinearHeads({', '.join(f'{h.in_features} -> {h.out_features}' for h in self.heads)}, mean)"


def resolve_classifier(model: nn.Module, classifier=None) -> nn.Linear | LinearHeads:
    """The final nn.Linear whose output is the logits: ``classifier`` (a module or dotted name, or a tuple
    of them for a model whose logits are the mean of several heads: :class:`LinearHeads`), else
    ``model.last_layer``, else the last registered ``nn.Linear`` of the model. Whether its output
    really is the logits is checked by :func:`classifier_pass` on every forward."""
    if isinstance(classifier, LinearHeads):
        for head in classifier.heads:
            _module_of(model, head, "classifier")
        return classifier
    if isinstance(classifier, (tuple, list)):
        heads = [_module_of(model, part, "classifier") for part in classifier]
        if len(heads) == 1:
            classifier = heads[0]
        else:
            bad = [type(h).__name__ for h in heads if not isinstance(h, nn.Linear)]
            if bad:
                raise TypeError(f"classifier heads must be nn.Linear modules, got {', '.join(bad)}")
            return LinearHeads(heads)
    if classifier is not None:
        layer = _module_of(model, classifier, "classifier")
    else:
        layer = getattr(model, "last_layer", None)
        if not isinstance(layer, nn.Linear):
            linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
            if not linears:
                raise ValueError(f"{type(model).__name__} has no nn.Linear producing its logits; pass classifier= "
                                 "with the final linear layer (logits = W h + b), or features= (a callable) "
                                 "where a method only reads penultimate features")
            layer = linears[-1]
    if not isinstance(layer, nn.Linear):
        raise TypeError(f"classifier must be the model's final nn.Linear (logits = W h + b), "
                        f"got {type(layer).__name__}")
    return layer


def _linear_names(model: nn.Module) -> str:
    return shorten([name for name, m in model.named_modules() if isinstance(m, nn.Linear)])


def resolve_normalize(model: nn.Module, normalize=None) -> torch.Tensor | None:
    """The per-channel training mean (C,) in pixel space, or None when the model has no normalisation.

    ``normalize``: a tensor (C,) (the mean itself), a module (or dotted name) with a ``mean`` tensor,
    or None for ``model.normalize`` and, failing that, the sub-modules holding both ``mean`` and ``std``
    tensors (the members of an ensemble share one; modules with different means: a ``ValueError``).
    """
    if isinstance(normalize, torch.Tensor):
        return normalize.detach().flatten()
    if normalize is not None:
        module = _module_of(model, normalize, "normalize")
    else:
        module = getattr(model, "normalize", None)
        if not isinstance(getattr(module, "mean", None), torch.Tensor):
            found = [(name, m) for name, m in model.named_modules()
                     if isinstance(getattr(m, "mean", None), torch.Tensor)
                     and isinstance(getattr(m, "std", None), torch.Tensor)]
            means = [m.mean.detach().flatten() for _, m in found]
            if any(v.shape != means[0].shape or not torch.equal(v, means[0]) for v in means[1:]):
                raise ValueError("the model has several normalisation modules with different means ("
                                 f"{shorten(name or '<model>' for name, _ in found)}); pass normalize=")
            module = found[0][1] if found else None
    mean = getattr(module, "mean", None)
    if module is not None and not isinstance(mean, torch.Tensor):
        raise ValueError(f"normalize: {type(module).__name__} has no `mean` tensor")
    return None if mean is None else mean.detach().flatten()


def resolve_baseline(model: nn.Module, x: torch.Tensor, baseline, argument: str = "baseline",
                     normalize=None) -> torch.Tensor:
    """A reference image broadcastable to ``x``.

    * ``"mean"``: the per-channel mean colour of the training data from :func:`resolve_normalize`
      (for the course models exactly the training-set mean in pixel space, the grey a zero-centred
      network sees as "nothing"); a model without a normalisation module gets a ``ValueError``
      (pass ``normalize=`` or the mean as a tensor).
    * ``"zero"`` or ``"black"``: 0; a number: that grey level; a tensor of shape (C,), (C, H, W) or
      (N, C, H, W).
    """
    n, c, h, w = x.shape
    if isinstance(baseline, str):
        check_choice(baseline, ("mean", "zero", "black"), argument)
        if baseline == "mean":
            mean = resolve_normalize(model, normalize)
            if mean is None:
                raise ValueError(f"{argument}='mean' needs the training data's mean colour, and "
                                 f"{type(model).__name__} has no normalisation module (a sub-module with `mean` "
                                 "and `std` tensors); pass normalize=<module or (C,) mean tensor>, or give "
                                 f"{argument} as a number or a tensor")
            if mean.numel() != c:
                raise ValueError(f"{argument}='mean': the normalisation mean has {mean.numel()} channels, the "
                                 f"images {c}")
            return mean.to(device=x.device, dtype=x.dtype).view(1, c, 1, 1)
        return torch.zeros((1, c, 1, 1), device=x.device, dtype=x.dtype)
    if isinstance(baseline, numbers.Real) and not isinstance(baseline, bool):
        if not math.isfinite(baseline):
            raise ValueError(f"{argument} must be a finite number, got {baseline!r}")
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


_PLAIN_LAYOUT: weakref.WeakSet = weakref.WeakSet()  # models whose forward refused a channels-last input


def forward_images(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``model(images)`` for a chunk of images (N, C, H, W), in channels-last memory on a CPU.

    Convolutions run up to 1.4x faster there on channels-last images (``signs_cnn``, 128 images: 32 ms
    against 46 ms; ResNet-50 forward + backward to the input, 8 images: 1.65 s against 1.77 s); the values
    are the same up to rounding (3e-6 on logits; input gradients of a random ResNet-50 as far from the
    float64 answer as the plain layout's). Gradients with respect to ``images`` come back in its layout.
    A model whose forward cannot take that layout (``x.view(n, -1)`` on its input) gets the plain layout,
    from then on: the ``RuntimeError`` is caught once and the chunk run again (a second error is the
    model's own). GPUs, one-channel images and other shapes run in the plain layout. Chunks are made contiguous either way
    (an expanded substrate would fail such a ``view`` too). Because of that retry, a caller whose hooks
    accumulate what a forward pass records (FullGrad's ``capture_many``) must not use this.
    """
    if images.device.type != "cpu" or images.dim() != 4 or images.shape[1] == 1 or _refused_channels_last(model):
        return model(images.contiguous())
    try:
        return model(images.contiguous(memory_format=torch.channels_last))
    except RuntimeError:
        try:
            _PLAIN_LAYOUT.add(model)
        except TypeError:  # not weakly referable or not hashable: it is retried on every call instead
            pass
        return model(images.contiguous())


def _refused_channels_last(model) -> bool:
    try:
        return model in _PLAIN_LAYOUT
    except TypeError:
        return False


@torch.no_grad()
def forward_logits(model: nn.Module, x: torch.Tensor, batch_size="auto") -> torch.Tensor:
    """Logits (N, K) in eval mode, batched, on ``x.device``; modes are restored (a warning when this
    switches a training-mode module: see :mod:`.modes`)."""
    with model_guard(model, "forward_logits", "eval"):
        return torch.cat([check_model_output(forward_images(model, chunk), len(chunk))
                          for chunk in batches(x, batch_size, model=model)])


def _same_logits(a: torch.Tensor, z: torch.Tensor) -> bool:
    return a.shape == z.shape and bool(torch.allclose(a, z, rtol=1e-4, atol=1e-5 * (1.0 + float(z.abs().max()))))


def classifier_pass(model: nn.Module, x: torch.Tensor, layer) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, K) and the input of ``layer`` (N, D) from ONE forward pass of ``x`` (differentiable, in
    the mode the model is in). Refuses (``ValueError``) when the output of ``layer`` is not exactly the
    model's logits (a layer after it, a classifier called twice, several heads) instead of returning
    features of the wrong layer; for :class:`LinearHeads`, when the mean of the heads' outputs is not the
    logits. The hooks are removed even on errors."""
    heads = layer.heads if isinstance(layer, LinearHeads) else (layer,)
    # the other linear layers with K outputs are watched too: when the logits combine several heads, the
    # refusal names them
    watched = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == layer.out_features]
    watched += [h for h in heads if all(h is not m for m in watched)]
    store = {id(m): [] for m in watched}
    handles = [m.register_forward_hook(lambda mod, inputs, out: store[id(mod)].append((inputs[0], out)))
               for m in watched]
    try:
        z = model(x)
    finally:
        for h in handles:
            h.remove()
    check_model_output(z, x.shape[0])
    names = {id(m): name for name, m in model.named_modules()}
    if isinstance(layer, LinearHeads):
        runs = [store[id(h)] for h in heads]
        if any(len(r) != 1 for r in runs):
            why = "; ".join(f"{names.get(id(h), '?')!r} ran {len(r)} times" for h, r in zip(heads, runs) if len(r) != 1)
            raise ValueError(f"classifier heads must each run once per forward pass ({why})")
        if not _same_logits(torch.stack([r[0][1] for r in runs]).mean(0), z):
            raise ValueError("the mean of the classifier heads' outputs is not the model's logits; pass the heads "
                             "whose outputs' mean is the logits, or the one final nn.Linear (nn.Linear modules: "
                             f"{_linear_names(model)})")
        return z, layer.features([r[0][0] for r in runs])
    run = store[id(layer)]
    if len(run) == 1 and run[0][1] is z:
        return z, run[0][0].flatten(1)
    why = f"it ran {len(run)} times in one forward pass" if len(run) != 1 else "its output is not the model's output"
    others = [m for m in watched if len(store[id(m)]) == 1]
    if len(others) > 1 and _same_logits(torch.stack([store[id(m)][0][1] for m in others]).mean(0), z):
        pair = ", ".join(repr(names.get(id(m), "?")) for m in others)
        raise ValueError(f"the classifier {names.get(id(layer), '?')!r} does not produce the logits: they are the "
                         f"mean of several heads ({pair}, as in timm's distilled DeiT); pass classifier=({pair}), "
                         "which the gradient scores read as one linear layer over the heads' inputs side by side")
    raise ValueError(f"the classifier {type(layer).__name__}({layer.in_features} -> {layer.out_features}) does "
                     f"not produce the logits ({why}); pass classifier= with the final linear layer, or a tuple "
                     f"of heads whose outputs' mean is the logits (nn.Linear modules: {_linear_names(model)})")


@torch.no_grad()
def forward_with_features(model: nn.Module, x: torch.Tensor, batch_size="auto", classifier=None
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, K) and the input of the classifier (N, D) from ONE forward pass (eval mode).

    The classifier is :func:`resolve_classifier`, checked by :func:`classifier_pass` on every chunk.
    """
    layer = resolve_classifier(model, classifier)
    with model_guard(model, "forward_with_features", "eval"):
        pairs = [classifier_pass(model, chunk, layer) for chunk in batches(x, batch_size, model=model)]
    return torch.cat([z for z, _ in pairs]), torch.cat([h for _, h in pairs])


@torch.no_grad()
def penultimate_features(model: nn.Module, x: torch.Tensor, batch_size="auto", features=None,
                         classifier=None) -> torch.Tensor:
    """Penultimate features (N, D): ``features(x)`` when a callable is given (flattened), else the input
    of the classifier (:func:`forward_with_features`). Eval mode, batched, modes restored."""
    if features is None:
        return forward_with_features(model, x, batch_size, classifier)[1]
    if not callable(features):
        raise TypeError(f"features must be a callable mapping images (N, C, H, W) to features (N, D), "
                        f"got {type(features).__name__}")
    with model_guard(model, "penultimate_features", "eval"):
        return torch.cat([features(chunk).detach().flatten(1) for chunk in batches(x, batch_size, model=model)])


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


class HeadSplit(NamedTuple):
    """``model(x) == head(features(x))``: ``trunk`` the model's direct children before ``head``, its last."""

    trunk: tuple
    head: nn.Module

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The trunk's output for ``x`` (the head's input)."""
        for module in self.trunk:
            x = module(x)
        return x


_SPLITS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> HeadSplit | None


class _ChildrenTracer(torch.fx.Tracer):
    """Traces a model's own forward, each direct child one opaque call (nothing runs, no hook fires)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.children = {id(m) for m in model.children()}

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return id(m) in self.children or super().is_leaf_module(m, qualname)


def head_after_features(model: nn.Module) -> HeadSplit | None:
    """The model as trunk and head (:class:`HeadSplit`) when its forward is the chain of its direct children,
    each called once in registration order on the previous one's output, the last one's output returned (a
    ``normalize -> features -> classifier`` network, an ``nn.Sequential``); else None.

    Read from the forward's code by ``torch.fx`` (the model does not run); cached per model.
    """
    try:
        if model in _SPLITS:
            return _SPLITS[model]
    except TypeError:  # not weakly referable
        pass
    children = list(model.children())
    split = None
    try:
        graph = _ChildrenTracer(model).trace(model)
    except Exception:  # control flow or calls fx cannot trace: not a plain chain
        graph = None
    if graph is not None and len(children) >= 2:
        nodes = list(graph.nodes)
        calls = nodes[1:-1]
        chained = (len(nodes) == len(children) + 2 and nodes[0].op == "placeholder" and nodes[-1].op == "output"
                   and nodes[-1].args == (calls[-1],)
                   and all(n.op == "call_module" and model.get_submodule(n.target) is m and not n.kwargs
                           and n.args == (prev,) for n, m, prev in zip(calls, children, nodes)))
        split = HeadSplit(tuple(children[:-1]), children[-1]) if chained else None
    try:
        _SPLITS[model] = split
    except TypeError:
        pass
    return split


def dropout_head(model: nn.Module) -> HeadSplit | None:
    """:func:`head_after_features` when every dropout module of ``model`` sits in the head (the trunk is then
    the same in every MC-dropout sample and runs once), else None."""
    split = head_after_features(model)
    if split is None or any(dropout_modules(m) for m in split.trunk):
        return None
    return split
