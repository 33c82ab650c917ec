"""Indirect explanations: look at the network's parameters and features, not at one decision.

They need a viewer who knows how networks work (lecture 23's "indirect explanations"):

* :func:`first_layer_filters`: the weights of the first convolution, viewable as small images;
* :func:`activation_maps`: the feature maps of any layer for some images;
* :func:`max_activating_patches`: per channel, the dataset patches (receptive fields) that excite it most;
* :func:`embeddings`, :func:`nearest_neighbors`: images the network considers similar;
* :func:`project`: PCA or t-SNE of the penultimate-layer embeddings (``model.embed``).

All run without gradients; dataset-wide passes take ``batch_size`` images at a time.

Modes (``policy="as_is"`` of :mod:`inferml_course._core.modes`): the model runs in the mode it is
in; a dropout or batch-norm module in training mode gets one warning per call (the result is random,
batch norm mixes the samples of a batch), and every module's flag and every batch-norm statistic are
restored afterwards, also on errors.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .._core.arguments import checked
from .._core.checks import check_choice, check_float_tensor, check_labels, check_length, check_model_input, \
    check_positive_int
from .._core.adapter import resolve_layer
from .._core.hooks import capture
from .._core.batching import batches, check_batch_size, chunk_size
from .._core.modes import guarded
from ..fisher.information import embeddings

__all__ = ["first_layer_filters", "activation_maps", "receptive_field", "max_activating_patches", "embeddings",
           "nearest_neighbors", "neighbor_agreement", "project", "representatives"]


@checked
def first_layer_filters(model: nn.Module) -> torch.Tensor:
    """The weights (F, C, k, k) of the first ``nn.Conv2d`` of ``model`` (a detached copy)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module.weight.detach().clone()
    raise ValueError("model has no nn.Conv2d layer")


@guarded()
@torch.no_grad()
@checked
def activation_maps(model: nn.Module, x: torch.Tensor, layer=None) -> torch.Tensor:
    """The output of ``layer`` (a module or dotted name; default ``model.cam_layer``) for images x."""
    x = check_model_input(model, x, "x")
    module = resolve_layer(model, layer, x)
    with capture(module) as store:
        model(x)
    if store.output is None:
        raise ValueError("layer did not run during the forward pass")
    return store.output.detach()


def _leaves(module: nn.Module):
    return [m for m in module.modules() if not any(True for _ in m.children())]


def _as_int(v):
    return int(v[0]) if isinstance(v, (tuple, list)) else int(v)


def patch_origin(model: nn.Module, layer, row, col):
    """The input pixel (top, left) where the receptive field of unit (row, col) of ``layer`` starts."""
    size, jump, start = receptive_field(model, layer)
    first = lambda i: int(math.floor(start + jump * i - (size - 1) / 2 + 0.5))  # noqa: E731
    return first(row), first(col)


@checked
def receptive_field(model: nn.Module, layer) -> tuple[int, int, float]:
    """(size, jump, start) of a unit of ``layer``: the receptive field's side in input pixels, the
    input distance between neighbouring units, and the input coordinate of the first unit's centre.

    Walks the convolution and pooling layers in registration order up to the end of ``layer``, so
    it is exact for feed-forward chains such as the course's SmallCNN (not for branching networks).
    """
    module = resolve_layer(model, layer)
    leaves = _leaves(model)
    inside = {id(m) for m in _leaves(module)}
    last = max(i for i, m in enumerate(leaves) if id(m) in inside)
    size, jump, start = 1, 1, 0.0
    for m in leaves[:last + 1]:
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            k, s = _as_int(m.kernel_size), _as_int(m.stride)
            p = _as_int(m.padding)
            d = _as_int(getattr(m, "dilation", 1))
            start += ((k - 1) / 2 * d - p) * jump
            size += (k - 1) * d * jump
            jump *= s
    return size, jump, start


