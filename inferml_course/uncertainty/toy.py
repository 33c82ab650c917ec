"""A 2-D toy for aleatoric vs epistemic uncertainty: scikit-learn's two moons with a noisy patch
(labels flipped at random: the *data* is ambiguous there) and a gap (no data at all: the *model*
cannot know). Tiny MLPs train on it in well under a second each on a CPU.

    data = make_toy_moons(seed=0)
    members = train_toy_ensemble(data, members=5)
    mc_model = train_toy_mlp(data, dropout=0.2, seed=10)
    grid = toy_grid(data)
    maps = {"ensemble": toy_decomposition(members, grid.points),
            "MC dropout": toy_decomposition(mc_model, grid.points, samples=30)}
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._core.arguments import checked
from .._core.modes import eval_mode, mc_dropout_mode
from .bayesian import Decomposition, _seeded, decompose

__all__ = ["ToyData", "ToyGrid", "make_toy_moons", "ToyMLP", "train_toy_mlp", "train_toy_ensemble", "toy_grid",
           "toy_probs", "toy_decomposition", "region_means"]


@dataclass
class ToyData:
    """Points ``x`` (N, 2) float32, labels ``y`` (N,), and where the noisy patch and the gap are."""

    x: torch.Tensor
    y: torch.Tensor
    noisy_center: tuple[float, float]
    noisy_radius: float
    gap_center: tuple[float, float]
    gap_radius: float

    def in_noisy(self, points: torch.Tensor) -> torch.Tensor:
        return (points - torch.tensor(self.noisy_center)).norm(dim=1) < self.noisy_radius

    def in_gap(self, points: torch.Tensor) -> torch.Tensor:
        return (points - torch.tensor(self.gap_center)).norm(dim=1) < self.gap_radius


@checked
def make_toy_moons(n: int = 600, noise: float = 0.1, label_noise: float = 0.4, seed: int = 0,
                   noisy_center=(1.9, 0.35), noisy_radius: float = 0.45,
                   gap_center=(0.05, 0.5), gap_radius: float = 0.4) -> ToyData:
    """Two moons (scikit-learn ``make_moons``) with a patch of random labels and a hole in the data.

    Inside the disc ``noisy_center, noisy_radius`` each label is replaced by a fair coin flip
    with probability ``label_noise`` (aleatoric uncertainty: more data would not help); points
    inside the disc ``gap_center, gap_radius`` are removed (epistemic uncertainty: no data there).
    """
    from sklearn.datasets import make_moons

    xs, ys = make_moons(n_samples=n, noise=noise, random_state=seed)
    rng = np.random.default_rng(seed)
    flip = (np.linalg.norm(xs - np.asarray(noisy_center), axis=1) < noisy_radius) & (rng.random(n) < label_noise)
    ys = np.where(flip, rng.integers(0, 2, n), ys)
    keep = np.linalg.norm(xs - np.asarray(gap_center), axis=1) >= gap_radius
    return ToyData(torch.tensor(xs[keep], dtype=torch.float32), torch.tensor(ys[keep], dtype=torch.long),
                   tuple(noisy_center), noisy_radius, tuple(gap_center), gap_radius)


class ToyMLP(nn.Module):
    """2 -> hidden -> hidden -> 2 with ReLU and optional dropout after each hidden layer."""

    def __init__(self, hidden: int = 64, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@checked
def train_toy_mlp(data: ToyData, hidden: int = 64, dropout: float = 0.0, steps: int = 300, lr: float = 0.02,
                  weight_decay: float = 1e-4, seed: int = 0) -> ToyMLP:
    """Full-batch Adam on the toy data; deterministic for a seed; the caller's RNG state is restored."""
    with _seeded(seed, torch.device("cpu")):
        model = ToyMLP(hidden, dropout)
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        model.train()
        for _ in range(steps):
            loss = nn.functional.cross_entropy(model(data.x), data.y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    for p in model.parameters():
        p.grad = None
    return model


@checked
def train_toy_ensemble(data: ToyData, members: int = 5, seed: int = 0, **options) -> list[ToyMLP]:
    """A deep ensemble: ``members`` MLPs that differ only in their random initialisation (seeds)."""
    return [train_toy_mlp(data, seed=seed + i, **options) for i in range(members)]


@dataclass
class ToyGrid:
    points: torch.Tensor   # (R*R, 2)
    xx: np.ndarray         # (R, R)
    yy: np.ndarray         # (R, R)

    def reshape(self, values: torch.Tensor) -> np.ndarray:
        return values.reshape(self.xx.shape).cpu().numpy()


@checked
def toy_grid(data: ToyData, resolution: int = 120, margin: float = 0.9) -> ToyGrid:
    """A regular grid around the data (for uncertainty maps)."""
    lo = data.x.min(0).values - margin
    hi = data.x.max(0).values + margin
    xs = np.linspace(float(lo[0]), float(hi[0]), resolution)
    ys = np.linspace(float(lo[1]), float(hi[1]), resolution)
    xx, yy = np.meshgrid(xs, ys)
    points = torch.tensor(np.stack([xx.ravel(), yy.ravel()], 1), dtype=torch.float32)
    return ToyGrid(points, xx, yy)


@torch.no_grad()
@checked
def toy_probs(models, points: torch.Tensor, samples: int = 30, seed: int = 0) -> torch.Tensor:
    """Probabilities (S, G, 2): one row per ensemble member (a list of models) or per MC-dropout
    sample (a single model with dropout)."""
    if isinstance(models, (list, tuple)):
        with contextlib.ExitStack() as stack:
            for m in models:
                stack.enter_context(eval_mode(m))
            return torch.stack([torch.softmax(m(points), 1) for m in models])
    with mc_dropout_mode(models), _seeded(seed, points.device):
        return torch.stack([torch.softmax(models(points), 1) for _ in range(samples)])


@checked
def toy_decomposition(models, points: torch.Tensor, samples: int = 30, seed: int = 0) -> Decomposition:
    """Total, aleatoric and epistemic uncertainty (nats) at ``points`` (see :func:`toy_probs`)."""
    return decompose(toy_probs(models, points, samples, seed))


@checked
def region_means(decomposition: Decomposition, data: ToyData, points: torch.Tensor) -> dict[str, dict[str, float]]:
    """Mean total / aleatoric / epistemic uncertainty in the noisy patch, the gap and near clean data."""
    noisy, gap = data.in_noisy(points), data.in_gap(points)
    distance = torch.cdist(points, data.x).min(1).values
    clean = (distance < 0.15) & ~noisy & ~gap
    far = distance > 0.9
    regions = {"noisy patch": noisy, "gap": gap, "clean data": clean, "far away": far}
    return {name: {part: float(getattr(decomposition, part)[mask].mean()) for part in Decomposition._fields}
            for name, mask in regions.items()}
