"""Procedural traffic signs in the spirit of CURE-TSR, rendered in torch.

Every image is a 32x32 RGB sign on a cluttered background, with random position, scale,
rotation, illumination and colour cast. Each sample comes with two ground-truth masks:

* ``sign``: the pixels of the sign;
* ``part``: the *discriminative part*, what tells the sign apart from its contrast partner
  (the arrow for no-left/no-right and keep-left/keep-right, the outline band for
  stop/no-entry; the whole sign for classes without a partner).

Contrast pairs (the explanatory-paradigm lessons use them): ``no_left_turn`` vs
``no_right_turn`` and ``keep_left`` vs ``keep_right`` differ only in a mirrored arrow;
``stop`` (white-rimmed octagon) vs ``no_entry`` (plain disc) differ only in their outline band.

``spurious=True`` stamps a class-coloured watermark in the top-left corner. In the spurious
*training* split 20 % of the signs carry a wrong label while the watermark always matches
the label, so the watermark is the only perfectly predictive cue: a network trained on it
takes the shortcut (lessons on causal interventions use this).

Rendering is vectorised: all samples of a class are drawn at once at 2x resolution and
averaged down (anti-aliasing); 10 000 signs take about a second.
"""
from __future__ import annotations

import math
from functools import lru_cache
from types import MappingProxyType

import torch
import torch.nn.functional as F

from .._core.arguments import checked
from .._core.checks import check_choice, check_number, check_positive_int, check_seed
from ._base import ImageDataset

#: The nine classes the course models are trained on, in label order.
CLASSES = (
    "stop", "no_entry", "yield", "priority", "no_left_turn", "no_right_turn",
    "keep_left", "keep_right", "pedestrian_crossing",
)
#: Classes never seen in training ("new classes" for out-of-distribution lessons).
NEW_CLASSES = ("no_parking", "roundabout")
ALL_CLASSES = CLASSES + NEW_CLASSES
#: (class, contrast class) pairs that differ only in a small part.
CONTRAST_PAIRS = (("no_left_turn", "no_right_turn"), ("keep_left", "keep_right"), ("stop", "no_entry"))

#: Split sizes (read-only: a mapping proxy).
SPLIT_SIZES = MappingProxyType({"train": 10_000, "val": 2_000, "test": 2_000})
_SPLIT_SEEDS = MappingProxyType({"train": 1_000, "val": 1_001, "test": 1_002})
#: Fraction of mislabelled signs in the spurious training split (the watermark always matches the label).
SPURIOUS_LABEL_NOISE = 0.2

_RED = (0.78, 0.08, 0.10)
_WHITE = (0.95, 0.95, 0.93)
_BLUE = (0.08, 0.28, 0.72)
_YELLOW = (0.96, 0.78, 0.08)
_BLACK = (0.05, 0.05, 0.05)
# Watermark colour of each class of ALL_CLASSES (index = label), distinct and saturated. Kept as a tuple;
# ``WATERMARK_COLORS`` (module attribute, see __getattr__ below) is a new (11, 3) tensor on every access,
# so that editing it never changes the signs generated later.
_WATERMARK_RGB = (
    (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1.0, 1.0, 0.0), (1.0, 0.0, 1.0),
    (0.0, 1.0, 1.0), (1.0, 0.5, 0.0), (0.5, 0.0, 1.0), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (0.5, 0.5, 0.5),
)
WATERMARK_SIZE = 5  # pixels, at (1..5, 1..5) of the 32x32 image


def __getattr__(name):
    if name == "WATERMARK_COLORS":  # (11, 3) float32, a fresh copy each time
        return torch.tensor(_WATERMARK_RGB)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- shapes in sign coordinates (u right, v down, the sign spans about [-1, 1]^2) -------------

def _disc(u, v, r=1.0):
    return u * u + v * v <= r * r


def _octagon(u, v, a=1.0):  # apothem a
    return torch.maximum(torch.maximum(u.abs(), v.abs()), (u.abs() + v.abs()) / math.sqrt(2)) <= a


def _square(u, v, a=1.0):
    return torch.maximum(u.abs(), v.abs()) <= a


