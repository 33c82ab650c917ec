"""Bad input for the data, model and Fisher families (issue 15), generated as a matrix.

* every function that runs a model x every bad batch (a single image, wrong rank, meta, NaN, integer,
  empty, not a tensor): a ValueError / TypeError naming the argument, and the model exactly as it was
  (modes, hooks, requires_grad, .grad, buffers: ``_hygiene.snapshot``);
* the dtype rule: float64 images on a float32 model run in float32 (the same numbers as float32 input),
  float32 images on a float64 model in float64;
* models whose forward returns a tuple, a dict or a wrong shape; labels that do not match the images;
* datasets: nothing a load returns shares memory with the cache, the tables are read-only;
* checkpoints: every failure after the hash check names the file and the retrain command.
"""
import importlib
import shutil
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from _hygiene import assert_same, snapshot
from inferml_course import datasets, fisher
from inferml_course.datasets import corruptions
from inferml_course.models import SmallCNN, accuracy, accuracy_under_corruptions, load_model, predict_logits, train_model, zoo
from inferml_course.models.__main__ import main as models_cli

signs_module = importlib.import_module("inferml_course.datasets.signs")
N, K = 6, 5


def make_cnn(dtype=torch.float32):
    torch.manual_seed(0)
    model = SmallCNN(3, K, width=4, hidden=16).to(dtype).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics: eval mode matters
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model


def armed(model):
    """A model in a state a call must not change: one block in training mode, a stale .grad, a frozen parameter."""
    model.features.block2.train()
    model.features.block3.conv1.weight.grad = torch.full_like(model.features.block3.conv1.weight, 0.5)
    model.features.block1.conv1.weight.requires_grad_(False)
    return model


@pytest.fixture(scope="module")
def x():
    return torch.rand(N, 3, 32, 32, generator=torch.Generator().manual_seed(1))


LABELS = torch.tensor([0, 1, 2, 3, 4, 0])

# name: (call(model, batch), the argument that holds the batch)
MODEL_CALLS = {
    "predict_logits": (lambda m, b: predict_logits(m, b), "images"),
    "accuracy": (lambda m, b: accuracy(m, b, LABELS[:len(b)] if isinstance(b, torch.Tensor) and b.dim() == 4
                                         else LABELS), "images"),
    "per_sample_grads": (lambda m, b: fisher.per_sample_grads(m, b, params="classifier"), "x"),
    "gradient_norms": (lambda m, b: fisher.gradient_norms(m, b, "sampled", params="classifier"), "x"),
    "fisher_information": (lambda m, b: fisher.fisher_information(m, b, params="classifier.fc2"), "x"),
    "fisher_trace_per_sample": (lambda m, b: fisher.fisher_trace_per_sample(m, b, params="classifier.fc2"), "x"),
    "embeddings": (lambda m, b: fisher.embeddings(m, b), "x"),
    "representation_spectrum": (lambda m, b: fisher.representation_spectrum(m, b), "x"),
}

# name: (make the bad batch from a good one, error, what the message must say besides the argument)
BAD_BATCHES = {
    "single image (C, H, W)": (lambda b: b[0], ValueError, r"\[None\]"),
    "5-D": (lambda b: b[None], ValueError, "batch of shape"),
    "2-D": (lambda b: b[:, 0, 0], ValueError, "batch of shape"),
    "meta device": (lambda b: b.to("meta"), ValueError, "meta device"),
    "NaN": (lambda b: b.clone().index_fill_(0, torch.tensor([1]), float("nan")), ValueError, "NaN"),
    "inf": (lambda b: b.clone().index_fill_(0, torch.tensor([2]), float("inf")), ValueError, "infinite"),
    "integer dtype": (lambda b: (b * 255).to(torch.uint8), TypeError, "floating"),
    "empty batch": (lambda b: b[:0], ValueError, "empty"),
    "a list": (lambda b: b.tolist(), TypeError, "torch.Tensor"),
}


