"""Pixel-wise insertion and deletion games (Petsiuk, Das and Saenko, RISE, BMVC 2018).

Rank the pixels of an image by its explanation, most important first. Then

* **deletion**: replace the top-ranked pixels by the substrate, a few more at every step, and
  record the class score after each step. An explanation that found the *necessary* pixels makes
  the score collapse early: the area under the curve (AUC) is **lower is better**;
* **insertion**: start from the substrate and put the top-ranked pixels of the image back, a few more
  at every step. An explanation that found *sufficient* pixels makes the score rise early: the AUC is
  **higher is better**.

With ``steps`` = S, step k (k = 0..S) has the first round(k H W / S) pixels of the ranking moved, so
each curve has S + 1 points at pixel fractions k / S, from the untouched start to the finished end;
the AUC is the trapezoid rule on that [0, 1] axis. Ties in a map are broken in raster order (a
stable sort), so a constant map inserts or deletes row by row. Pixels are ranked by the raw map
value: for signed maps the most positive evidence goes first and negative evidence last.

Every choice that changes the numbers is an argument, because the papers differ:

==================  ============================================  =====================================
choice              here (default)                                 RISE code / SHAPE code
==================  ============================================  =====================================
``substrate``       ``"blur"`` (Gaussian, ``blur_sigma`` = 3 px)    deletion black, insertion blur /
                    for both games; or ``"mean"``, ``"black"``      blur (11 taps, sigma 5) for both
``steps``           64 (16 pixels per step at 32 x 32)              224 pixels per step / 100 steps
``output``          ``"probability"`` (softmax of the target)       softmax / softmax
AUC                 trapezoid on pixel fraction in [0, 1]           trapezoid / (n - 1) / ``np.trapz``
                                                                    with dx = 1 / steps
==================  ============================================  =====================================

Scaling RISE's sigma of 5 pixels at 224 pixels to our 32-pixel images would give 0.7 pixels, a blur
that the sign model still classifies correctly most of the time; at the default of 3 pixels the
blurred test images are classified at chance level, which is what a substrate should achieve
("no evidence left"). ``blur_sigma`` changes it.

Cost: N (x) + N (substrate) + 2 N (S - 1) forward images per map for both games, all of them
batched (``batch_size`` images per forward pass); several maps per image (a dict of methods) share
the two end points. The images of a chunk are built on the fly, so memory stays at ``batch_size``
images however many steps and maps there are.

Modes (``policy="as_is"`` of :mod:`inferml_course._core.modes`): the model runs in the mode it is
in; a dropout or batch-norm module in training mode gets one warning per call (the result is random,
batch norm mixes the samples of a batch), and every module's flag and every batch-norm statistic are
restored afterwards, also on errors.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .._core.arguments import checked
from .._core.checks import check_choice, check_float_tensor, check_int_range, check_model_input, check_positive_int
from .._core.directions import describe, higher_is_better, register
from .._core.modes import guarded
from .._core.tables import format_table
from .._core.targets import as_target_tensor, check_model_output, resolve_targets
from .._core.batching import check_batch_size, chunk_size
from .._core.perturb import first_pass, score_jobs
from ._common import DEFAULT_BLUR_SIGMA, as_map_dict, substrate_images

__all__ = ["insertion_curve", "deletion_curve", "insertion_deletion", "auc", "pixel_ranks", "step_counts",
           "game_optimized_map", "GameResult", "GAMES"]

# the direction of each metric defined here (the package's direction registry, _core.directions)
register('insertion_auc', True, quantity='area under the pixel-insertion curve', family="evaluate")
register('deletion_auc', False, quantity='area under the pixel-deletion curve', family="evaluate")

#: The two pixel-wise games and the direction of their AUC (from the package's direction registry).
GAMES = {game: describe(higher_is_better(f"{game}_auc")) for game in ("insertion", "deletion")}


@checked
def pixel_ranks(maps: torch.Tensor) -> torch.Tensor:
    """Rank (N, H*W) of every pixel of maps (N, H, W), 0 = most important (largest value); ties in raster
    order. NaN maps are refused (a NaN has no rank)."""
    check_float_tensor(maps, "maps", "(N, H, W)", dim=3, batch=False)
    flat = maps.flatten(1)
    order = torch.argsort(flat, dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
    return ranks


@checked
def step_counts(pixels: int, steps: int, device=None) -> torch.Tensor:
    """How many pixels are moved after step k = 0..steps: round(k * pixels / steps) (steps + 1,), for
    1 <= steps <= pixels (more steps than pixels would repeat images)."""
    check_positive_int(pixels, "pixels")
    check_int_range(steps, 1, pixels, "steps")
    k = torch.arange(steps + 1, device=device, dtype=torch.float64)
    return torch.round(k * pixels / steps).long()


@checked
def auc(curves: torch.Tensor, fractions: torch.Tensor | None = None) -> torch.Tensor:
    """Area (N,) under curves (N, S + 1) sampled at ``fractions`` (default: evenly on [0, 1]), trapezoid rule.
    For an insertion curve **higher is better**, for a deletion curve **lower is better**."""
    check_float_tensor(curves, "curves", "(N, S + 1)", dim=2, batch=False)
    if curves.shape[1] < 2:
        raise ValueError(f"curves must have at least two points per curve (N, S + 1), got shape {tuple(curves.shape)}")
    if fractions is None:
        fractions = torch.linspace(0, 1, curves.shape[1], dtype=torch.float64, device=curves.device)
    check_float_tensor(fractions, "fractions", f"({curves.shape[1]},)", dim=1, batch=False)
    if fractions.shape != curves.shape[1:]:
        raise ValueError(f"fractions must have shape ({curves.shape[1]},), got {tuple(fractions.shape)}")
    y = curves.double()
    dx = fractions.double().diff()
    return ((y[:, 1:] + y[:, :-1]) * 0.5 * dx).sum(1)


@dataclass
class GameResult:
    """Curves of the pixel-wise games for one or more maps of the same images.

    ``insertion[name]`` and ``deletion[name]`` are (N, S + 1) score curves at ``fractions`` (S + 1,),
    ``targets`` (N,) the classes scored. ``table()`` gives the mean AUCs with their directions.
    """

    fractions: torch.Tensor
    insertion: dict
    deletion: dict
    targets: torch.Tensor
    output: str
    substrate: str

    def insertion_auc(self, name: str = "map") -> torch.Tensor:
        """Insertion AUC (N,) of one map; **higher is better**."""
        return auc(self.insertion[name], self.fractions)

    def deletion_auc(self, name: str = "map") -> torch.Tensor:
        """Deletion AUC (N,) of one map; **lower is better**."""
        return auc(self.deletion[name], self.fractions)

    def summary(self) -> dict:
        """{name: {"insertion_auc": mean, "deletion_auc": mean}} over the images."""
        out = {}
        for name in self.insertion or self.deletion:
            row = {}
            if name in self.insertion:
                row["insertion_auc"] = float(self.insertion_auc(name).mean())
            if name in self.deletion:
                row["deletion_auc"] = float(self.deletion_auc(name).mean())
            out[name] = row
        return out

    def table(self) -> str:
        """A text table of mean AUCs: insertion (higher is better) and deletion (lower is better)."""
        rows = self.summary()
        columns = ["insertion_auc", "deletion_auc"]
        headers = {c: f"{c.split('_')[0]} AUC ({describe(higher_is_better(c))})" for c in columns}
        return format_table(rows, columns, label="method", headers=headers, min_width=8)


@guarded()
@torch.no_grad()
@checked
def insertion_deletion(model: nn.Module, x: torch.Tensor, maps, target=None, steps: int = 64, substrate="blur",
                       output: str = "probability", games=("insertion", "deletion"),
                       blur_sigma: float = DEFAULT_BLUR_SIGMA, batch_size="auto", normalize=None) -> GameResult:
    """Insertion and deletion curves of one map (N, H, W) or of several (a dict name -> (N, H, W)).

    ``target``: the class to score (None: the predicted class on ``x``, from the forward pass the
    curves need anyway). ``substrate``: ``"blur"``, ``"mean"``, ``"black"``, a number or a tensor
    (see :func:`inferml_course.evaluate._common.substrate_images`). ``output``: ``"probability"`` or
    ``"logit"``. ``games``: which curves to compute. ``batch_size``: images per forward pass
    (``"auto"``: the measured fastest chunk, see :mod:`inferml_course._core.batching`).
    Insertion AUC: higher is better; deletion AUC: lower is better.
    """
    check_positive_int(steps, "steps")
    check_batch_size(batch_size)
    if isinstance(games, str):
        games = (games,)
    games = tuple(games)
    if not games:
        raise ValueError("games must name at least one of 'insertion', 'deletion'")
    for g in games:
        check_choice(g, tuple(GAMES), "games")
    x, t, full, _ = first_pass(model, x, target, output)
    maps, _ = as_map_dict(maps, x)
    names = list(maps)
    n, c, h, w = x.shape
    batch_size = chunk_size(batch_size, x, model=model, work=len(names) * len(games) * n * (steps - 1))
    hw = h * w
    sub = substrate_images(model, x, substrate, blur_sigma, normalize=normalize).to(x.dtype)
    empty = score_jobs(model, n, lambda a, b: sub[a:b], t, output, batch_size)  # the all-substrate image
    ranks = torch.stack([pixel_ranks(maps[name].to(x.device)) for name in names])  # (M, N, HW)
    counts = step_counts(hw, steps, x.device)  # (S + 1,)
    xf, base = x.reshape(n, c, hw), sub.reshape(n, c, hw)

    # one job per (map m, game g, image i, inner step k = 1..S-1); the end points are shared
    inner = torch.arange(1, steps, device=x.device)
    m_, g_, i_, k_ = torch.meshgrid(torch.arange(len(names), device=x.device),
                                    torch.arange(len(games), device=x.device),
                                    torch.arange(n, device=x.device), inner, indexing="ij")
    m_, g_, i_, k_ = m_.reshape(-1), g_.reshape(-1), i_.reshape(-1), k_.reshape(-1)
    is_deletion = torch.tensor([g == "deletion" for g in games], device=x.device)[g_]

    def build(a, b):
        moved = ranks[m_[a:b], i_[a:b]] < counts[k_[a:b], None]  # (B, HW): pixels moved so far
        keep = moved ^ is_deletion[a:b, None]  # pixels showing the image (insertion: moved ones)
        img = torch.where(keep[:, None], xf[i_[a:b]], base[i_[a:b]])
        return img.view(-1, c, h, w)

    scores = score_jobs(model, m_.numel(), build, t[i_], output, batch_size)
    scores = scores.view(len(names), len(games), n, steps - 1)
    fractions = counts.double() / hw
    curves = {g: {} for g in GAMES}
    for gi, g in enumerate(games):
        start, end = (empty, full) if g == "insertion" else (full, empty)
        for mi, name in enumerate(names):
            curves[g][name] = torch.cat([start[:, None], scores[mi, gi], end[:, None]], 1)
    label = substrate if isinstance(substrate, str) else "custom"
    return GameResult(fractions, curves["insertion"], curves["deletion"], t, output, label)


def _single(maps):
    if not isinstance(maps, torch.Tensor):
        raise TypeError(f"maps must be a tensor of shape (N, H, W), got {type(maps).__name__} "
                        "(use insertion_deletion for a dict of maps)")


@guarded()
@checked
def insertion_curve(model: nn.Module, x: torch.Tensor, maps: torch.Tensor, target=None, steps: int = 64,
                    substrate="blur", output: str = "probability", blur_sigma: float = DEFAULT_BLUR_SIGMA,
                    batch_size="auto") -> torch.Tensor:
    """Insertion curves (N, steps + 1) of one map batch (N, H, W): the score as the top-ranked pixels
    are put back onto the substrate. Its AUC (:func:`auc`) is **higher is better**."""
    _single(maps)
    result = insertion_deletion(model, x, maps, target, steps, substrate, output, ("insertion",), blur_sigma,
                                batch_size)
    return next(iter(result.insertion.values()))


@guarded()
@checked
def deletion_curve(model: nn.Module, x: torch.Tensor, maps: torch.Tensor, target=None, steps: int = 64,
                   substrate="blur", output: str = "probability", blur_sigma: float = DEFAULT_BLUR_SIGMA,
                   batch_size="auto") -> torch.Tensor:
    """Deletion curves (N, steps + 1) of one map batch (N, H, W): the score as the top-ranked pixels
    are replaced by the substrate. Its AUC (:func:`auc`) is **lower is better**."""
    _single(maps)
    result = insertion_deletion(model, x, maps, target, steps, substrate, output, ("deletion",), blur_sigma,
                                batch_size)
    return next(iter(result.deletion.values()))


@guarded()
@checked
def game_optimized_map(model: nn.Module, x: torch.Tensor, target=None, game: str = "deletion", steps: int = 64,
                       substrate="blur", blur_sigma: float = DEFAULT_BLUR_SIGMA, batch_size="auto",
                       normalize=None) -> torch.Tensor:
    """A map (N, H, W) *built to win* one pixel-wise game, not to explain: an adversary of the metric.

    Greedy and first-order: at step k = 0..steps-1 the current game image is
    ``substrate + keep (x - substrate)``; the gradient of log p(target) with respect to ``keep``
    says how much moving each pixel would change the score, and the round(H W / steps) pixels
    with the largest effect (the biggest drop for deletion, the biggest rise for insertion) are
    moved. A pixel moved at step k gets the value steps - k, so ranking the map replays the
    greedy order. Played with the same ``steps`` and ``substrate``, the game moves exactly these
    pixel sets. The result wins its game against honest explanations while scattering over the
    image (lesson 10), in the spirit of the adversarial explanations of Chowdhury et al. (ICIP 2024).

    Cost: 1 forward pass (the targets, on x) plus ``steps`` forward and backward passes over the N
    images (``batch_size`` images each);
    the model's parameters get no ``.grad`` (torch.autograd.grad on the mask only).
    """
    check_choice(game, tuple(GAMES), "game")
    check_positive_int(steps, "steps")
    x = check_model_input(model, x, "x")
    check_batch_size(batch_size)
    n, c, h, w = x.shape
    hw = h * w
    if steps > hw:
        raise ValueError(f"steps must be at most the number of pixels ({hw}), got {steps}")
    t = as_target_tensor(target, n, x.device)
    batch_size = chunk_size(batch_size, x, model=model, work=n, backward=True)
    x = x.detach()
    with torch.no_grad():  # the classes to play for, read on x (1 forward pass over the N images)
        t = torch.cat([resolve_targets(None if t is None else t[a:a + batch_size],
                                       check_model_output(model(x[a:a + batch_size]), x[a:a + batch_size].shape[0]))
                       for a in range(0, n, batch_size)])
    sub = substrate_images(model, x, substrate, blur_sigma, normalize=normalize).to(x.dtype).detach()
    counts = step_counts(hw, steps, x.device)
    moved = torch.zeros((n, hw), dtype=torch.bool, device=x.device)
    value = torch.zeros((n, hw), dtype=x.dtype, device=x.device)
    for k in range(steps):
        gains = []
        for a in range(0, n, batch_size):
            b = min(n, a + batch_size)
            keep = moved[a:b] if game == "insertion" else ~moved[a:b]
            keep = keep.to(x.dtype).view(b - a, 1, h, w).requires_grad_(True)
            with torch.enable_grad():
                logits = model(sub[a:b] + keep * (x[a:b] - sub[a:b]))
                score = torch.log_softmax(logits, 1).gather(1, t[a:b, None]).sum()
                (grad,) = torch.autograd.grad(score, keep)
            gains.append(grad.detach().view(b - a, hw))
        # deletion moves a pixel from keep = 1 to 0 (change ~ -grad), insertion from 0 to 1 (change ~ +grad):
        # the largest gradient is the largest drop for deletion and the largest rise for insertion
        gain = torch.cat(gains).masked_fill(moved, -float("inf"))
        need = int(counts[k + 1] - counts[k])
        if need:
            idx = gain.topk(need, dim=1).indices
            moved.scatter_(1, idx, True)
            value.scatter_(1, idx, float(steps - k))
    return value.view(n, h, w)
