"""The one dataset type of the course: images, labels, class names and optional masks."""
from __future__ import annotations

import torch
from torch.utils.data import Dataset


class ImageDataset(Dataset):
    """In-memory image dataset, ``torch.utils.data`` compatible.

    Attributes:
        images: (N, C, H, W) float32 in [0, 1].
        labels: (N,) int64; ``-1`` for unlabelled (out-of-distribution) images.
        classes: the class names, ``classes[label]``.
        masks: optional dict of (N, H, W) bool tensors, e.g. ``"sign"`` and ``"part"``.
        attributes: optional dict of (N,) tensors describing each sample (e.g. ``"watermark_class"``).
        name: a short description (used in plot titles).

    ``dataset[i]`` returns ``(image, label)`` like torchvision datasets; masks are read
    through ``dataset.masks[...]`` or ``dataset.sample(i)``.

    The tensors given to the constructor are kept, not copied (like ``torch.utils.data.TensorDataset``);
    the course's loaders (``datasets.load`` and friends) hand out :meth:`copy` of their cached splits, so
    changing a loaded dataset never changes what a later load returns.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes, masks=None, name: str = "",
                 attributes=None):
        if not isinstance(images, torch.Tensor) or not images.is_floating_point():
            raise TypeError("images must be a floating-point torch.Tensor (N, C, H, W) in [0, 1], got "
                            + (f"dtype {images.dtype}" if isinstance(images, torch.Tensor) else type(images).__name__))
        if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.is_complex() \
                or labels.dtype == torch.bool:
            raise TypeError("labels must be an integer torch.Tensor (N,) of class indices, got "
                            + (f"dtype {labels.dtype}" if isinstance(labels, torch.Tensor) else type(labels).__name__))
        if isinstance(classes, str):
            raise TypeError(f"classes must be a sequence of class names, got the string {classes!r}")
        if images.dim() != 4:
            raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
        self.images = images
        self.labels = labels.long()
        self.classes = list(classes)
        self.masks = dict(masks or {})
        for key, mask in self.masks.items():
            if mask.shape != (images.shape[0], *images.shape[2:]):
                raise ValueError(f"mask {key!r} must have shape (N, H, W) = "
                                 f"{(images.shape[0], *images.shape[2:])}, got {tuple(mask.shape)}")
        self.attributes = dict(attributes or {})
        for key, value in self.attributes.items():
            if value.shape[:1] != (images.shape[0],):
                raise ValueError(f"attribute {key!r} must have length {images.shape[0]}, got {tuple(value.shape)}")
        self.name = name

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index):
        return self.images[index], self.labels[index]

    def sample(self, index) -> dict:
        """Everything about sample(s) ``index``: image, label, class name(s) and masks."""
        out = {"image": self.images[index], "label": self.labels[index]}
        labels = self.labels[index]
        out["class_name"] = ([self.class_name(int(l)) for l in labels] if labels.dim() else self.class_name(int(labels)))
        out.update({f"{k}_mask": v[index] for k, v in self.masks.items()})
        out.update({k: v[index] for k, v in self.attributes.items()})
        return out

    def class_name(self, label: int) -> str:
        return self.classes[label] if 0 <= label < len(self.classes) else "unknown"

    def subset(self, index) -> "ImageDataset":
        """A new dataset with the samples ``index`` (a slice, index tensor or boolean mask)."""
        return self._replace(self.images[index], self.labels[index], index)

    def with_images(self, images: torch.Tensor, name: str | None = None) -> "ImageDataset":
        """The same samples (labels, masks, attributes) with new images of the same shape."""
        if images.shape != self.images.shape:
            raise ValueError(f"images must have shape {tuple(self.images.shape)}, got {tuple(images.shape)}")
        return ImageDataset(images, self.labels, self.classes, self.masks, self.name if name is None else name,
                            self.attributes)

    def _replace(self, images, labels, index):
        return ImageDataset(images, labels, self.classes, {k: v[index] for k, v in self.masks.items()},
                            self.name, {k: v[index] for k, v in self.attributes.items()})

    def copy(self) -> "ImageDataset":
        """A deep copy: new images, labels, masks and attributes tensors and a new class list."""
        return ImageDataset(self.images.clone(), self.labels.clone(), self.classes,
                            {k: v.clone() for k, v in self.masks.items()}, self.name,
                            {k: v.clone() for k, v in self.attributes.items()})

    def to(self, device) -> "ImageDataset":
        return ImageDataset(self.images.to(device), self.labels.to(device), self.classes,
                            {k: v.to(device) for k, v in self.masks.items()}, self.name,
                            {k: v.to(device) for k, v in self.attributes.items()})

    def __repr__(self) -> str:
        masks = f", masks={sorted(self.masks)}" if self.masks else ""
        return (f"ImageDataset({self.name!r}, n={len(self)}, shape={tuple(self.images.shape[1:])}, "
                f"classes={len(self.classes)}{masks})")