@pytest.mark.parametrize("bad", list(BAD_BATCHES))
@pytest.mark.parametrize("name", list(MODEL_CALLS))
def test_bad_batch_matrix(name, bad, x):
    call, argument = MODEL_CALLS[name]
    make, error, match = BAD_BATCHES[bad]
    model = armed(make_cnn())
    before = snapshot(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the training-mode block makes eval-policy calls warn
        with pytest.raises(error, match=match) as info:
            call(model, make(x))
    assert str(info.value).startswith(argument), f"the message must name {argument!r}: {info.value}"
    assert_same(before, snapshot(model))


@pytest.mark.parametrize("name", list(MODEL_CALLS))
def test_single_image_advice_names_the_fix(name, x):
    call, argument = MODEL_CALLS[name]
    with pytest.raises(ValueError, match=rf"{argument}\[None\]") as info:
        call(make_cnn(), x[0])
    assert "(3, 32, 32)" in str(info.value) and "(N, C, H, W)" in str(info.value)
    # with the batch dimension it works
    call(make_cnn(), x[0][None] if name not in ("representation_spectrum", "accuracy") else x[:2])


# ------------------------------------------------------------------------------------ the dtype rule

def _as_tensor(result):
    return result.eigenvalues if isinstance(result, fisher.FisherInformation) else torch.as_tensor(result)


@pytest.mark.parametrize("name", list(MODEL_CALLS))
def test_float64_images_on_a_float32_model_run_in_float32(name, x):
    call, _ = MODEL_CALLS[name]
    model = armed(make_cnn())
    before = snapshot(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wide = _as_tensor(call(model, x.double()))
        narrow = _as_tensor(call(model, x))
    assert_same(before, snapshot(model))
    assert wide.dtype == narrow.dtype and torch.equal(wide, narrow), "float64 input is cast to the model's float32"


@pytest.mark.parametrize("name", ["predict_logits", "per_sample_grads", "gradient_norms", "embeddings"])
def test_float32_images_on_a_float64_model_run_in_float64(name, x):
    call, _ = MODEL_CALLS[name]
    model = make_cnn(torch.float64)
    out = _as_tensor(call(model, x))
    assert out.dtype == torch.float64
    assert torch.equal(out, _as_tensor(call(model, x.double())))


def test_dtype_rule_keeps_non_image_models(x):
    lin = nn.Linear(4, 3).double()
    v = torch.randn(5, 4)
    assert fisher.per_sample_grads(lin, v).dtype == torch.float64
    assert fisher.gradient_norms(nn.Linear(4, 3), v.double()).dtype == torch.float32


# ------------------------------------------------------------------------------ model outputs, meta models

class Returns(SmallCNN):
    """make_cnn()'s SmallCNN (same parameter names) whose forward returns something other than logits (N, K)."""

    def __init__(self, how):
        super().__init__(3, K, width=4, hidden=16)
        self.load_state_dict(make_cnn().state_dict())
        self.how = how
        self.eval()

    def forward(self, x):
        z = super().forward(x)
        return {"tuple": lambda: (z, 0), "dict": lambda: {"logits": z}, "1-D": lambda: z[:, 0],
                "3-D": lambda: z[:, :, None]}[self.how]()


@pytest.mark.parametrize("how", ["tuple", "dict", "1-D", "3-D"])
@pytest.mark.parametrize("name", ["predict_logits", "accuracy", "per_sample_grads", "gradient_norms",
                                  "fisher_information", "fisher_trace_per_sample", "embeddings"])
def test_model_output_that_is_not_logits(name, how, x):
    call, _ = MODEL_CALLS[name]
    model = Returns(how)
    before = snapshot(model)
    with pytest.raises(ValueError, match="logits") as info:
        call(model, x)
    assert "model" in str(info.value) or "classifier" in str(info.value)
    assert_same(before, snapshot(model))


@pytest.mark.parametrize("name", list(MODEL_CALLS))
def test_meta_model(name, x):
    call, _ = MODEL_CALLS[name]
    with pytest.raises(ValueError, match="model is on the meta device"):
        call(make_cnn().to("meta"), x)


def test_linear_model_on_token_batches_is_refused():
    lin = nn.Linear(4, 3)
    with pytest.raises(ValueError, match="logits"):
        fisher.per_sample_grads(lin, torch.randn(5, 2, 4))
    assert fisher.per_sample_grads(lin, torch.randn(5, 4)).shape == (5, 15)  # (N, D) inputs are fine


@pytest.mark.parametrize("call", [lambda m, b: fisher.per_sample_grads(m, b), lambda m, b: predict_logits(m, b)])
def test_non_model(call, x):
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        call("signs_cnn", x)


# ------------------------------------------------------------------------------------ labels and options

@pytest.mark.parametrize("labels, error, match", [
    (LABELS[:4], ValueError, r"labels must have shape \(6,\)"),
    (torch.tensor(2), ValueError, r"labels must have shape \(6,\), got \(\)"),   # no broadcasting of one label
    (torch.tensor([2]), ValueError, r"labels must have shape \(6,\)"),
    (LABELS[:, None], ValueError, r"labels must have shape \(6,\)"),
    (LABELS.float(), TypeError, "labels must be an integer tensor"),
    (LABELS > 1, TypeError, "labels must be an integer tensor"),
    ([0, 1, 2, 3, 4, 0], TypeError, "labels must be a torch.Tensor"),
    (LABELS + K, ValueError, r"labels must be in \[0, 5\)"),
    (LABELS - 1, ValueError, r"labels must be in \[0, 5\)"),
])
def test_accuracy_labels(labels, error, match, x):
    model = armed(make_cnn())
    before = snapshot(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error, match=match):
            accuracy(model, x, labels)
    assert_same(before, snapshot(model))


def test_accuracy_counts_and_accepts_numpy(x):
    model = make_cnn()
    predicted = predict_logits(model, x).argmax(1)
    assert accuracy(model, x, predicted) == 1.0
    assert accuracy(model, x, predicted.numpy()) == 1.0
    assert accuracy(model, x, (predicted + 1) % K) == 0.0


@pytest.mark.parametrize("call, match", [
    (lambda m, b: predict_logits(m, b, batch_size=0), "batch_size"),
    (lambda m, b: train_model(m, b, LABELS.float(), epochs=1, progress=False), "labels"),
    (lambda m, b: train_model(m, b, LABELS[:3], epochs=1, progress=False), "labels"),
    (lambda m, b: train_model(m, b, LABELS + K, epochs=1, progress=False), "labels"),
    (lambda m, b: train_model(m, b, LABELS, epochs=0, progress=False), "epochs"),
    (lambda m, b: train_model(m, b, LABELS, batch_size=0, progress=False), "batch_size"),
    (lambda m, b: train_model(m, b, LABELS, lr=-1.0, progress=False), "lr"),
    (lambda m, b: train_model(m, b, LABELS, weight_decay=float("nan"), progress=False), "weight_decay"),
    (lambda m, b: train_model(m, b, LABELS, max_shift=-1, progress=False), "max_shift"),
    (lambda m, b: train_model(m, b, LABELS, seed=0.5, progress=False), "seed"),
    (lambda m, b: accuracy_under_corruptions(m, b, LABELS, "fog", progress=False), "corruptions"),
    (lambda m, b: accuracy_under_corruptions(m, b, LABELS, ["fogg"], progress=False), "unknown corruption"),
    (lambda m, b: accuracy_under_corruptions(m, b, LABELS, ["fog"], (6,), progress=False), "severities"),
    (lambda m, b: accuracy_under_corruptions(m, b, LABELS[:2], ["fog"], progress=False), "labels"),
    (lambda m, b: fisher.per_sample_grads(m, b, "sampled", seed="a"), "seed"),
    (lambda m, b: fisher.per_sample_grads(m, b, "sampled", seed=1.5), "seed"),
    (lambda m, b: fisher.fisher_information(m, b, seed=None), "seed"),
    (lambda m, b: fisher.fisher_information(m, b, "empirical", labels=LABELS[:3]), "labels"),
    (lambda m, b: fisher.fisher_information(m, b, "empirical", labels=LABELS.float()), "labels"),
    (lambda m, b: fisher.fisher_information(m, b, "empirical", labels=LABELS + K), "labels"),
])
def test_bad_options_name_the_argument(call, match, x):
    model = armed(make_cnn())
    before = snapshot(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises((ValueError, TypeError)) as info:
            call(model, x)
    assert str(info.value).startswith(match), info.value
    if "train_model" not in repr(call):  # train_model trains (and so changes) the model it is given
        assert_same(before, snapshot(model))


@pytest.mark.parametrize("call, match", [
    (lambda: fisher.fisher_from_grads(torch.randn(4, 3), kind="bogus"), "kind"),
    (lambda: fisher.fisher_from_grads(torch.randn(4, 3), top_k=0), "top_k"),
    (lambda: fisher.fisher_trace(torch.randn(4, 3, device="meta")), "grads is on the meta device"),
    (lambda: fisher.representation_spectrum(torch.full((4, 3), float("nan"))), "the features"),
])
def test_fisher_matrix_helpers(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device (CUDA)")
def test_fisher_device_mismatch_is_named(x):
    with pytest.raises(ValueError, match=r"x is on cuda:0 but the model is on cpu"):
        fisher.gradient_norms(make_cnn(), x.cuda())


def test_hygiene_when_the_model_raises(x):
    from _hygiene import arm_for_hygiene

    model = arm_for_hygiene(make_cnn())
    model.classifier.dropout2.armed = "forward"
    before = snapshot(model)
    for name, (call, _) in MODEL_CALLS.items():
        with pytest.raises(RuntimeError, match="boom"):
            call(model, x)
        assert_same(before, snapshot(model))


# ------------------------------------------------------------------------------------------- datasets

@pytest.fixture(scope="module")
def signs_test():
    return datasets.load("signs", "test")


@pytest.mark.parametrize("mutate, read", [
    (lambda d: d.labels.__setitem__(0, 99), lambda d: d.labels[:4].clone()),
    (lambda d: d.images.zero_(), lambda d: d.images[:4].clone()),
    (lambda d: d.masks["sign"].fill_(False), lambda d: d.masks["sign"][:4].clone()),
    (lambda d: d.masks["part"].fill_(True), lambda d: d.masks["part"][:4].clone()),
    (lambda d: d.attributes["sign_class"].fill_(7), lambda d: d.attributes["sign_class"][:4].clone()),
    (lambda d: d.subset(slice(0, 4)).labels.fill_(3), lambda d: d.labels[:4].clone()),
    (lambda d: d[0][1].fill_(8), lambda d: d.labels[:1].clone()),
    (lambda d: d.sample(slice(0, 3))["sign_mask"].fill_(False), lambda d: d.masks["sign"][:3].clone()),
    (lambda d: d.classes.append("extra"), lambda d: torch.tensor(len(d.classes))),
    (lambda d: d.masks.pop("sign"), lambda d: torch.tensor(len(d.masks))),
])
@pytest.mark.parametrize("name", ["signs", "digits"])
def test_loads_share_nothing_with_the_cache(name, mutate, read, signs_test):
    first = datasets.load(name, "test")
    try:
        expected = read(first)
        mutate(first)
    except KeyError:  # digits have no masks or attributes
        pytest.skip("no such field")
    assert torch.equal(read(datasets.load(name, "test")), expected)


def test_spurious_attributes_and_watermark_mask_are_copies():
    a = datasets.load("signs_spurious", "test")
    expected = a.attributes["watermark_class"].clone(), a.masks["watermark"].clone()
    a.attributes["watermark_class"].zero_()
    a.masks["watermark"].zero_()
    b = datasets.signs("test", spurious=True)
    assert torch.equal(b.attributes["watermark_class"], expected[0]) and torch.equal(b.masks["watermark"], expected[1])


def test_tables_are_read_only_and_defaults_are_fresh():
    for table, key in ((corruptions.CIFAR_C_PARAMS, "fog"), (corruptions.EXTRA_PARAMS, "darkness"),
                       (signs_module.SPLIT_SIZES, "test"), (importlib.import_module("inferml_course.datasets.digits")
                                                            .SPLIT_SIZES, "test")):
        with pytest.raises(TypeError):
            table[key] = 0
    before = datasets.generate_signs(9, seed=0, spurious=True, noise_std=0).images
    colours = signs_module.WATERMARK_COLORS
    colours.zero_()
    assert colours.shape == (11, 3) and signs_module.WATERMARK_COLORS.abs().sum() > 0
    assert torch.equal(datasets.generate_signs(9, seed=0, spurious=True, noise_std=0).images, before)


def test_corrupted_copies_everything(signs_test):
    d = datasets.load("signs_spurious", "test").subset(slice(0, 8))
    c = datasets.corrupted(d, "fog", 2)
    assert set(c.attributes) == set(d.attributes) and set(c.masks) == set(d.masks)
    c.labels.fill_(0)
    c.masks["sign"].zero_()
    c.attributes["watermark_class"].zero_()
    assert d.masks["sign"].any() and d.attributes["watermark_class"].any() and d.labels.any()
    x = d.images.clone()
    out = datasets.corrupt(x, "decolorization", 5)
    out.zero_()
    assert torch.equal(x, d.images), "corrupt never returns (a view of) its input"


@pytest.mark.parametrize("call, error, match", [
    (lambda: datasets.load_ood("noise", n=4, seed=1.5), TypeError, "seed"),
    (lambda: datasets.load_ood("textures", n=4, seed="a"), TypeError, "seed"),
    (lambda: datasets.anomalies(4, seed=None), TypeError, "seed"),
    (lambda: datasets.anomalies(4, patch_size=5), TypeError, "patch_size"),  # a scalar where a pair is due
    (lambda: datasets.anomalies(4, patch_size=(3, True)), ValueError, "patch_size"),
    (lambda: datasets.anomalies(4, on_sign="no"), TypeError, "on_sign"),
    (lambda: datasets.generate_signs(4, noise_std=-1.0), ValueError, "noise_std"),
    (lambda: datasets.generate_signs(4, noise_std=float("nan")), ValueError, "noise_std"),
    (lambda: datasets.generate_signs(4, classes=()), ValueError, "classes"),
    (lambda: datasets.generate_signs(4, classes="stop"), TypeError, "classes"),
    (lambda: datasets.generate_signs(4, classes=("stop", "stop")), ValueError, "classes"),
    (lambda: datasets.generate_signs(4, classes=("stop",), label_noise=0.5), ValueError, "label_noise"),
    (lambda: datasets.generate_signs(4, label_noise="a"), TypeError, "label_noise"),
    (lambda: datasets.generate_signs(4, image_size=0), ValueError, "image_size"),
    (lambda: datasets.generate_signs(4, image_size=4), ValueError, "image_size"),
    (lambda: datasets.generate_signs(4, supersample=0), ValueError, "supersample"),
    (lambda: datasets.generate_signs(4, seed=1.5), TypeError, "seed"),
    (lambda: datasets.signs("test", spurious="yes"), TypeError, "spurious"),
    (lambda: datasets.corrupt(torch.rand(2, 3, 8, 8, device="meta"), "fog", 1), ValueError, "images"),
    (lambda: datasets.corrupt(torch.rand(2, 3, 8, 8), "fog", 1, seed=True), TypeError, "seed"),
    (lambda: datasets.ImageDataset(torch.rand(2, 3, 8, 8), torch.zeros(2), ["a"]), TypeError, "labels"),
    (lambda: datasets.ImageDataset([[0.0]], torch.zeros(2, dtype=torch.long), ["a"]), TypeError, "images"),
    (lambda: datasets.ImageDataset(torch.rand(2, 3, 8, 8), torch.zeros(2, dtype=torch.long), "ab"),
     TypeError, "classes"),
])
def test_dataset_arguments(call, error, match):
    with pytest.raises(error) as info:
        call()
    assert str(info.value).startswith(match) or f" {match}" in str(info.value), info.value


def test_smallest_image_size_and_one_class_still_work():
    d = datasets.generate_signs(4, seed=0, image_size=8, spurious=True)
    assert d.images.shape == (4, 3, 8, 8)
    assert (datasets.generate_signs(3, classes=("stop",)).labels == 0).all()


@settings(max_examples=20, deadline=None)
@given(name=st.sampled_from(["signs", "digits"]), index=st.integers(0, 399), value=st.integers(-5, 50))
def test_property_a_load_is_never_changed_by_editing_an_earlier_one(name, index, value):
    first = datasets.load(name, "test")  # the test splits: already generated by the other tests here
    label, pixel = int(first.labels[index]), first.images[index].clone()
    first.labels[index] = value
    first.images[index] = value / 50
    again = datasets.load(name, "test")
    assert int(again.labels[index]) == label and torch.equal(again.images[index], pixel)


@settings(max_examples=20, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=6))
def test_property_only_4d_batches_reach_a_conv_model(shape):
    model = nn.Sequential(nn.Conv2d(2, 3, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))
    batch = torch.rand(shape)
    if len(shape) == 4 and shape[1] == 2:
        assert fisher.gradient_norms(model, batch).shape == (shape[0],)
    elif len(shape) != 4:
        with pytest.raises(ValueError, match="batch of shape"):
            fisher.gradient_norms(model, batch)


# ------------------------------------------------------------------------------------------ checkpoints

@pytest.fixture(scope="module")
def shipped():
    return zoo.find_checkpoint("digits_cnn", cache="/nonexistent")


def _state(path):
    return torch.load(path, weights_only=True)


CHECKPOINTS = {
    "truncated": lambda p, src: p.write_bytes(src.read_bytes()[:5000]),
    "empty": lambda p, src: p.write_bytes(b""),
    "not a zip": lambda p, src: p.write_bytes(b"PK\x03\x04 not really a checkpoint"),
    "other architecture": lambda p, src: torch.save(SmallCNN(3, 9).state_dict(), p),
    "other widths": lambda p, src: torch.save(SmallCNN(1, 10, width=8).state_dict(), p),
    "missing keys": lambda p, src: torch.save(dict(list(_state(src).items())[:5]), p),
    "extra keys": lambda p, src: torch.save({**_state(src), "extra.weight": torch.zeros(1)}, p),
    "a tensor": lambda p, src: torch.save(torch.zeros(3), p),
    "a list": lambda p, src: torch.save([1, 2], p),
    "a pickled module": lambda p, src: torch.save(SmallCNN(1, 10), p),
}


@pytest.mark.parametrize("kind", list(CHECKPOINTS))
def test_checkpoint_that_passes_its_checksum_but_cannot_be_used(kind, tmp_path, shipped):
    path = tmp_path / "digits_cnn.pt"
    CHECKPOINTS[kind](path, shipped)
    (tmp_path / zoo.MANIFEST).write_text(f"{zoo.sha256(path)}  digits_cnn.pt\n")
    zoo.verify_checkpoint(path)  # the hash is fine ...
    with pytest.raises(zoo.CheckpointError) as info:  # ... what comes after it is not
        load_model("digits_cnn", device="cpu", search_dirs=[tmp_path], cache=tmp_path / "cache", retrain=False)
    message = str(info.value)
    assert str(path) in message and f"python -m inferml_course.models retrain digits_cnn --out {tmp_path}" in message
    assert not isinstance(info.value, zoo.ChecksumError)


@pytest.mark.parametrize("manifest", [
    "deadbeef\n",
    "zz" * 32 + "  digits_cnn.pt\n",
    "{digest}  digits_cnn.pt\nnot a manifest line\n",
    "{digest}  digits_cnn.pt\n" + "0" * 64 + "  digits_cnn.pt\n",
])
def test_malformed_manifest_names_manifest_file_and_command(manifest, tmp_path, shipped):
    shutil.copy(shipped, tmp_path / "digits_cnn.pt")
    (tmp_path / zoo.MANIFEST).write_text(manifest.format(digest=zoo.sha256(shipped)))
    with pytest.raises(zoo.CheckpointError) as info:
        load_model("digits_cnn", device="cpu", search_dirs=[tmp_path], cache=tmp_path / "cache", retrain=False)
    message = str(info.value)
    assert str(tmp_path / zoo.MANIFEST) in message and str(tmp_path / "digits_cnn.pt") in message
    assert "python -m inferml_course.models retrain digits_cnn" in message
    # saving (what the retrain command does) repairs the manifest, keeping its good lines
    with pytest.warns(UserWarning, match="malformed"):
        zoo.save_checkpoint(zoo.load_checkpoint("digits_cnn", shipped), "digits_cnn", tmp_path)
    assert set(zoo.read_manifest(tmp_path)) == {"digits_cnn.pt"}
    zoo.verify_checkpoint(tmp_path / "digits_cnn.pt")


def test_cli_verify_reports_a_checkpoint_that_does_not_load(tmp_path, monkeypatch, capsys, shipped):
    path = tmp_path / "digits_cnn.pt"
    path.write_bytes(shipped.read_bytes()[:4000])
    (tmp_path / zoo.MANIFEST).write_text(f"{zoo.sha256(path)}  digits_cnn.pt\n")
    monkeypatch.setenv("INFERML_DATA", str(tmp_path))
    assert models_cli(["verify"]) == 1
    out = capsys.readouterr().out
    assert f"digits_cnn: checkpoint {path}" in out and "retrain digits_cnn" in out
    assert "signs_cnn: ok" in out


def test_missing_data_folder_warns_and_falls_back(tmp_path, monkeypatch):
    missing = tmp_path / "no_such_folder"
    monkeypatch.setenv("INFERML_DATA", str(missing))
    with pytest.warns(UserWarning, match=r"INFERML_DATA=.*no_such_folder.* does not exist"):
        model = load_model("digits_cnn", device="cpu", retrain=False)
    assert isinstance(model, SmallCNN)
    (tmp_path / "a_file").write_text("")
    with pytest.warns(UserWarning, match="is not a folder"):
        zoo.find_checkpoint("digits_cnn", search_dirs=[tmp_path / "a_file"], cache=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an existing folder: no warning
        zoo.find_checkpoint("digits_cnn", search_dirs=[tmp_path], cache=tmp_path)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"device": "bogus"}, ValueError, "device 'bogus' is not a device name"),
    ({"device": 3.5}, TypeError, "device must be"),
    ({"device": "cuda:99"}, ValueError, "device='cuda:99'"),
    ({"device": "meta"}, ValueError, "device='meta'"),
    ({"search_dirs": "data"}, TypeError, "search_dirs must be a list"),
    ({"search_dirs": 3}, TypeError, "search_dirs must be a list"),
    ({"retrain": "no"}, TypeError, "retrain must be True or False"),
])
def test_load_model_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        load_model("digits_cnn", **kwargs)


def test_bad_default_device_names_the_variable(monkeypatch):
    monkeypatch.setenv("INFERML_DEVICE", "bogus")
    with pytest.raises(ValueError, match="INFERML_DEVICE='bogus'"):
        load_model("digits_cnn", retrain=False)
