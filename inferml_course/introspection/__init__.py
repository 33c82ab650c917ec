"""Introspective learning (lesson 04). Submodules load lazily::

    from inferml_course import introspection
    r = introspection.introspective_features(model, x)        # (N, K) "why P, rather than Q?" gradients
    clf = introspection.IntrospectiveClassifier(model).fit(train_x, train_y)

==============  ==================================================================================
module          contents
==============  ==================================================================================
``features``    introspective gradient features (closed form), question-gradient norms, Lemma 1's terms
``reflection``  the reflection network, ``IntrospectiveClassifier``, corruption and OOD benchmarks
``plots``       question-gradient matrices, corruption comparisons
``widgets``     ``IntrospectionExplorer``
==============  ==================================================================================
"""
from __future__ import annotations

from .._core.lazy import lazy_package

_SUBMODULES = ("features", "reflection", "plots", "widgets",)
_SHORTCUTS = {
    "LOSSES": "features", "REDUCTIONS": "features", "introspective_features": "features",
    "question_gradient_norms": "features", "lemma1_terms": "features",
    "ReflectionNetwork": "reflection", "train_reflection": "reflection",
    "IntrospectiveClassifier": "reflection", "corruption_benchmark": "reflection",
    "ood_benchmark": "reflection", "show_question_gradients": "plots", "plot_corruption_comparison": "plots",
    "corruption_rows": "plots", "IntrospectionExplorer": "widgets",
}

__all__ = [*_SUBMODULES, *_SHORTCUTS]

__getattr__, __dir__ = lazy_package(__name__, globals(), _SUBMODULES, _SHORTCUTS)
