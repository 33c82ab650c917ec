"""The package's layering, read from its source: families import the shared core and each other's
public names only, and every lazy package lists its names for tab completion."""
import ast
import importlib
import pathlib

import pytest

import inferml_course

ROOT = pathlib.Path(inferml_course.__file__).parent
LAZY = ["inferml_course", "inferml_course.explain", "inferml_course.evaluate", "inferml_course.uncertainty",
        "inferml_course.uncertainty.voice", "inferml_course.uncertainty.attribution", "inferml_course.fisher",
        "inferml_course.introspection", "inferml_course.intervene"]


def _module_name(path: pathlib.Path) -> str:
    parts = ["inferml_course", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: pathlib.Path):
    """(absolute module, imported names) for every import in the file."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []


def _family(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "inferml_course" and len(parts) > 1 else None


def test_no_private_cross_family_import():
    """A module may import its own family, the private core (``_core``) and other families' public
    names; never another family's private module or private name."""
    offences = []
    for path in sorted(ROOT.rglob("*.py")):
        own = _family(_module_name(path))
        for module, names in _imports(path):
            family = _family(module)
            if family is None or family == own or family == "_core":
                continue
            private_module = any(p.startswith("_") for p in module.split(".")[1:])
            private_names = [n for n in names if n.startswith("_")]
            if private_module or private_names:
                offences.append(f"{path.relative_to(ROOT)}: from {module} import {', '.join(names)}")
    assert not offences, "private cross-family imports:\n" + "\n".join(offences)


def test_the_core_imports_no_family():
    for path in sorted((ROOT / "_core").rglob("*.py")):
        for module, _ in _imports(path):
            assert _family(module) in (None, "_core"), f"{path.name} imports {module}"


@pytest.mark.parametrize("name", LAZY)
def test_lazy_packages_list_their_names(name):
    package = importlib.import_module(name)
    listed = dir(package)
    missing = [n for n in package.__all__ if n not in listed]
    assert not missing, f"{name}: dir() lacks {missing}"
    for n in package.__all__:  # every listed name resolves
        assert getattr(package, n) is not None


#: Shared concepts: each is defined once in the package (wrappers that keep a family's public name
#: delegate to it under another name or by assignment).
ONE_DEFINITION = ["gaussian_blur", "minmax", "mask_iou", "check_batch_size", "check_logits", "check_model_output",
                  "pointing_game", "energy_pointing_game", "resolve_classifier", "resolve_layer", "resolve_baseline",
                  "penultimate_features", "decompose", "eval_mode", "model_guard", "higher_is_better",
                  "batched_grad", "contrast_classes", "contrast_cotangents", "feature_map_view", "can_download",
                  "all_finite", "check_seed", "pearson_rows", "first_pass", "score_jobs", "logit_jobs", "masked_scores",
                  "chunk_rule", "path_start", "path_gradients", "noise_sigma", "noisy_points", "check_segments",
                  "head_after_features", "dropout_head"]
#: The drifted copies this layout replaced: none may come back.
GONE = ["_average_ranks", "check_batch", "_check_batch_size", "_resolve_batch", "_last_layer", "_sensing_pass",
        "_direction", "_gaussian_kernel", "_grad_outputs", "imagenet_resnet18", "_scores", "_start",
        "_path_gradients", "_noisy", "_head_only_path", "_is_head_only_cnn", "_check_segments", "_positive", "_predicted"]


def _definitions():
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                found.setdefault(node.name, []).append(str(path.relative_to(ROOT)))
    return found


def test_one_definition_per_shared_concept():
    found = _definitions()
    twice = {name: found.get(name) for name in ONE_DEFINITION if len(found.get(name, [])) != 1}
    assert not twice, f"defined other than once: {twice}"
    back = {name: found[name] for name in GONE if name in found}
    assert not back, f"replaced copies are back: {back}"


def test_one_chunk_rule_and_one_outputs():
    """The perturb-and-score engine (``_core.perturb``) holds the chunk rule ``batch_size // per`` and the
    tuple ``OUTPUTS``; no family writes either again."""
    chunked, outputs = [], []
    for path in sorted(ROOT.rglob("*.py")):
        text = path.read_text()
        if "batch_size // " in text:
            chunked.append(str(path.relative_to(ROOT)))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "OUTPUTS" for t in node.targets):
                outputs.append(str(path.relative_to(ROOT)))
    assert chunked == ["_core/perturb.py"], chunked
    assert outputs == ["_core/perturb.py"], outputs


#: The families from the bottom up: a module may import a family listed before its own (and its own).
#: The presentation layer (``plotting``, ``widgets``) may be imported by any family's ``plots`` and
#: ``widgets`` modules, and the checkers and course tooling sit on top.
FAMILY_ORDER = ["_core", "config", "datasets", "models", "online", "fisher", "evaluate", "explain", "uncertainty",
                "introspection", "intervene", "findings", "plotting", "widgets", "checks", "course"]
#: Imports against the order, each with the reason it stays (inside the function that needs it).
UPWARD = {
    ("datasets/fashion.py", "online"): "online wraps models, which load datasets: a download is the last "
                                       "resort of the loader, imported where it is used",
    ("evaluate/human.py", "plotting"): "the pairwise study draws its own form (a method of the study, "
                                       "which evaluate/plots.py would have to import back)",
}


def _family_imports():
    """(file, own family, imported family, inside a function) for every package-relative import."""
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        own = rel.parts[0].removesuffix(".py")
        if own in ("__init__", "__main__"):
            continue
        package = list(rel.with_suffix("").parts[:-1])
        tree = ast.parse(path.read_text())
        inner = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                 for n in ast.walk(f)}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[:len(package) - node.level + 1]
                target = [t for t in base + (node.module or "").split(".") if t]
                families = [target[0]] if target else [a.name for a in node.names]
                for family in families:
                    if family != own and family in FAMILY_ORDER:
                        yield str(rel), own, family, id(node) in inner


def test_families_import_only_the_families_below_them():
    offences = []
    for rel, own, family, _ in _family_imports():
        presentation = family in ("plotting", "widgets") and pathlib.Path(rel).stem in ("plots", "widgets", "plotting")
        if own in FAMILY_ORDER and FAMILY_ORDER.index(family) > FAMILY_ORDER.index(own) and not presentation \
                and (rel, family) not in UPWARD:
            offences.append(f"{rel} ({own}) imports {family}")
    assert not offences, "imports against the family order:\n" + "\n".join(offences)


def test_imports_of_other_families_sit_at_the_top_of_modules():
    """Function-level imports hide dependencies; only the listed upward imports stay inside a function."""
    hidden = sorted({f"{rel} imports {family}" for rel, own, family, inner in _family_imports()
                     if inner and (rel, family) not in UPWARD})
    assert not hidden, "imports inside functions:\n" + "\n".join(hidden)
