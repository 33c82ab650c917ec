"""Evaluating explanations (lesson 10): human, application and network evaluation.

The lecture's taxonomy, one module each:

* **human evaluation** (:mod:`.human`, the pairwise study; :mod:`.pointing`, the pointing game):
  people compare two explanations directly ("which robot is
  more reasonable?"); :class:`PairwiseStudy` (an ipywidgets form that saves answers to CSV),
  :class:`SimulatedRater` (clearly marked stand-in, never human data), :func:`aggregate` with
  bootstrap intervals; and the lecture's pointing game (sharpen the cells of a blurred image you need to
  answer a question): :class:`PointingStudy` (the widget, saves each attention map with its answer),
  :class:`SimulatedParticipant` (deterministic, labelled stand-in), :func:`pointing_evaluation` (mean
  IoU, correlation and pixel accuracy of every explainer against the collected maps);
* **application evaluation** (:mod:`.localization`): maps against regions people marked, here the
  signs' ground-truth masks: :func:`pointing_game`, :func:`energy_pointing_game`, :func:`iou`,
  :func:`correlation`, :func:`pixel_accuracy`;
* **network evaluation**, no humans involved:
  :mod:`.masking` (explanation-heatmap masking: E(Y | S_x), Average Drop, Increase in Confidence),
  :mod:`.insertion_deletion` (pixel-wise games and their AUC),
  :mod:`.structure` (structure-wise games on a Huffman bit-ratio axis).

:mod:`.ranking` puts the methods side by side under every metric. Every metric states its
direction (higher or lower is better) in its docstring, in the package's one direction registry
(:func:`higher_is_better`, which every table and ranking reads) and in every table it prints; the model
is never modified (mode, hooks, gradients), all model calls run under ``torch.no_grad`` in
batches of ``batch_size`` images.
"""
from .._core.ranks import bootstrap_ci
from .human import SCALE, PairwiseStudy, SimulatedRater, StudyResult, aggregate, load_responses, save_responses
from .pointing import PointingResult, PointingStudy, SimulatedParticipant, cell_masks, load_pointing, \
    pointing_evaluation, save_pointing
from .insertion_deletion import GAMES, GameResult, auc, deletion_curve, game_optimized_map, insertion_curve, \
    insertion_deletion, pixel_ranks, step_counts
from .localization import LOCALIZATION_METRICS, binarize, correlation, energy_pointing_game, iou, \
    localization_scores, mask_fraction, pixel_accuracy, pointing_game
from .masking import MASKING_METRICS, MaskingResult, average_drop, expected_score, heatmap_masking, \
    increase_in_confidence, masked_accuracy, masked_images, to_mask, win_percentage
from .ranking import DIRECTIONS, agreement, format_ranking, higher_is_better, kendall_tau, merge_summaries, \
    rank_methods
from .structure import StructureResult, histograms, huffman_bits, huffman_code, huffman_code_lengths, \
    structure_curves, symbols
from .sanity import randomized_copy, rank_correlation
from .._core.perturb import OUTPUTS
from ._common import SUBSTRATES, gaussian_blur, substrate_images

__all__ = [
    "PairwiseStudy", "SimulatedRater", "StudyResult", "aggregate", "bootstrap_ci", "load_responses", "save_responses",
    "SCALE", "PointingStudy", "SimulatedParticipant", "PointingResult", "pointing_evaluation", "cell_masks",
    "load_pointing", "save_pointing",
    "pointing_game", "energy_pointing_game", "iou", "correlation", "pixel_accuracy", "binarize",
    "localization_scores", "mask_fraction", "LOCALIZATION_METRICS", "randomized_copy", "rank_correlation",
    "heatmap_masking", "MaskingResult", "masked_images", "to_mask", "average_drop", "increase_in_confidence",
    "expected_score", "masked_accuracy", "win_percentage", "MASKING_METRICS",
    "insertion_deletion", "insertion_curve", "deletion_curve", "auc", "GameResult", "pixel_ranks", "step_counts",
    "game_optimized_map", "GAMES",
    "structure_curves", "StructureResult", "huffman_code_lengths", "huffman_bits", "huffman_code", "histograms",
    "symbols",
    "rank_methods", "kendall_tau", "agreement", "format_ranking", "merge_summaries", "DIRECTIONS", "higher_is_better",
    "substrate_images", "gaussian_blur", "SUBSTRATES", "OUTPUTS",
]
