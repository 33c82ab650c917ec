"""Fisher information at inference (lesson 01). Submodules load lazily::

    from inferml_course import fisher
    g = fisher.per_sample_grads(model, x)            # (N, P), batched, no loop over samples
    info = fisher.fisher_information(model, x)       # trace, top eigenvalues, diagonal

===============  =================================================================================
module           contents
===============  =================================================================================
``information``  per-sample gradients, gradient norms, empirical / sampled Fisher, spectra,
                 representation spectra and effective rank
``closed_form``  per-sample gradients of Linear / Conv / norm layers from one batched forward and
                 backward (the default route of ``information`` where it is exact)
``toys``         the Bernoulli coin and the 2-D logistic loss surface (closed-form checks)
``gradcon``      GradCon (Kwon et al., ECCV 2020): the anomaly score -L_rec + beta * mean cosine of an
                 autoencoder's decoder gradients with their training average (the autoencoder and its
                 gradient-alignment training are in ``inferml_course.models.gradcon``), the reconstruction
                 error baseline, the one-class test split
``perceptual``   perceptual components (Yarici et al., ICIP 2024): RELAX-style importance maps of a
                 representation for the full image and its colour, texture and shape; map correlation
``plots``        spectra, descent paths, score distributions, the coin's curvature
``widgets``      ``BernoulliFisherExplorer``
===============  =================================================================================
"""
from __future__ import annotations

from .._core.lazy import lazy_package

_SUBMODULES = ("information", "closed_form", "toys", "gradcon", "perceptual", "plots", "widgets",)
_SHORTCUTS = {
    "MAX_FULL_MATRIX": "information", "METHODS": "information", "NotExact": "closed_form",
    "select_parameters": "information", "per_sample_grads": "information", "gradient_norms": "information",
    "fisher_trace_per_sample": "information", "FisherInformation": "information",
    "fisher_information": "information", "fisher_from_grads": "information", "fisher_matrix": "information",
    "fisher_diagonal": "information", "fisher_trace": "information", "fisher_eigenvalues": "information",
    "embeddings": "information", "representation_spectrum": "information", "effective_rank": "information",
    "bernoulli_log_likelihood": "toys", "bernoulli_score": "toys", "bernoulli_fisher": "toys",
    "bernoulli_fisher_monte_carlo": "toys", "logistic_toy_loss": "toys", "descent_step_losses": "toys",
    "toy_gradient": "toys", "plot_bernoulli_fisher": "plots", "plot_spectra": "plots",
    "plot_descent": "plots", "plot_score_distributions": "plots", "BernoulliFisherExplorer": "widgets",
    "GradConComponents": "gradcon", "gradcon_components": "gradcon", "gradcon_score": "gradcon",
    "gradcon_anomaly_score": "gradcon", "reconstruction_error": "gradcon", "one_class_split": "gradcon",
    "COMPONENTS": "perceptual", "perceptual_views": "perceptual", "perceptual_components": "perceptual",
    "map_correlation": "perceptual",
}

__all__ = [*_SUBMODULES, *_SHORTCUTS]

__getattr__, __dir__ = lazy_package(__name__, globals(), _SUBMODULES, _SHORTCUTS)