@guarded()
@torch.no_grad()
@checked
def max_activating_patches(model: nn.Module, images: torch.Tensor, layer=None, channels=None, k: int = 6,
                           batch_size="auto", fill: float = 0.5) -> dict:
    """The ``k`` dataset patches that activate each channel of ``layer`` most (Zeiler and Fergus 2014).

    Each image counts once per channel (its strongest unit); the patch is that unit's receptive
    field (:func:`receptive_field`), cut from the image and padded with grey ``fill`` where it
    leaves the image. Returns a dict: ``patches`` (n_channels, k, C, P, P), ``values`` and
    ``image_index`` (n_channels, k), ``location`` (n_channels, k, 2) = (row, col) of the unit,
    ``channels`` (n_channels,), ``size`` (P).
    """
    images = check_model_input(model, images, "images")
    check_positive_int(k, "k")
    check_batch_size(batch_size)
    module = resolve_layer(model, layer, images)
    batch_size = chunk_size(batch_size, images, model=model, work=images.shape[0])
    best, where = [], []
    with capture(module) as store:
        for i in range(0, images.shape[0], batch_size):
            model(images[i:i + batch_size])
            a = store.output
            if a is None or a.dim() != 4:
                raise ValueError("layer must output feature maps (N, K, h, w)")
            v, idx = a.flatten(2).max(2)  # (n, K)
            best.append(v)
            where.append(idx)
            map_w = a.shape[-1]
    best, where = torch.cat(best), torch.cat(where)
    channels = torch.arange(best.shape[1]) if channels is None else torch.as_tensor(channels).long().reshape(-1)
    if channels.numel() == 0 or int(channels.min()) < 0 or int(channels.max()) >= best.shape[1]:
        raise ValueError(f"channels must be indices from 0 to {best.shape[1] - 1}")
    k = min(k, images.shape[0])
    values, image_index = best[:, channels.to(best.device)].topk(k, dim=0)  # (k, n_channels)
    values, image_index = values.t(), image_index.t()
    flat = where[image_index, channels.to(best.device)[:, None]]
    rows, cols = flat // map_w, flat % map_w
    size, jump, start = receptive_field(model, module)
    c, h, w = images.shape[1:]
    padded = torch.nn.functional.pad(images, (size, size, size, size), value=fill)
    top = torch.floor(start + jump * rows.double() - (size - 1) / 2 + 0.5).long() + size  # first pixel, padded
    left = torch.floor(start + jump * cols.double() - (size - 1) / 2 + 0.5).long() + size
    r = top[..., None] + torch.arange(size, device=top.device)  # (n_ch, k, P)
    q = left[..., None] + torch.arange(size, device=top.device)
    src = padded[image_index.to(images.device)]  # (n_ch, k, C, H + 2P, W + 2P)
    patches = src[torch.arange(src.shape[0])[:, None, None, None, None],
                  torch.arange(k)[None, :, None, None, None],
                  torch.arange(c)[None, None, :, None, None],
                  r[:, :, None, :, None].to(images.device), q[:, :, None, None, :].to(images.device)]
    return {"patches": patches, "values": values, "image_index": image_index,
            "location": torch.stack([rows, cols], -1), "channels": channels, "size": size}


