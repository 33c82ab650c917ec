"""Live-teaching widget of lesson 04: a corrupted sign through the feed-forward and the introspective
classifier (ipywidgets 7 and 8)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .. import plotting
from ..datasets import ImageDataset
from ..datasets.corruptions import CORRUPTIONS
from ..widgets import CorruptedImageExplorer
from .features import question_gradient_norms
from .plots import _short, show_question_gradients
from .reflection import IntrospectiveClassifier

__all__ = ["IntrospectionExplorer"]


class IntrospectionExplorer(CorruptedImageExplorer):
    """Pick an image, a corruption and a severity; see the introspective gradients and both predictions.

    Usage: ``explorer = IntrospectionExplorer(intro, test_set); display(explorer.widget)``.
    """

    def __init__(self, classifier: IntrospectiveClassifier, dataset: ImageDataset, corruptions=CORRUPTIONS,
                 seed: int = 0):
        self.classifier = classifier
        super().__init__(dataset, corruptions, seed)

    def compute(self, corruption: str, severity: int, index: int) -> dict:
        """Image, question-gradient norms (K, K) and both probability vectors for one setting."""
        x = self.image(corruption, severity, index)
        device = next(self.classifier.parameters()).device
        x = x.to(device)
        ff, intro = self.classifier.both_proba(x)
        norms = question_gradient_norms(self.classifier.sensing, x, loss=self.classifier.loss,
                                        classifier=self.classifier.classifier)[0]
        return {"image": x[0].cpu(), "norms": norms.cpu(), "feed_forward": ff[0].cpu(), "introspective": intro[0].cpu()}

    def draw(self, corruption: str, severity: int, index: int):
        """The figure for one setting: image, gradient heatmap, and the two probability vectors."""
        r = self.compute(corruption, severity, index)
        label = int(self.dataset.labels[index])
        classes = self.dataset.classes
        fig, axes = plt.subplots(1, 3, figsize=(12.8, 4.2), gridspec_kw={"width_ratios": [0.8, 1.2, 1.4]})
        plotting.show_image(axes[0], r["image"], f"{self.setting(corruption, severity)}\ntrue: {_short(classes[label])}")
        show_question_gradients(r["norms"], classes, axes[1], predicted=int(r["feed_forward"].argmax()))
        k = len(classes)
        pos = np.arange(k)
        axes[2].barh(pos + 0.2, r["feed_forward"].numpy(), height=0.4, label="feed-forward")
        axes[2].barh(pos - 0.2, r["introspective"].numpy(), height=0.4, label="introspective")
        axes[2].set_yticks(pos, [_short(c) for c in classes], fontsize=9)
        axes[2].invert_yaxis()
        axes[2].set_xlim(0, 1)
        axes[2].set_xlabel("probability")
        axes[2].legend(loc="lower right")
        f_pred, i_pred = int(r["feed_forward"].argmax()), int(r["introspective"].argmax())
        axes[2].set_title(f"f: {_short(classes[f_pred])} ({r['feed_forward'][f_pred]:.0%}), "
                          f"H: {_short(classes[i_pred])} ({r['introspective'][i_pred]:.0%})", fontsize=11)
        fig.tight_layout()
        return fig
