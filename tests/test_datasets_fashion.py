"""Fashion-MNIST: the shipped official files, the loader's search order and errors, grey corruptions and OOD."""
import gzip
import importlib
import shutil
import time
from pathlib import Path

import pytest
import torch

from inferml_course import config, datasets
from inferml_course._core.manifest import parse_manifest, sha256

fm = importlib.import_module("inferml_course.datasets.fashion")  # the module, not the function

SHIPPED = config.REPO_DATA_DIR / fm.FOLDER


@pytest.fixture
def only(monkeypatch, tmp_path):
    """Make the loader search exactly the given folders (no shipped copy, no Debian copy, an empty cache)."""
    def use(*folders, network=False):
        monkeypatch.setattr(fm, "search_dirs", lambda: [Path(f) for f in folders])
        monkeypatch.setattr(config, "cache_dir", lambda: tmp_path / "cache")
        monkeypatch.setattr("inferml_course.online.can_download", lambda *a, **k: network)
        fm._arrays.cache_clear()
    yield use
    fm._arrays.cache_clear()


def test_test_split_is_the_official_test_set():
    test = datasets.load("fashion", "test")
    assert test.images.shape == (10_000, 1, 28, 28) and test.images.dtype == torch.float32
    assert 0 <= test.images.min() and test.images.max() <= 1
    # the first labels of the official t10k file, and its balanced classes
    assert test.labels[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    raw = fm.read_idx(SHIPPED / "t10k-images-idx3-ubyte.gz")
    assert torch.equal(test.images[:, 0], torch.from_numpy(raw).float() / 255)
    assert test.classes[6] == "shirt" and test.classes[0] == "T-shirt/top" and len(test.classes) == 10


def test_train_and_val_are_carved_from_the_official_training_set():
    train, val = datasets.load("fashion", "train"), datasets.load("fashion", "val")
    assert (len(train), len(val)) == (55_000, 5_000)
    raw = fm.read_idx(SHIPPED / "train-images-idx3-ubyte.gz")
    assert torch.equal(val.images[:, 0], torch.from_numpy(raw[55_000:]).float() / 255)
    assert torch.equal(train.images[-1, 0], torch.from_numpy(raw[54_999]).float() / 255)
    val.images.zero_()  # a caller's edit never reaches a later load
    assert datasets.load("fashion", "val").images.sum() > 0


def test_shipped_files_are_official_and_in_the_manifest():
    entries, problems = parse_manifest(config.REPO_DATA_DIR / "SHA256SUMS")
    assert not problems
    for name, digest in fm.FILES.items():
        assert entries[f"{fm.FOLDER}/{name}"] == digest == sha256(SHIPPED / name)
    assert "Zalando SE" in (config.REPO_DATA_DIR / "README.md").read_text()


def test_search_order_takes_the_first_complete_folder(only, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    second.mkdir()
    for name in fm.FILES:
        shutil.copyfile(SHIPPED / name, second / name)
    first.mkdir()
    shutil.copyfile(SHIPPED / "t10k-images-idx3-ubyte.gz", first / "t10k-images-idx3-ubyte.gz")  # incomplete
    only(first, second)
    assert fm.find_files() == second
    assert len(datasets.load("fashion", "test")) == 10_000


def test_default_search_order(monkeypatch, tmp_path):
    monkeypatch.setenv("INFERML_DATA", str(tmp_path))
    dirs = fm.search_dirs()
    assert dirs[:2] == [tmp_path / fm.FOLDER, config.REPO_DATA_DIR / fm.FOLDER]
    assert dirs[2] == Path("/usr/share/datasets/fashion-mnist") and dirs[3].name == fm.FOLDER


def test_a_changed_file_is_refused_with_its_name(only, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    for name in fm.FILES:
        shutil.copyfile(SHIPPED / name, folder / name)
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(b"\x00\x00\x08\x01\x00\x00\x00\x01\x07")
    only(folder)
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz is not the official"):
        datasets.load("fashion", "test")


def test_missing_files_without_network_fail_fast_with_the_install_line(only, tmp_path):
    only(tmp_path / "nowhere", tmp_path / "empty", network=False)
    (tmp_path / "empty").mkdir()
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        datasets.load("fashion", "test")
    assert time.perf_counter() - start < 10
    with pytest.raises(FileNotFoundError, match="INFERML_DATA"):
        fm.find_files(download=False)


def test_unknown_split_and_truncated_idx(tmp_path):
    with pytest.raises(ValueError, match="split"):
        datasets.load("fashion", "holdout")
    path = tmp_path / "cut.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"\x00\x00\x08\x03" + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\x01" * 100)
    with pytest.raises(ValueError, match="truncated"):
        fm.read_idx(path)
    path.write_bytes(gzip.compress(b"PK\x03\x04 not idx"))
    with pytest.raises(ValueError, match="not an IDX file"):
        fm.read_idx(path)


def test_ship_command_copies_checks_and_records(tmp_path, capsys):
    out = tmp_path / "data"
    assert fm.main(["ship", "--source", str(SHIPPED), "--out", str(out)]) == 0
    entries, problems = parse_manifest(out / "SHA256SUMS")
    assert not problems and {f"{fm.FOLDER}/{n}" for n in fm.FILES} == set(entries)
    assert all(sha256(out / fm.FOLDER / n) == d for n, d in fm.FILES.items())
    assert fm.main(["ship", "--source", str(tmp_path / "none"), "--out", str(out)]) == 1
    assert "dataset-fashion-mnist" in capsys.readouterr().err


@pytest.mark.parametrize("corruption", datasets.GRAY_CORRUPTIONS)
def test_grey_corruptions_change_28px_images_more_with_severity(corruption):
    x = datasets.load("fashion", "test").images[:64]
    dist = [(datasets.corrupt(x, corruption, s) - x).abs().mean().item() for s in (1, 5)]
    out = datasets.corrupt(x, corruption, 3)
    assert out.shape == x.shape and out.dtype == x.dtype and 0 <= out.min() and out.max() <= 1
    assert 0 < dist[0] < dist[1]


def test_decolorization_is_the_one_corruption_left_out_of_grey():
    assert set(datasets.CORRUPTIONS) - set(datasets.GRAY_CORRUPTIONS) == {"decolorization"}
    x = datasets.load("fashion", "test").images[:8]
    assert torch.equal(datasets.corrupt(x, "decolorization", 5), x)


@pytest.mark.parametrize("name", datasets.FASHION_OOD_SETS)
def test_fashion_ood_sets_are_grey_28px(name):
    ood = datasets.load_ood(name, n=12, seed=1, world="fashion")
    assert ood.images.shape == (12, 1, 28, 28) and (ood.labels == -1).all()
    assert 0 <= ood.images.min() and ood.images.max() <= 1 and ood.images.std() > 0.01
    assert ood.classes == list(fm.CLASSES)
    assert torch.equal(ood.images, datasets.load_ood(name, n=12, seed=1, world="fashion").images)


def test_fashion_ood_bad_names():
    with pytest.raises(ValueError, match="world"):
        datasets.load_ood("noise", world="mnist")
    with pytest.raises(ValueError, match="OOD set of the fashion world"):
        datasets.load_ood("new_classes", world="fashion")


def test_confusable_pairs_are_within_groups():
    groups = [set(labels) for labels, _ in datasets.CONFUSABLE_GROUPS.values()]
    for p, q in datasets.CONFUSABLE_PAIRS:
        assert p != q and any({p, q} <= g for g in groups)