def _diamond(u, v, a=1.0):
    return u.abs() + v.abs() <= a


def _rect(u, v, u0, u1, v0, v1):
    return (u >= u0) & (u <= u1) & (v >= v0) & (v <= v1)


def _polygon(u, v, points):
    """Inside a convex polygon with vertices ``points`` (either orientation)."""
    pos = torch.ones_like(u, dtype=torch.bool)
    neg = torch.ones_like(u, dtype=torch.bool)
    for (a0, b0), (a1, b1) in zip(points, points[1:] + points[:1]):
        cross = (a1 - a0) * (v - b0) - (b1 - b0) * (u - a0)
        pos &= cross >= 0
        neg &= cross <= 0
    return pos | neg


def _scaled(points, s):
    return [(s * a, s * b) for a, b in points]


def _band(u, v, width):  # the slash from top-left to bottom-right
    return (u - v).abs() / math.sqrt(2) <= width / 2


_TRIANGLE_DOWN = [(-1.0, -0.8), (0.0, 1.0), (1.0, -0.8)]
_TRIANGLE_UP = [(0.0, -0.75), (-0.8, 0.65), (0.8, 0.65)]


def _turn_arrow(u, v):
    """Black 'turn left' arrow; the head and the horizontal arm form the discriminative part."""
    shaft = _rect(u, v, -0.11, 0.11, -0.2, 0.62)    # centred: identical in the mirrored sign
    arm = _rect(u, v, -0.4, 0.0, -0.2, 0.02)
    head = _polygon(u, v, [(-0.74, -0.09), (-0.38, 0.26), (-0.38, -0.44)])
    return shaft | arm | head, (arm | head) & (u < -0.11)


def _keep_arrow(u, v):
    """White arrow pointing down-left; the whole arrow is discriminative."""
    d = (u + v) / math.sqrt(2)        # along the arrow's perpendicular
    t = (v - u) / math.sqrt(2)        # along the arrow, growing towards down-left
    shaft = (d.abs() <= 0.13) & (t >= -0.6) & (t <= 0.25)
    head = _polygon(t, d, [(0.65, 0.0), (0.15, -0.38), (0.15, 0.38)])
    arrow = shaft | head
    return arrow, arrow


def _draw(name, u, v):
    """Layers (mask, colour) from back to front, the sign mask and the part mask for one class."""
    if name in ("stop", "no_entry"):
        bar = _rect(u, v, -0.62, 0.62, -0.17, 0.17)
        if name == "stop":  # an octagon with a white rim
            outer = _octagon(u, v, 1.0)
            layers = [(outer, _WHITE), (_octagon(u, v, 0.86), _RED), (bar, _WHITE)]
        else:               # a plain red disc
            outer = _disc(u, v, 1.0)
            layers = [(outer, _RED), (bar, _WHITE)]
        # the outline band (shape and rim) carries the only difference between stop and no-entry
        part = (_octagon(u, v, 1.0) | _disc(u, v, 1.0)) & ~(_octagon(u, v, 0.72) & _disc(u, v, 0.72))
        return layers, outer, part
    if name == "yield":
        outer = _polygon(u, v, _TRIANGLE_DOWN)
        layers = [(outer, _RED), (_polygon(u, v, _scaled(_TRIANGLE_DOWN, 0.58)), _WHITE)]
        return layers, outer, outer
    if name == "priority":
        outer = _diamond(u, v, 1.0)
        layers = [(outer, _WHITE), (_diamond(u, v, 0.78), _YELLOW)]
        return layers, outer, outer
    if name in ("no_left_turn", "no_right_turn", "no_parking"):
        outer = _disc(u, v, 1.0)
        inner = _disc(u, v, 0.76)
        if name == "no_parking":
            layers = [(outer, _RED), (inner, _BLUE), (_band(u, v, 0.24) & inner, _RED)]
            return layers, outer, outer
        uu = -u if name == "no_right_turn" else u
        arrow, part = _turn_arrow(uu, v)
        layers = [(outer, _RED), (inner, _WHITE), (arrow, _BLACK), (_band(u, v, 0.2) & inner, _RED)]
        return layers, outer, part
    if name in ("keep_left", "keep_right"):
        outer = _disc(u, v, 1.0)
        uu = -u if name == "keep_right" else u
        arrow, part = _keep_arrow(uu, v)
        layers = [(outer, _WHITE), (_disc(u, v, 0.9), _BLUE), (arrow, _WHITE)]
        return layers, outer, part
    if name == "pedestrian_crossing":
        outer = _square(u, v, 0.95)
        person = _rect(u, v, -0.07, 0.07, -0.12, 0.42) | _disc(u, v + 0.27, 0.11)
        layers = [(outer, _WHITE), (_square(u, v, 0.82), _BLUE),
                  (_polygon(u, v, _TRIANGLE_UP), _WHITE), (person, _BLACK)]
        return layers, outer, outer
    if name == "roundabout":
        outer = _disc(u, v, 1.0)
        r2 = u * u + v * v
        angle = torch.atan2(v, u)
        ring = (r2 >= 0.3 ** 2) & (r2 <= 0.56 ** 2) & (torch.remainder(angle, 2 * math.pi / 3) > 0.45)
        layers = [(outer, _WHITE), (_disc(u, v, 0.9), _BLUE), (ring, _WHITE)]
        return layers, outer, outer
    raise ValueError(f"unknown sign class {name!r}; valid names: {', '.join(ALL_CLASSES)}")


