"""digitnet.data: Kaggle CSV and MNIST IDX readers, splits and summaries."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from conftest import (
    PIXEL_HEADER,
    TRAIN_HEADER,
    assert_one_line,
    idx_bytes,
    write_kaggle_csv,
)

from digitnet.data import (
    Digits,
    class_counts,
    fingerprint,
    load_idx,
    load_idx_folder,
    load_idx_pair,
    load_kaggle_csv,
    load_training_data,
    stratified_split,
    summarize,
)
from digitnet.errors import DataError


def _train_csv(tmp_path, name: str, rows: list[str], header: str = TRAIN_HEADER):
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _good_row(label: int = 3, value: int = 0) -> list[str]:
    return [str(label)] + [str(value)] * 784


def _raises_data_error(path, *needles: str, require_labels: bool = True) -> str:
    with pytest.raises(DataError) as caught:
        load_kaggle_csv(path, require_labels=require_labels)
    message = str(caught.value)
    assert_one_line(message, path.name, *needles)
    return message


# ---------------------------------------------------------------------------
# Kaggle CSV: worked examples


def test_tiny_train_csv_round_trips_exact_pixels_and_labels(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[0, 27, 27] = 0, 255
    labels = np.array([0, 9, 3, 3, 7])
    path = write_kaggle_csv(tmp_path / "tiny.csv", images, labels)

    digits = load_kaggle_csv(path, require_labels=True)

    assert digits.images.dtype == np.uint8 and digits.images.shape == (5, 28, 28)
    np.testing.assert_array_equal(digits.images, images)
    np.testing.assert_array_equal(digits.labels, labels)
    assert digits.source == str(path)


def test_test_csv_without_labels_reads_pixels_only(tmp_path):
    images = np.arange(2 * 784).reshape(2, 28, 28) % 256
    path = write_kaggle_csv(tmp_path / "test.csv", images, None)

    digits = load_kaggle_csv(path, require_labels=False)

    assert digits.labels is None
    np.testing.assert_array_equal(digits.images, images)


def test_real_train_csv_loads_8000_digits_of_10_classes(mnist):
    assert mnist.images.shape == (8000, 28, 28)
    assert mnist.images.dtype == np.uint8
    assert mnist.labels.shape == (8000,)
    assert sorted(set(mnist.labels.tolist())) == list(range(10))
    assert mnist.images.max() == 255 and mnist.images.min() == 0


# ---------------------------------------------------------------------------
# Kaggle CSV: bad input, one test each


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.csv"
    _raises_data_error(path, "no such file")


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(DataError) as caught:
        load_kaggle_csv(tmp_path, require_labels=True)
    assert_one_line(str(caught.value), str(tmp_path), "folder")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    _raises_data_error(path, "empty")


def test_file_of_blank_lines(tmp_path):
    path = tmp_path / "blank.csv"
    path.write_text("\n\n\n")
    _raises_data_error(path, "empty")


def test_header_only(tmp_path):
    path = _train_csv(tmp_path, "header.csv", [])
    _raises_data_error(path, "no rows")


def test_no_label_column_in_a_train_csv(tmp_path):
    path = _train_csv(tmp_path, "nolabel.csv", [",".join(["0"] * 784)], header=PIXEL_HEADER)
    _raises_data_error(path, "'label'")


def test_783_pixel_columns(tmp_path):
    header = "label," + ",".join(f"pixel{i}" for i in range(783))
    path = _train_csv(tmp_path, "c783.csv", [",".join(["1"] + ["0"] * 783)], header=header)
    _raises_data_error(path, "784", "783")


def test_785_pixel_columns(tmp_path):
    header = "label," + ",".join(f"pixel{i}" for i in range(785))
    path = _train_csv(tmp_path, "c785.csv", [",".join(["1"] + ["0"] * 785)], header=header)
    _raises_data_error(path, "784", "785")


def test_misnamed_pixel_column(tmp_path):
    header = TRAIN_HEADER.replace("pixel10,", "pixelX,")
    path = _train_csv(tmp_path, "names.csv", [",".join(_good_row())], header=header)
    _raises_data_error(path, "'pixelX'", "'pixel10'")


def _csv_with_bad_cell(tmp_path, name: str, column: int, cell: str):
    """Row 2 of the data (line 3 of the file) has ``cell`` in file column ``column``."""
    bad = _good_row()
    bad[column] = cell
    return _train_csv(tmp_path, name, [",".join(_good_row()), ",".join(bad)])


def test_non_numeric_cell(tmp_path):
    path = _csv_with_bad_cell(tmp_path, "word.csv", 1 + 4, "abc")
    _raises_data_error(path, "line 3", "'pixel4'", "'abc'", "not a number")


def test_empty_cell(tmp_path):
    path = _csv_with_bad_cell(tmp_path, "hole.csv", 1 + 100, "")
    _raises_data_error(path, "line 3", "'pixel100'", "empty")


def test_value_below_zero(tmp_path):
    path = _csv_with_bad_cell(tmp_path, "negative.csv", 1 + 7, "-1")
    _raises_data_error(path, "line 3", "'pixel7'", "-1", "0-255")


def test_value_above_255(tmp_path):
    path = _csv_with_bad_cell(tmp_path, "big.csv", 1 + 783, "256")
    _raises_data_error(path, "line 3", "'pixel783'", "256", "0-255")


def test_fractional_value(tmp_path):
    path = _csv_with_bad_cell(tmp_path, "fraction.csv", 1 + 2, "12.5")
    _raises_data_error(path, "line 3", "'pixel2'", "12.5")


@pytest.mark.parametrize("label", ["10", "-1"])
def test_label_outside_0_to_9(tmp_path, label):
    path = _csv_with_bad_cell(tmp_path, "label.csv", 0, label)
    _raises_data_error(path, "line 3", "'label'", label, "0-9")


def test_ragged_row_too_long(tmp_path):
    rows = [",".join(_good_row()), ",".join(_good_row()) + ",0"]
    path = _train_csv(tmp_path, "long.csv", rows)
    _raises_data_error(path, "line 3")


def test_ragged_row_too_short(tmp_path):
    rows = [",".join(_good_row()), ",".join(_good_row()[:-1])]
    path = _train_csv(tmp_path, "short.csv", rows)
    _raises_data_error(path, "line 3", "'pixel783'")


def test_binary_file_with_csv_name(tmp_path):
    path = tmp_path / "binary.csv"
    path.write_bytes(b"\xff\xfe\x00\x80\x81garbage\x00" * 10)
    _raises_data_error(path)


def test_test_csv_with_bad_cell_names_line_and_column(tmp_path):
    bad = ["0"] * 784
    bad[9] = "x"
    path = _train_csv(tmp_path, "test.csv", [",".join(bad)], header=PIXEL_HEADER)
    _raises_data_error(path, "line 2", "'pixel9'", require_labels=False)


# ---------------------------------------------------------------------------
# IDX


def _digits(count: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=count).astype(np.uint8)
    return images, labels


def test_plain_and_gzipped_idx_load_the_same(tmp_path):
    images, _ = _digits()
    plain = tmp_path / "images-idx3-ubyte"
    plain.write_bytes(idx_bytes(images))
    zipped = tmp_path / "images-idx3-ubyte.gz"
    zipped.write_bytes(gzip.compress(idx_bytes(images)))

    np.testing.assert_array_equal(load_idx(plain), images)
    np.testing.assert_array_equal(load_idx(zipped), images)


def test_idx_wrong_magic_number(tmp_path):
    images, _ = _digits()
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(idx_bytes(images, magic=0x00000903))
    with pytest.raises(DataError) as caught:
        load_idx(path)
    assert_one_line(str(caught.value), path.name, "magic", "0x00000903")


def test_idx_truncated_body(tmp_path):
    images, _ = _digits()
    path = tmp_path / "cut-idx3-ubyte"
    path.write_bytes(idx_bytes(images)[:-100])
    with pytest.raises(DataError) as caught:
        load_idx(path)
    assert_one_line(str(caught.value), path.name, "6x28x28", "truncated")


def test_idx_with_extra_bytes(tmp_path):
    _, labels = _digits()
    path = tmp_path / "long-idx1-ubyte"
    path.write_bytes(idx_bytes(labels) + b"\x00")
    with pytest.raises(DataError) as caught:
        load_idx(path)
    assert_one_line(str(caught.value), path.name)


def test_idx_truncated_header(tmp_path):
    path = tmp_path / "head-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x06\x00")
    with pytest.raises(DataError) as caught:
        load_idx(path)
    assert_one_line(str(caught.value), path.name, "truncated")


def test_idx_broken_gzip(tmp_path):
    images, _ = _digits()
    path = tmp_path / "broken-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(images))[:-30])
    with pytest.raises(DataError) as caught:
        load_idx(path)
    assert_one_line(str(caught.value), path.name)


def test_idx_empty_file(tmp_path):
    path = tmp_path / "empty-idx1-ubyte"
    path.write_bytes(b"")
    with pytest.raises(DataError) as caught:
        load_idx(path)
    assert_one_line(str(caught.value), path.name, "empty")


def test_idx_pair_with_mismatched_counts(tmp_path):
    images, labels = _digits()
    (tmp_path / "i").write_bytes(idx_bytes(images))
    (tmp_path / "l").write_bytes(idx_bytes(labels[:-1]))
    with pytest.raises(DataError) as caught:
        load_idx_pair(tmp_path / "i", tmp_path / "l")
    assert_one_line(str(caught.value), "l:")


def test_idx_label_outside_0_to_9(tmp_path):
    images, labels = _digits()
    labels[2] = 10
    (tmp_path / "i").write_bytes(idx_bytes(images))
    (tmp_path / "l").write_bytes(idx_bytes(labels))
    with pytest.raises(DataError) as caught:
        load_idx_pair(tmp_path / "i", tmp_path / "l")
    assert_one_line(str(caught.value), "10", "0-9")


@pytest.mark.parametrize(
    "names",
    [
        ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        ("train-images.idx3-ubyte", "train-labels.idx1-ubyte"),
        ("train-images.idx3-ubyte.gz", "train-labels.idx1-ubyte.gz"),
    ],
)
def test_load_idx_folder_finds_every_naming(tmp_path, names):
    images, labels = _digits()
    for name, array in zip(names, (images, labels)):
        raw = idx_bytes(array)
        (tmp_path / name).write_bytes(gzip.compress(raw) if name.endswith(".gz") else raw)

    digits = load_idx_folder(tmp_path, split="train")

    np.testing.assert_array_equal(digits.images, images)
    np.testing.assert_array_equal(digits.labels, labels)
    assert digits.labels.dtype == np.int64


def test_load_idx_folder_test_split_and_missing_files(tmp_path):
    images, labels = _digits()
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(images))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    assert len(load_idx_folder(tmp_path, split="test")) == 6

    with pytest.raises(DataError) as caught:
        load_idx_folder(tmp_path, split="train")
    assert_one_line(str(caught.value), str(tmp_path), "train-images-idx3-ubyte")


# ---------------------------------------------------------------------------
# load_training_data dispatch


def test_load_training_data_from_a_csv_file(tmp_path):
    images, labels = _digits(4)
    path = write_kaggle_csv(tmp_path / "anything.csv", images, labels)
    np.testing.assert_array_equal(load_training_data(path).images, images)


def test_load_training_data_from_a_folder_with_train_csv(tmp_path):
    images, labels = _digits(4)
    write_kaggle_csv(tmp_path / "train.csv", images, labels)
    digits = load_training_data(tmp_path)
    np.testing.assert_array_equal(digits.labels, labels)


def test_load_training_data_from_a_folder_of_idx(tmp_path):
    images, labels = _digits(5)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    digits = load_training_data(tmp_path)
    np.testing.assert_array_equal(digits.images, images)
    np.testing.assert_array_equal(digits.labels, labels)


def test_load_training_data_from_an_idx_images_file(tmp_path):
    images, labels = _digits(5)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(images))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    digits = load_training_data(tmp_path / "train-images-idx3-ubyte")
    np.testing.assert_array_equal(digits.labels, labels)


def test_load_training_data_idx_file_without_labels(tmp_path):
    images, _ = _digits(5)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(images))
    with pytest.raises(DataError) as caught:
        load_training_data(tmp_path / "train-images-idx3-ubyte")
    assert_one_line(str(caught.value), "train-images-idx3-ubyte", "labels")


def test_load_training_data_from_an_empty_folder(tmp_path):
    with pytest.raises(DataError) as caught:
        load_training_data(tmp_path)
    assert_one_line(str(caught.value), str(tmp_path))


def test_load_training_data_refuses_a_test_csv(tmp_path):
    path = _train_csv(tmp_path, "test.csv", [",".join(["0"] * 784)], header=PIXEL_HEADER)
    with pytest.raises(DataError) as caught:
        load_training_data(path)
    assert_one_line(str(caught.value), "test.csv", "'label'")


# ---------------------------------------------------------------------------
# Splits, counts, fingerprints


@pytest.mark.parametrize("fraction", [0.1, 0.25])
def test_stratified_split_properties(mnist, fraction):
    labels = mnist.labels
    train, val = stratified_split(labels, fraction, seed=7)
    again_train, again_val = stratified_split(labels, fraction, seed=7)
    other_train, other_val = stratified_split(labels, fraction, seed=8)

    np.testing.assert_array_equal(train, again_train)
    np.testing.assert_array_equal(val, again_val)
    assert not np.array_equal(val, other_val)
    assert len(np.intersect1d(train, val)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(len(labels)))
    for digit, count in enumerate(np.bincount(labels, minlength=10)):
        in_val = int((labels[val] == digit).sum())
        assert abs(in_val - round(count * fraction)) <= 1


def test_stratified_split_zero_fraction_and_bad_fraction():
    labels = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9] * 3)
    train, val = stratified_split(labels, 0.0, seed=0)
    assert len(val) == 0 and len(train) == 30
    with pytest.raises(ValueError):
        stratified_split(labels, 1.0, seed=0)


def test_class_counts():
    assert class_counts(np.array([0, 0, 3, 9, 9, 9])) == [2, 0, 0, 1, 0, 0, 0, 0, 0, 3]
    assert class_counts(np.array([], dtype=np.int64)) == [0] * 10


def test_summarize_counts_real_data(mnist):
    summary = summarize(mnist)
    assert summary["count"] == 8000
    assert sum(summary["class_counts"]) == 8000
    assert len(summary["fingerprint"]) == 16


def test_fingerprint_changes_with_one_pixel_or_one_label():
    images, labels = _digits(4)
    base = fingerprint(Digits(images, labels.astype(np.int64), "a"))
    assert fingerprint(Digits(images.copy(), labels.astype(np.int64), "b")) == base

    changed = images.copy()
    changed[2, 13, 13] ^= 1
    assert fingerprint(Digits(changed, labels.astype(np.int64), "a")) != base

    relabelled = labels.astype(np.int64)
    relabelled[0] = (relabelled[0] + 1) % 10
    assert fingerprint(Digits(images, relabelled, "a")) != base


def test_mnist_in_assets_is_all_of_it_and_checked_by_sha256(tmp_path, monkeypatch):
    import shutil

    import digitnet.data as data

    train, test = data.load_mnist("train"), data.load_mnist("test")
    assert (len(train), len(test)) == (60_000, 10_000)
    assert train.images.shape == (60_000, 28, 28) and set(test.labels) == set(range(10))
    # A damaged copy standing in for assets/mnist is refused in one line, before reading.
    damaged = tmp_path / "mnist"
    shutil.copytree(data.MNIST_DIR, damaged)
    labels = damaged / "t10k-labels-idx1-ubyte.gz"
    labels.chmod(0o644)
    content = bytearray(labels.read_bytes())
    content[100] ^= 0xFF
    labels.write_bytes(bytes(content))
    monkeypatch.setattr(data, "MNIST_DIR", damaged)
    with pytest.raises(DataError) as caught:
        data.load_mnist("test", damaged)
    assert_one_line(str(caught.value), "t10k-labels-idx1-ubyte.gz", "SHA-256")
    assert len(data.load_mnist("train", damaged)) == 60_000  # the untouched pair still reads
