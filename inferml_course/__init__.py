"""inferml_course: the helper package of the inferential machine learning course.

Submodules load lazily, so ``import inferml_course`` costs little more than ``import torch``::

    import inferml_course as ic
    train = ic.datasets.load("signs", split="train")
    model = ic.models.load_model("signs_cnn")
"""
from __future__ import annotations

from ._core.arguments import checked
from ._core import directions as _directions
from ._core.lazy import lazy_package
from ._core.tables import format_table

__version__ = "0.1.0"

_SUBMODULES = (
    "config", "datasets", "models", "plotting", "widgets", "checks", "course",
    "fisher", "introspection", "explain", "uncertainty", "intervene", "evaluate", "findings",
)

__all__ = ["__version__", "format_table", "require", "show_source", *_SUBMODULES]


__getattr__, __dir__ = lazy_package(__name__, globals(), _SUBMODULES)

# The modules that declare metric and score directions where the metrics are defined; _core.directions
# imports them (by name) on a name it does not know yet, e.g. format_table(marks=True) on "AUROC" before
# the uncertainty package is loaded.
_directions.sources(
    "inferml_course.evaluate", "inferml_course.uncertainty.metrics", "inferml_course.uncertainty.calibration",
    "inferml_course.uncertainty.conformal",
    "inferml_course.uncertainty.scores", "inferml_course.uncertainty.augmentation",
    "inferml_course.uncertainty.attribution.evaluation", "inferml_course.uncertainty.voice.maps",
    "inferml_course.intervene.membership", "inferml_course.intervene.adversarial",
    "inferml_course.introspection.reflection", "inferml_course.fisher.gradcon",
)



@checked
def show_source(obj, docstring: bool = False) -> None:
    """Show the source code of a package function in the notebook (see :func:`inferml_course.course.show_source`)."""
    from .course import show_source as show

    show(obj, docstring)


@checked
def require(version: str) -> None:
    """Fail loudly when the installed package is not the version a notebook was tested with."""
    if version != __version__:
        raise RuntimeError(
            f"These notebooks were tested with inferml-course {version}, but {__version__} is installed. "
            f"Install the matching version: pip install 'inferml-course=={version}' "
            "(or re-run the setup cell on Colab)."
        )
