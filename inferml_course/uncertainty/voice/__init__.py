"""VOICE: the variance of contrastive explanations as an uncertainty map (lesson 07). Lazy::

    from inferml_course.uncertainty import voice
    result = voice.voice(model, x)           # VoiceResult: maps (N, H, W), explanation, contrasts
    voice.explanation_overlap(result.explanation, result.uncertainty)

===========  =====================================================================================
module       contents
===========  =====================================================================================
``maps``     VOICE maps, ``explanation_overlap`` (the paper's IoU of explanation and uncertainty;
             higher = worse, unlike ``evaluate.iou``) and the SNR
``plots``    the VOICE panel, metric box plots
``widgets``  ``VoiceExplorer``
===========  =====================================================================================
"""
from __future__ import annotations

from ..._core.lazy import lazy_package

_SUBMODULES = ("maps", "plots", "widgets",)
_SHORTCUTS = {
    "VoiceResult": "maps", "voice": "maps", "voice_map": "maps", "contrast_classes": "maps",
    "batched_grad": "maps", "explanation_overlap": "maps", "snr": "maps", "voice_stats": "maps", "EXPLAINERS": "maps",
    "NORMALIZATIONS": "maps", "voice_panel": "plots", "metric_boxplots": "plots", "VoiceExplorer": "widgets",
}

__all__ = [*_SUBMODULES, *_SHORTCUTS]

__getattr__, __dir__ = lazy_package(__name__, globals(), _SUBMODULES, _SHORTCUTS)
