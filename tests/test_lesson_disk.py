"""The input lesson's disk arm: TFRecords written without TensorFlow, read back in file
order epoch after epoch, and dropped from the page cache before each epoch.

No speed is asserted; the drop is checked with mincore on the disk under pytest's
temporary directory (skipped where that is tmpfs or an overlay: no drop can work there).
"""

import mmap
import os

import numpy as np
import pytest

from jaxnets.benchmark import input_lesson, storage


def test_crc32c_is_castagnolis():
    # The check value of CRC-32C and RFC 3720's test vectors (32 zeros, 32 x 0xFF).
    rows = np.array([list(b"123456789")], np.uint8)
    assert storage.crc32c(rows)[0] == 0xE3069283
    assert list(storage.crc32c(np.array([[0] * 32, [0xFF] * 32], np.uint8))) == [
        0x8A9136AA, 0x62A8AB43]


def test_records_read_back_in_order_and_stop_at_the_end(tmp_path):
    payloads = np.arange(5 * 7, dtype=np.uint8).reshape(5, 7)
    path = str(tmp_path / "a.tfrecord")
    assert storage.write_records(path, payloads) == 5 * (8 + 4 + 7 + 4)
    with open(path, "rb") as f:
        assert storage.read_records(f, 3) == [bytes(p) for p in payloads[:3]]
        assert storage.read_records(f, 3) == [bytes(p) for p in payloads[3:]]  # the rest
        assert storage.read_records(f, 3) == []


def test_tensorflow_reads_the_records_and_checks_their_checksums(tmp_path):
    tf = pytest.importorskip("tensorflow")
    payloads = np.random.default_rng(0).integers(0, 256, (4, 785)).astype(np.uint8)
    path = str(tmp_path / "a.tfrecord")
    storage.write_records(path, payloads)
    assert [r.numpy() for r in tf.data.TFRecordDataset(path)] == [bytes(p) for p in payloads]
    damaged = bytearray(open(path, "rb").read())
    damaged[-1] ^= 1  # the last record's checksum: TensorFlow must notice
    (tmp_path / "b.tfrecord").write_bytes(bytes(damaged))
    with pytest.raises(tf.errors.DataLossError):
        list(tf.data.TFRecordDataset(str(tmp_path / "b.tfrecord")))


def test_the_drop_empties_the_page_cache_for_the_file(tmp_path):
    if storage.disk_of(str(tmp_path)).startswith("no block device"):
        pytest.skip(f"{tmp_path} is not on a block device: {storage.disk_of(str(tmp_path))}")
    path = str(tmp_path / "a.tfrecord")
    storage.write_records(path, np.ones((3000, 785), np.uint8))  # ~2.4 MB
    with open(path, "rb") as f:
        f.read()
    cached, pages = storage.resident_pages(path)
    assert pages == -(-os.path.getsize(path) // mmap.PAGESIZE) and cached == pages
    storage.drop_from_page_cache(path)
    assert storage.resident_pages(path) == (0, pages)
    probe = storage.probe(path, reps=2)
    assert probe.drop_took_effect and probe.resident_after_read == (pages, pages)
    assert probe.cold_mb_per_sec > 0 and probe.warm_mb_per_sec > 0
    assert "queue/rotational=" in probe.disk


def test_disk_batches_read_the_file_in_order_epoch_after_epoch(tmp_path, monkeypatch):
    images, labels = input_lesson.synthetic_digits(20)
    path = str(tmp_path / "train.tfrecord")
    assert input_lesson.write_tfrecord(path, images, labels) == 20 * (8 + 4 + 785 + 4)
    drops = []
    monkeypatch.setattr(storage, "drop_from_page_cache",
                        lambda p, drop=storage.drop_from_page_cache: drops.append(p) or drop(p))
    batches = list(input_lesson.disk_batches(path, 8, 5))  # 2 full batches an epoch
    assert len(batches) == 5 and drops == [path] * 3  # before each of the 3 epochs
    order = [0, 8, 0, 8, 0]  # the partial third batch of each epoch is skipped
    for batch, start in zip(batches, order):
        np.testing.assert_array_equal(batch["label"], labels[start:start + 8])
    expected = input_lesson.finish(images[:8], labels[:8], np.random.default_rng(0))
    np.testing.assert_array_equal(batches[0]["image"], expected["image"])
    with pytest.raises(ValueError, match="fewer than 32 records, not one batch to read"):
        next(input_lesson.disk_batches(path, 32, 1))


def test_every_arm_reports_megabytes_per_second_from_its_bytes_per_example():
    lesson = input_lesson.run_lesson(lambda batch: None, tiny=True)
    rows = lesson.rows
    assert [r.method.split(" ")[0] for r in rows] == ["disk:", "naive", "RAM", "RAM", "RAM"]
    assert rows[0].megabytes_per_sec == pytest.approx(rows[0].examples_per_sec * 801 / 1e6)
    for row in rows[2:]:  # uint8 28x28 image + int32 label in RAM
        assert row.megabytes_per_sec == pytest.approx(row.examples_per_sec * 788 / 1e6)
    assert all(r.steps == 4 for r in rows)
    assert lesson.disk_epochs == 1 and lesson.storage.file_bytes == 64 * 801


def test_the_arms_run_interleaved_and_each_row_is_the_median_repetition(monkeypatch):
    order = []
    measure = input_lesson._measure
    monkeypatch.setattr(input_lesson, "_measure",
                        lambda name, *a: order.append(name.split(" ")[0]) or measure(name, *a))
    lesson = input_lesson.run_lesson(lambda batch: None, batch=8, steps=4, examples=64, reps=3)
    arms = ["disk:", "naive", "RAM", "RAM", "RAM"]
    assert order == arms + arms[1:] + arms[:1] + arms[2:] + arms[:2]  # the order rotates
    for row in lesson.rows:
        assert row.low <= row.examples_per_sec <= row.high and row.steps == 4


def test_a_median_row_keeps_the_median_speed_and_stall_and_the_spread():
    rows = [input_lesson.LessonRow("arm", rate, stall, 10, rate / 1000, rate, rate)
            for rate, stall in [(300.0, 0.1), (100.0, 0.5), (200.0, 0.2)]]
    row = input_lesson._median_row(rows)
    assert (row.examples_per_sec, row.megabytes_per_sec, row.stall) == (200.0, 0.2, 0.2)
    assert (row.low, row.high) == (100.0, 300.0)