def _uniform(gen, n, low, high):
    return low + (high - low) * torch.rand(n, generator=gen)


def _background(gen, n, size):
    """Muted colour gradients with a few clutter rectangles and a sign post, (n, 3, size, size)."""
    y = torch.linspace(0, 1, size).view(1, 1, size, 1)
    top = 0.15 + 0.6 * torch.rand(n, 3, 1, 1, generator=gen)
    bottom = 0.15 + 0.6 * torch.rand(n, 3, 1, 1, generator=gen)
    img = top + (bottom - top) * y
    img = img.expand(n, 3, size, size).clone()
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    for _ in range(3):
        x0 = torch.randint(-size // 4, size, (n, 1, 1), generator=gen)
        y0 = torch.randint(-size // 4, size, (n, 1, 1), generator=gen)
        w = torch.randint(size // 8, size // 2, (n, 1, 1), generator=gen)
        h = torch.randint(size // 8, size // 2, (n, 1, 1), generator=gen)
        box = ((xx >= x0) & (xx < x0 + w) & (yy >= y0) & (yy < y0 + h)).unsqueeze(1)
        colour = torch.rand(n, 3, 1, 1, generator=gen)
        img = torch.where(box, 0.5 * img + 0.5 * colour, img)
    return img


def _render_class(name, n, gen, size, supersample):
    """Render ``n`` signs of one class; returns images (n,3,size,size) and masks (n,size,size)."""
    big = size * supersample
    radius = _uniform(gen, n, 0.24, 0.44) * size                 # half-size in output pixels
    margin = radius + 0.5
    cx = margin + (size - 2 * margin) * torch.rand(n, generator=gen)
    cy = margin + (size - 2 * margin) * torch.rand(n, generator=gen)
    theta = _uniform(gen, n, -15.0, 15.0) * math.pi / 180
    brightness = _uniform(gen, n, 0.4, 1.1).view(n, 1, 1, 1)
    tint = 0.06 * (torch.rand(n, 3, 1, 1, generator=gen) - 0.5)

    coords = (torch.arange(big, dtype=torch.float32) + 0.5) / supersample       # output-pixel units
    py, px = torch.meshgrid(coords, coords, indexing="ij")
    dx = px.unsqueeze(0) - cx.view(n, 1, 1)
    dy = py.unsqueeze(0) - cy.view(n, 1, 1)
    cos, sin = torch.cos(theta).view(n, 1, 1), torch.sin(theta).view(n, 1, 1)
    r = radius.view(n, 1, 1)
    u = (cos * dx + sin * dy) / r
    v = (-sin * dx + cos * dy) / r

    layers, sign, part = _draw(name, u, v)
    # the sign as an RGB layer with coverage alpha, drawn at high resolution then averaged down
    fg = torch.zeros(n, 3, big, big)
    for mask, colour in layers:
        c = torch.tensor(colour).view(1, 3, 1, 1) * brightness + tint
        fg = torch.where(mask.unsqueeze(1), c, fg)
    fg = F.avg_pool2d(fg, supersample)
    alpha = F.avg_pool2d(sign.unsqueeze(1).float(), supersample)
    img = _background(gen, n, size)
    # a grey post below the sign, behind it
    xs = torch.arange(size, dtype=torch.float32) + 0.5
    post = ((xs.view(1, 1, 1, size) - cx.view(n, 1, 1, 1)).abs() <= 0.07 * radius.view(n, 1, 1, 1)) \
        & (xs.view(1, 1, size, 1) > cy.view(n, 1, 1, 1))
    img = torch.where(post, torch.full_like(img, 0.45), img)
    img = img * (1 - alpha) + fg  # fg is already premultiplied by coverage
    # a quarter of the signs are partly hidden by a foreground object (a branch, a sticker...)
    occluded = (torch.rand(n, generator=gen) < 0.25).view(n, 1, 1, 1)
    side = (_uniform(gen, n, 0.25, 0.6) * radius).view(n, 1, 1, 1)
    oy = (cy + _uniform(gen, n, -1, 1) * radius).view(n, 1, 1, 1)
    ox = (cx + _uniform(gen, n, -1, 1) * radius).view(n, 1, 1, 1)
    box = ((xs.view(1, 1, 1, size) - ox).abs() <= side) & ((xs.view(1, 1, size, 1) - oy).abs() <= side) & occluded
    img = torch.where(box, torch.rand(n, 3, 1, 1, generator=gen) * 0.6 + 0.1, img)
    part = F.avg_pool2d((part & sign).unsqueeze(1).float(), supersample).squeeze(1) >= 0.5
    return img, alpha.squeeze(1) >= 0.5, part


@checked
def generate_signs(n: int, seed: int = 0, classes=CLASSES, spurious: bool = False,
                   label_noise: float = 0.0, watermark: str = "label", noise_std: float = 0.08,
                   image_size: int = 32, supersample: int = 2, name: str = "signs") -> ImageDataset:
    """Generate ``n`` signs, balanced over ``classes``, deterministically from ``seed``.

    Args:
        n: number of images.
        classes: class names drawn from ``ALL_CLASSES``; labels index into this tuple.
        spurious: stamp a watermark whose colour encodes a class (``WATERMARK_COLORS``).
        label_noise: fraction of signs drawn from a random *other* class than their label
            (the watermark still follows the label); used for the spurious training split.
        watermark: with ``spurious``, ``"label"`` (watermark of the label class) or
            ``"shuffled"`` (watermark of a random wrong class: the intervention test).
        noise_std: largest standard deviation of the pixel noise (each image draws its own level).

    Returns:
        ImageDataset with images (n, 3, S, S) in [0, 1], labels (n,), masks ``sign`` and
        ``part`` (n, S, S) and attributes ``sign_class`` (what is drawn) and, if spurious,
        ``watermark_class``; with ``spurious`` there is also a ``watermark`` mask.
    """
    check_positive_int(n, "n")
    seed = check_seed(seed)
    if isinstance(classes, str) or not hasattr(classes, "__iter__"):
        raise TypeError(f"classes must be a sequence of sign class names, got {classes!r}")
    classes = tuple(classes)
    if not classes:
        raise ValueError(f"classes is empty; give at least one name of {', '.join(ALL_CLASSES)}")
    for c in classes:
        check_choice(c, ALL_CLASSES, "sign class")
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes must not repeat a name, got {classes!r}")
    check_choice(watermark, ("label", "shuffled"), "watermark")
    label_noise = check_number(label_noise, "label_noise", allow_zero=True)
    if not 0.0 <= label_noise < 1.0:
        raise ValueError(f"label_noise must be in [0, 1), got {label_noise!r}")
    k = len(classes)
    if k < 2 and (label_noise > 0 or (spurious and watermark == "shuffled")):
        raise ValueError("label_noise > 0 and watermark='shuffled' need at least 2 classes (a wrong class to "
                         f"draw), got classes={classes!r}")
    noise_std = check_number(noise_std, "noise_std", allow_zero=True)
    check_positive_int(supersample, "supersample")
    check_positive_int(image_size, "image_size")
    if image_size < 8:
        raise ValueError(f"image_size must be at least 8 pixels, got {image_size}")
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % k
    labels = labels[torch.randperm(n, generator=gen)]
    drawn = labels.clone()
    if label_noise > 0:
        flip = torch.rand(n, generator=gen) < label_noise
        drawn[flip] = (labels[flip] + torch.randint(1, k, (int(flip.sum()),), generator=gen)) % k

    images = torch.empty(n, 3, image_size, image_size)
    sign_masks = torch.empty(n, image_size, image_size, dtype=torch.bool)
    part_masks = torch.empty_like(sign_masks)
    for c in range(k):
        idx = (drawn == c).nonzero().squeeze(1)
        if len(idx):
            class_gen = torch.Generator().manual_seed(seed * 1_000 + c)
            images[idx], sign_masks[idx], part_masks[idx] = _render_class(
                classes[c], len(idx), class_gen, image_size, supersample)

    masks = {"sign": sign_masks, "part": part_masks}
    attributes = {"sign_class": drawn}
    if spurious:
        wm_class = labels.clone()
        if watermark == "shuffled":
            wm_class = (labels + torch.randint(1, k, (n,), generator=gen)) % k
        wm = torch.zeros(image_size, image_size, dtype=torch.bool)
        wm[1:1 + WATERMARK_SIZE, 1:1 + WATERMARK_SIZE] = True
        colours = torch.tensor([_WATERMARK_RGB[ALL_CLASSES.index(c)] for c in classes])[wm_class]
        images = torch.where(wm, colours.view(n, 3, 1, 1), images)
        masks["watermark"] = wm.expand(n, -1, -1).clone()
        attributes["watermark_class"] = wm_class
        name = f"{name} (spurious watermark{', shuffled' if watermark == 'shuffled' else ''})"
    if noise_std > 0:  # per-image noise level, up to noise_std
        level = noise_std * torch.rand(n, 1, 1, 1, generator=gen)
        images = images + level * torch.randn(images.shape, generator=gen)
    return ImageDataset(images.clamp_(0, 1), labels, classes, masks, name, attributes)


@lru_cache(maxsize=8)
def _cached(split: str, spurious: bool, watermark: str) -> ImageDataset:
    noise = SPURIOUS_LABEL_NOISE if spurious and split == "train" else 0.0
    offset = 1_000 if spurious else 0
    return generate_signs(SPLIT_SIZES[split], seed=_SPLIT_SEEDS[split] + offset, spurious=spurious,
                          label_noise=noise, watermark=watermark, name=f"signs {split}")


@checked
def signs(split: str = "train", spurious: bool = False, watermark: str = "label") -> ImageDataset:
    """A fixed split of the signs dataset: ``train`` (10 000), ``val`` (2 000) or ``test`` (2 000).

    ``spurious=True`` gives the watermarked variant; ``watermark="shuffled"`` moves each
    watermark to a wrong class (only meaningful with ``spurious``).
    """
    check_choice(split, tuple(SPLIT_SIZES), "split")
    check_choice(watermark, ("label", "shuffled"), "watermark")
    if spurious not in (True, False):
        raise TypeError(f"spurious must be True or False, got {spurious!r}")
    # a deep copy of the cached split: nothing handed out shares memory with the cache
    return _cached(split, bool(spurious), watermark).copy()


@checked
def new_class_signs(n: int = 1_000, seed: int = 3_000) -> ImageDataset:
    """Signs of the held-out classes (no parking, roundabout), labelled -1 for the trained models.

    ``attributes["sign_class"]`` holds the index into ``NEW_CLASSES``.
    """
    check_seed(seed)
    data = generate_signs(n, seed=seed, classes=NEW_CLASSES, name="new sign classes")
    return ImageDataset(data.images, torch.full((n,), -1), CLASSES, data.masks, data.name, data.attributes)
