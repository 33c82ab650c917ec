"""The reflection stage of introspective learning: a network on the introspective features, the
two-stage :class:`IntrospectiveClassifier` and the corruption / OOD benchmarks of lesson 04.

Modes (``policy="eval"`` of :mod:`inferml_course._core.modes`): the two-stage prediction
(``features``, ``both_proba``, ``predict_proba``, ``predict``, the benchmarks) is defined at
inference, so a model left in training mode runs in eval mode for the call, with a warning that says
so; every module's own flag is restored afterwards, also on errors.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._core.arguments import checked
from .._core.checks import check_choice, check_images, check_model, check_model_input, check_positive_int
from .._core.batching import batches, check_batch_size
from .._core.modes import eval_mode, guarded
from .._core.adapter import LinearHeads, classifier_pass, resolve_classifier
from .._core.directions import register
from .features import _check_options, _features_from, introspective_features
from ..datasets.corruptions import CORRUPTIONS, corrupt
from ..uncertainty.calibration import expected_calibration_error
from ..uncertainty.metrics import ood_metrics
from ..uncertainty.scores import uncertainty

__all__ = ["ReflectionNetwork", "train_reflection", "IntrospectiveClassifier", "corruption_benchmark", "ood_benchmark"]

# the direction of each metric defined here (the package's direction registry, _core.directions)
register('auroc', True, quantity='area under the ROC curve (OOD = positive)', family="introspection")
register('fpr95', False, quantity='false-positive rate at 95 % true-positive rate', family="introspection")
register('ece', False, quantity='expected calibration error', family="introspection")


class ReflectionNetwork(nn.Module):
    """``H``: standardise the features, then Linear-ReLU-Linear-ReLU-Linear (a three-layer MLP)."""

    def __init__(self, in_features: int, num_classes: int, hidden=(128, 64)):
        super().__init__()
        check_positive_int(in_features, "in_features")
        check_positive_int(num_classes, "num_classes")
        if len(hidden) != 2:
            raise ValueError(f"hidden must give the two hidden widths, e.g. (128, 64), got {hidden!r}")
        self.register_buffer("mean", torch.zeros(in_features))
        self.register_buffer("std", torch.ones(in_features))
        self.fc1 = nn.Linear(in_features, hidden[0])
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.relu2 = nn.ReLU()
        self.fc3 = nn.Linear(hidden[1], num_classes)
        self.num_classes = num_classes

    @torch.no_grad()
    def fit_standardization(self, features: torch.Tensor) -> "ReflectionNetwork":
        self.mean.copy_(features.mean(0))
        self.std.copy_(features.std(0).clamp_min(1e-6))
        return self

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        r = (features - self.mean) / self.std
        return self.fc3(self.relu2(self.fc2(self.relu1(self.fc1(r)))))


@checked
def train_reflection(features: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None, hidden=(128, 64),
                     epochs: int = 5, lr: float = 1e-3, batch_size: int = 128, weight_decay: float = 1e-4,
                     seed: int = 0, progress: bool = False) -> ReflectionNetwork:
    """Train ``H`` with cross-entropy and Adam on ``features`` (N, F) and true ``labels`` (N,).

    Deterministic for a seed (initialisation and shuffling use seeded generators; the global RNG
    state is restored afterwards). Returns ``H`` in eval mode.
    """
    if not isinstance(features, torch.Tensor) or features.dim() != 2 or not features.is_floating_point():
        raise TypeError("features must be a floating tensor of shape (N, F)")
    if features.shape[0] == 0:
        raise ValueError("features is empty (N = 0)")
    if not torch.isfinite(features).all():
        raise ValueError("features contains NaN or infinite values")
    if not isinstance(labels, torch.Tensor) or labels.shape != (features.shape[0],) or labels.is_floating_point():
        raise ValueError(f"labels must be an integer tensor of shape ({features.shape[0]},)")
    if labels.min() < 0:
        raise ValueError("labels must be class indices >= 0")
    k = int(labels.max()) + 1 if num_classes is None else check_positive_int(num_classes, "num_classes")
    if labels.max() >= k:
        raise ValueError(f"labels hold classes beyond num_classes={k}")
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    from tqdm.auto import tqdm

    device = features.device
    labels = labels.to(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = ReflectionNetwork(features.shape[1], k, hidden).to(device).fit_standardization(features)
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
        net.train()
        for _ in tqdm(range(epochs), desc="training H", disable=not progress, leave=False):
            order = torch.randperm(features.shape[0], generator=gen).to(device)
            for start in range(0, features.shape[0], batch_size):
                idx = order[start:start + batch_size]
                loss = F.cross_entropy(net(features[idx]), labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    for p in net.parameters():
        p.grad = None
    return net.eval()


class IntrospectiveClassifier(nn.Module):
    """Sensing network ``f`` (frozen) + introspective features + reflection network ``H``.

    ``forward(x)`` returns ``H``'s logits and is differentiable with respect to ``x``, so any
    method that takes a model (MSP, ODIN, energy, explanations) plugs in unchanged.

    Example::

        intro = IntrospectiveClassifier(model).fit(train.images, train.labels)
        intro.predict(test.images), intro.predict_proba(test.images)
    """

    def __init__(self, sensing: nn.Module, loss: str = "cross_entropy", reduction: str = "sum",
                 include_bias: bool = True, classifier=None, hidden=(128, 64)):
        super().__init__()
        _check_options(loss, reduction)
        self.sensing = sensing
        fc = resolve_classifier(check_model(sensing), classifier)
        heads = fc.heads if isinstance(fc, LinearHeads) else (fc,)
        names = tuple(next(n for n, m in sensing.named_modules() if m is h) for h in heads)
        self._classifier_name = names if len(names) > 1 else names[0]
        self.loss, self.reduction, self.include_bias, self.hidden = loss, reduction, include_bias, tuple(hidden)
        self.reflection = None
        self.num_classes = fc.out_features

    @property
    def classifier(self) -> nn.Linear | LinearHeads:
        """The sensing network's final linear layer (or its heads), whose gradients are the features."""
        if isinstance(self._classifier_name, tuple):
            return LinearHeads(self.sensing.get_submodule(n) for n in self._classifier_name)
        return self.sensing.get_submodule(self._classifier_name)

    @guarded(policy="eval", arg="self")
    def features(self, x: torch.Tensor, batch_size="auto") -> torch.Tensor:
        """Introspective features (N, F) of ``x``, without gradients."""
        return introspective_features(self.sensing, x, self.loss, self.reduction, self.include_bias, self.classifier,
                                      batch_size)

    def fit(self, images: torch.Tensor, labels: torch.Tensor, features: torch.Tensor | None = None,
            epochs: int = 5, lr: float = 1e-3, batch_size: int = 128, weight_decay: float = 1e-4, seed: int = 0,
            progress: bool = False) -> "IntrospectiveClassifier":
        """Train ``H`` on the features of ``images`` (or precomputed ``features``) and true ``labels``.

        The sensing network is only read: its parameters, mode and gradients are unchanged.
        """
        if features is None:
            features = self.features(images)
        elif features.shape[0] != labels.shape[0]:
            raise ValueError("features and labels must have the same length")
        self.reflection = train_reflection(features, labels.to(features.device), self.num_classes, self.hidden,
                                           epochs, lr, batch_size, weight_decay, seed, progress)
        return self

    def _require_fitted(self):
        if self.reflection is None:
            raise RuntimeError("the reflection network is not trained yet: call .fit(images, labels) first")

    def forward_both(self, x: torch.Tensor):
        """(feed-forward logits, introspective logits), both from one sensing pass."""
        self._require_fitted()
        x = check_model_input(self.sensing, x, "x")  # the dtype rule: x in the sensing network's dtype
        z, h = classifier_pass(self.sensing, x, self.classifier)
        return z, self.reflection(_features_from(h, z, self.loss, self.reduction, self.include_bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the introspective prediction, (N, K)."""
        return self.forward_both(x)[1]

    @guarded(policy="eval", arg="self")
    @torch.no_grad()
    def both_proba(self, x: torch.Tensor, batch_size="auto"):
        """(feed-forward probabilities, introspective probabilities), each (N, K), eval mode."""
        self._require_fitted()
        check_images(x, "x")
        check_batch_size(batch_size)
        ff, intro = [], []
        with eval_mode(self):
            for chunk in batches(x, batch_size, model=self.sensing):
                z, r = self.forward_both(chunk)
                ff.append(torch.softmax(z, 1))
                intro.append(torch.softmax(r, 1))
        return torch.cat(ff), torch.cat(intro)

    @guarded(policy="eval", arg="self")
    def predict_proba(self, x: torch.Tensor, batch_size="auto") -> torch.Tensor:
        """Introspective class probabilities (N, K)."""
        return self.both_proba(x, batch_size)[1]

    @guarded(policy="eval", arg="self")
    def predict(self, x: torch.Tensor, batch_size="auto") -> torch.Tensor:
        """Introspective class predictions (N,)."""
        return self.predict_proba(x, batch_size).argmax(1)


@guarded(policy="eval", arg="classifier")
@checked
def corruption_benchmark(classifier: IntrospectiveClassifier, images: torch.Tensor, labels: torch.Tensor,
                         corruptions=None, severities=(1, 2, 3, 4, 5), seed: int = 0, n_bins: int = 15,
                         batch_size="auto", progress: bool = False, per_image: bool = False) -> dict:
    """Accuracy (higher is better) and ECE (lower is better) of the feed-forward and introspective
    predictions for every corruption and severity; one sensing pass per corrupted set.

    ECE: :func:`inferml_course.uncertainty.calibration.expected_calibration_error` with ``n_bins``
    equal-width bins (15 by default). Corruptions: any of ``datasets.CORRUPTIONS`` (default: all of
    them; for 1-channel images pass ``datasets.GRAY_CORRUPTIONS``).

    Returns ``{"corruptions", "severities", "clean": {"accuracy": {...}, "ece": {...}},
    "accuracy": {"feed-forward": (C, S), "introspective": (C, S)}, "ece": {...}}``. With
    ``per_image=True`` also ``"confidence"`` and ``"correct"``: ``{network: (N, C, S)}`` (the top
    probability and whether the prediction is right, image by image; cell (C, S) of the tables is their
    mean and ECE), and ``"clean_confidence"``, ``"clean_correct"``: ``{network: (N,)}``, for a bootstrap
    over the images.
    """
    from tqdm.auto import tqdm


    if not isinstance(classifier, IntrospectiveClassifier):
        raise TypeError("classifier must be an IntrospectiveClassifier (fitted)")
    check_images(images, "images")
    if not isinstance(labels, torch.Tensor) or labels.shape != (images.shape[0],):
        raise ValueError(f"labels must be a tensor of shape ({images.shape[0]},)")
    corruptions = list(CORRUPTIONS if corruptions is None else corruptions)
    for name in corruptions:
        check_choice(name, CORRUPTIONS, "corruption")
    names = ("feed-forward", "introspective")
    device = next(classifier.parameters()).device
    images, labels = images.to(device), labels.to(device)  # corrupt and classify where the model lives

    def score(x):
        probs = classifier.both_proba(x, batch_size)
        y = labels.to(probs[0].device)
        top = {n: p.max(1) for n, p in zip(names, probs)}
        return ({n: float((p.argmax(1) == y).double().mean()) for n, p in zip(names, probs)},
                {n: expected_calibration_error(p, y, n_bins) for n, p in zip(names, probs)},
                {n: top[n].values.cpu() for n in names}, {n: (top[n].indices == y).cpu() for n in names})

    clean_acc, clean_ece, clean_conf, clean_right = score(images)
    acc = {n: torch.empty(len(corruptions), len(severities)) for n in names}
    ece = {n: torch.empty(len(corruptions), len(severities)) for n in names}
    n_images = images.shape[0]
    conf = {n: torch.empty(n_images, len(corruptions), len(severities)) for n in names}
    right = {n: torch.empty(n_images, len(corruptions), len(severities), dtype=torch.bool) for n in names}
    bar = tqdm(total=len(corruptions) * len(severities), desc="corruptions", disable=not progress, leave=False)
    for i, name in enumerate(corruptions):
        for j, severity in enumerate(severities):
            a, e, c, r = score(corrupt(images, name, severity, seed=seed))
            for n in names:
                acc[n][i, j], ece[n][i, j] = a[n], e[n]
                conf[n][:, i, j], right[n][:, i, j] = c[n], r[n]
            bar.update()
    bar.close()
    result = {"corruptions": corruptions, "severities": list(severities),
              "clean": {"accuracy": clean_acc, "ece": clean_ece}, "accuracy": acc, "ece": ece}
    if per_image:
        result.update(confidence=conf, correct=right, clean_confidence=clean_conf, clean_correct=clean_right)
    return result


@guarded(policy="eval", arg="classifier")
@checked
def ood_benchmark(classifier: IntrospectiveClassifier, in_images: torch.Tensor, ood_sets: dict,
                  methods=("msp", "odin", "energy"), odin_options: dict | None = None,
                  batch_size: int = 256) -> list[dict]:
    """Plug-in OOD detection: each score on the feed-forward network ``f`` and on the introspective
    classifier (which is just another model to the score functions).

    Scores come from the registry of :mod:`inferml_course.uncertainty` (uncertainties, higher = more
    uncertain; ODIN with its paper defaults T = 1000, eps = 0.0014 unless ``odin_options`` says
    otherwise). One row per (method, OOD set, network) with ``auroc`` (higher is better) and
    ``fpr95`` (the fraction of in-distribution images flagged when 95 % of the OOD images are
    caught, lower is better), from :func:`inferml_course.uncertainty.metrics.ood_metrics`.
    """

    if not isinstance(classifier, IntrospectiveClassifier):
        raise TypeError("classifier must be an IntrospectiveClassifier (fitted)")
    classifier._require_fitted()
    check_images(in_images, "in_images")
    if not isinstance(ood_sets, dict) or not ood_sets:
        raise ValueError("ood_sets must be a non-empty dict {name: images (N, C, H, W)}")
    for name, x in ood_sets.items():
        check_images(x, f"ood_sets[{name!r}]")
    for m in methods:
        check_choice(m, ("msp", "odin", "energy"), "method")
    options = {"odin": dict(odin_options or {}), "msp": {}, "energy": {}}
    networks = {"feed-forward": classifier.sensing, "introspective": classifier}
    rows = []
    for method in methods:
        for net_name, net in networks.items():
            s_in = uncertainty(method, net, in_images, batch_size=batch_size, **options[method])
            for set_name, x in ood_sets.items():
                s_out = uncertainty(method, net, x, batch_size=batch_size, **options[method])
                metrics = ood_metrics(s_in, s_out)
                rows.append({"method": method, "dataset": set_name, "network": net_name,
                             "auroc": metrics["AUROC"], "fpr95": metrics["FPR95"]})
    return rows