@guarded()
@torch.no_grad()
@checked
def nearest_neighbors(model: nn.Module, queries: torch.Tensor, gallery: torch.Tensor, k: int = 5,
                       metric: str = "euclidean", gallery_features: torch.Tensor | None = None,
                       batch_size="auto", features=None, classifier=None):
    """The ``k`` gallery images closest to each query in embedding space (:func:`embeddings`, with
    ``features`` / ``classifier`` as there).

    Returns ``(indices, distances)``, both (N, k), nearest first. ``metric``: ``"euclidean"`` or
    ``"cosine"`` (1 - cosine similarity). Pass precomputed ``gallery_features`` to skip a gallery pass.
    """
    check_choice(metric, ("euclidean", "cosine"), "metric")
    check_positive_int(k, "k")
    queries = check_model_input(model, queries, "queries")
    if gallery_features is None:
        gallery = check_model_input(model, gallery, "gallery")
    else:
        check_length(gallery_features, len(gallery), "gallery_features", "gallery")
    q = embeddings(model, queries, batch_size, features, classifier)
    if gallery_features is not None and (gallery_features.dim() != 2 or gallery_features.shape[1] != q.shape[1]):
        raise ValueError(f"gallery_features must have shape ({len(gallery)}, {q.shape[1]}) like the queries' "
                         f"embeddings, got {tuple(gallery_features.shape)}")
    g = embeddings(model, gallery, batch_size, features, classifier) if gallery_features is None else gallery_features
    if k > g.shape[0]:
        raise ValueError(f"k = {k} is larger than the gallery ({g.shape[0]} images)")
    if metric == "cosine":
        d = 1 - torch.nn.functional.normalize(q, dim=1) @ torch.nn.functional.normalize(g, dim=1).t()
    else:
        d = torch.cdist(q, g)
    distances, indices = d.topk(k, dim=1, largest=False)
    return indices, distances


@checked
def neighbor_agreement(features: torch.Tensor, labels: torch.Tensor, k: int = 5) -> float:
    """The share of each point's ``k`` nearest neighbours (Euclidean, itself excluded) that have its
    label, averaged over points: how well an embedding or a 2-D projection keeps the classes apart.
    Higher is better; a random embedding scores about the share of the largest class."""
    check_positive_int(k, "k")
    f = torch.as_tensor(features).detach().double().cpu()
    labels = torch.as_tensor(labels).cpu()
    if f.dim() != 2 or labels.shape != (f.shape[0],) or f.shape[0] <= k:
        raise ValueError("features must be (N, D) with N > k and labels (N,)")
    d = torch.cdist(f, f)
    d.fill_diagonal_(float("inf"))
    idx = d.topk(k, dim=1, largest=False).indices
    return float((labels[idx] == labels[:, None]).double().mean())


@checked
def project(features: torch.Tensor, method: str = "pca", seed: int = 0, perplexity: float = 30.0) -> torch.Tensor:
    """Two-dimensional coordinates (N, 2) of features (N, D): ``"pca"`` (the top two principal
    components, by SVD) or ``"tsne"`` (scikit-learn's t-SNE, PCA initialisation, ``seed``)."""
    check_choice(method, ("pca", "tsne"), "method")
    check_float_tensor(features, "features", "(N, D)", dim=2)
    if features.shape[0] < 3:
        raise ValueError(f"features must have N >= 3 rows (N, D), got shape {tuple(features.shape)}")
    f = features.detach().double().cpu()
    if method == "pca":
        centred = f - f.mean(0)
        _, _, vh = torch.linalg.svd(centred, full_matrices=False)
        return (centred @ vh[:2].t()).float()
    from sklearn.manifold import TSNE

    perplexity = min(perplexity, (f.shape[0] - 1) / 3)
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
    return torch.from_numpy(tsne.fit_transform(f.numpy())).float()


@guarded()
@torch.no_grad()
@checked
def representatives(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, classes,
                    batch_size="auto", strict: bool = True) -> torch.Tensor:
    """For each class in ``classes``, the index of the image of that class the model classifies
    correctly with the highest probability (a "representative image" of the class).

    A class without any correctly classified image raises a ValueError, or gets -1 with ``strict=False``.
    """
    images = check_model_input(model, images, "images")
    probs = torch.cat([torch.softmax(model(chunk), 1) for chunk in batches(images, batch_size, model=model)])
    labels = check_labels(labels, "labels", images.shape[0], probs.shape[1]).to(probs.device)
    out = []
    for c in classes:
        c = int(c)
        score = torch.where((labels == c) & (probs.argmax(1) == c), probs[:, c], torch.full_like(probs[:, c], -1))
        if float(score.max()) < 0:
            if strict:
                raise ValueError(f"no correctly classified image of class {c}")
            out.append(-1)
        else:
            out.append(int(score.argmax()))
    return torch.tensor(out)
