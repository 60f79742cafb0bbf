"""The lesson's storage step: TFRecord files on a real disk, read past the page cache.

The lecture's advice "read all data into RAM; use an SSD instead of an HDD" is about what
a pipeline pays when its examples come from the disk each epoch. To make a read really
reach the disk, the file is synced (`os.fsync`) and then dropped from the OS page cache
(`posix_fadvise(POSIX_FADV_DONTNEED)`) before each epoch; `resident_pages` (mincore)
says whether the drop took effect. It cannot on tmpfs, where the page cache is the
storage: `TMPDIR` picks where the files go.

TFRecord framing without TensorFlow (so this runs on the GPU machine too), as TF writes
it (tensorflow/core/lib/io/record_writer.cc):

    uint64 length, uint32 masked_crc32c(length), byte data[length], uint32 masked_crc32c(data)

Records are written with their checksums (TensorFlow reads these files) and read back
without checking them: the arm measures storage, not checksums.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import mmap
import os
import statistics
import struct
import time

import numpy as np

_HEADER = struct.Struct("<Q")


def _crc32c_table() -> np.ndarray:
    """The byte table of CRC-32C (Castagnoli, reflected polynomial 0x82F63B78)."""
    crc = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        crc = np.where(crc & 1, (crc >> 1) ^ np.uint32(0x82F63B78), crc >> 1).astype(np.uint32)
    return crc


_TABLE = _crc32c_table()


def crc32c(rows: np.ndarray) -> np.ndarray:
    """CRC-32C of each row of `rows`: uint8 [N, L] -> uint32 [N] (one pass over L)."""
    rows = np.asarray(rows, np.uint8)
    crc = np.full(rows.shape[0], 0xFFFFFFFF, np.uint32)
    for column in rows.T:
        crc = _TABLE[(crc ^ column) & 0xFF] ^ (crc >> np.uint32(8))
    return crc ^ np.uint32(0xFFFFFFFF)


def masked(crc: np.ndarray) -> np.ndarray:
    """TFRecord's masked CRC: rotate right by 15 and add 0xa282ead8 (mod 2^32)."""
    crc = crc.astype(np.uint64)
    return ((((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF).astype(np.uint32)


def write_records(path: str, payloads: np.ndarray) -> int:
    """Writes each row of uint8 [N, L] `payloads` as one TFRecord, syncs the file to the
    disk (so its pages are clean and can be dropped) and returns its size in bytes."""
    payloads = np.asarray(payloads, np.uint8)
    count, length = payloads.shape
    header = np.frombuffer(_HEADER.pack(length), np.uint8)
    header_crc = masked(crc32c(header[None]))[0]
    framed = np.empty((count, 8 + 4 + length + 4), np.uint8)
    framed[:, :8] = header
    framed[:, 8:12] = np.frombuffer(struct.pack("<I", header_crc), np.uint8)
    framed[:, 12:12 + length] = payloads
    framed[:, 12 + length:] = masked(crc32c(payloads)).astype("<u4").view(np.uint8).reshape(
        count, 4)
    with open(path, "wb") as f:
        f.write(framed.tobytes())
        f.flush()
        os.fsync(f.fileno())
    return framed.nbytes


def read_records(f, count: int) -> list[bytes]:
    """Up to `count` record payloads from the open binary file `f` (fewer at its end)."""
    out = []
    for _ in range(count):
        header = f.read(12)
        if len(header) < 12:
            break
        (length,) = _HEADER.unpack_from(header)
        out.append(f.read(length))
        f.read(4)  # the payload's checksum, not checked (see the module docstring)
    return out


def drop_from_page_cache(path: str) -> None:
    """Asks the kernel to forget the file's cached pages (clean ones: write_records syncs).
    Where there is no posix_fadvise (macOS) nothing is dropped, and `probe` reports the
    pages still cached (mincore) or that it cannot tell."""
    if not hasattr(os, "posix_fadvise"):
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def resident_pages(path: str) -> tuple[int, int] | None:
    """(pages of the file in the page cache, pages of the file), by mincore(2); None where
    the call is not available (not Linux, no libc)."""
    size = os.path.getsize(path)
    pages = -(-size // mmap.PAGESIZE)
    if size == 0:
        return 0, 0
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                              ctypes.c_int, ctypes.c_long]
        libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    except (OSError, AttributeError, TypeError):
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if address in (None, ctypes.c_void_p(-1).value):
            return None
        try:
            vector = ctypes.create_string_buffer(pages)
            if libc.mincore(address, size, vector) != 0:
                return None
            return sum(b & 1 for b in vector.raw), pages
        finally:
            libc.munmap(address, size)
    finally:
        os.close(fd)


def disk_of(path: str) -> str:
    """The block device under `path` and what the kernel says of it, e.g. "vda,
    queue/rotational=1 (an HDD, or a virtual disk that does not say)"; or why there is none."""
    dev = os.stat(path).st_dev
    node = f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}"
    if not os.path.exists(node):
        return f"no block device (device {os.major(dev)}:{os.minor(dev)}: tmpfs, overlay, ...)"
    real = os.path.realpath(node)
    for candidate in (real, os.path.dirname(real)):  # a partition's queue is its disk's
        flag = os.path.join(candidate, "queue", "rotational")
        if os.path.exists(flag):
            with open(flag) as f:
                rotational = f.read().strip() == "1"
            return (f"{os.path.basename(candidate)}, queue/rotational="
                    + ("1 (an HDD, or a virtual disk that does not say)" if rotational
                       else "0 (an SSD, or RAM-backed)"))
    return f"{os.path.basename(real)} (rotational or not: unknown)"


@dataclasses.dataclass(frozen=True)
class Probe:
    """The file read whole, with nothing else running: the disk's part alone."""

    file_bytes: int
    cold_mb_per_sec: float        # median over reads, each after a page-cache drop
    warm_mb_per_sec: float        # median over reads of the cached file
    resident_after_drop: tuple | None   # (pages cached, pages) right after a drop
    resident_after_read: tuple | None   # the same after a whole read
    disk: str

    @property
    def drop_took_effect(self) -> bool | None:
        if self.resident_after_drop is None:
            return None
        return self.resident_after_drop[0] == 0


def probe(path: str, reps: int = 5) -> Probe:
    """Times `reps` whole reads of `path` after a drop (cold) and as many warm ones."""
    size = os.path.getsize(path)

    def read_whole() -> float:
        start = time.perf_counter()
        with open(path, "rb", buffering=0) as f:
            while f.read(1 << 20):
                pass
        return time.perf_counter() - start

    cold = []
    for _ in range(reps):
        drop_from_page_cache(path)
        cold.append(read_whole())
    after_read = resident_pages(path)
    warm = [read_whole() for _ in range(reps)]
    drop_from_page_cache(path)
    after_drop = resident_pages(path)
    rate = lambda seconds: size / max(statistics.median(seconds), 1e-9) / 1e6  # noqa: E731
    return Probe(size, rate(cold), rate(warm), after_drop, after_read, disk_of(path))
