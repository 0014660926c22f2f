"""Matrix.load and Matrix.save inherit the C loader's file handling: special
files are refused at once (a FIFO must not hang), a large foreign file is
judged by its header, and a failed save keeps the previous file."""

import errno
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import bitplane as bp


@pytest.fixture
def small(rng):
    w = rng.standard_normal((8, 40), dtype=np.float32)
    return bp.Matrix.quantize(w, bits=4)


def run_with_timeout(code, timeout=20):
    """Run code in a fresh interpreter so that a hang becomes a failure."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout)


def test_load_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "matrix.bpm"
    os.mkfifo(fifo)
    done = run_with_timeout(f"""
        import bitplane
        try:
            bitplane.Matrix.load({str(fifo)!r})
        except bitplane.FileError as e:
            print("FileError:", e)
        """)
    assert done.returncode == 0, done.stderr
    assert "is not a regular file (a FIFO)" in done.stdout, done.stdout


def test_load_directory_and_device(tmp_path):
    with pytest.raises(bp.FileError, match=r"is not a regular file \(a directory\)"):
        bp.Matrix.load(str(tmp_path))
    with pytest.raises(bp.FileError, match=r"is not a regular file \(a character device\)"):
        bp.Matrix.load("/dev/zero")


def test_load_large_junk_reads_only_the_header(tmp_path):
    junk = tmp_path / "junk.bpm"
    with open(junk, "wb") as f:
        f.truncate(2 << 30)  # sparse: 2 GiB of zeros
    with pytest.raises(bp.CorruptError, match="bad magic"):
        bp.Matrix.load(str(junk))


def test_failed_save_keeps_the_previous_file(small, rng, tmp_path):
    path = tmp_path / "m.bpm"
    small.save(str(path))
    before = path.read_bytes()
    assert len(before) < 16384
    big = bp.Matrix.quantize(rng.standard_normal((256, 1024), dtype=np.float32), bits=8)
    big_path = tmp_path / "big.bpm"
    big.save(str(big_path))
    done = run_with_timeout(f"""
        import resource, signal, bitplane
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))
        m = bitplane.Matrix.load({str(big_path)!r})
        try:
            m.save({str(path)!r})
            print("saved")
        except bitplane.FileError as e:
            print("FileError:", e)
        """)
    assert done.returncode == 0, done.stderr
    assert "FileError:" in done.stdout and os.strerror(errno.EFBIG) in done.stdout, done.stdout
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.bpm", "m.bpm"]
    assert bp.Matrix.load(str(path)).to_bytes() == small.to_bytes()
