"""Corrupt, foreign and non-finite model files: the Python API raises one
bitplane.Error subclass with a one-line message, bitplane-sweep prints that
line and exits with status 2 (never a traceback, never advice to unpickle)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bitplane as bp
from bitplane import models, sweep
from model_files import write_mlp

FAST = ["--repeats", "1", "--min-time", "0", "--quiet", "--no-plots", "--planes", "2",
        "--act-bits", "8", "--quantizer", "uniform"]


def _good_npz(tmp_path, rng):
    path = tmp_path / "good.npz"
    write_mlp(path, rng)
    return path


def _bad_files(tmp_path, rng):
    """(path, exception class, message pattern) for every kind of bad file."""
    good = _good_npz(tmp_path, rng).read_bytes()
    cases = []

    def add(name, data, kind, pattern):
        p = tmp_path / name
        p.write_bytes(data)
        cases.append((p, kind, pattern))

    add("empty.npz", b"", bp.CorruptError, "the file is empty")
    add("truncated.npz", good[:len(good) // 2], bp.CorruptError,
        "not a plain array archive .* not a zip file")
    # A flipped byte inside the first member's data: zip's CRC-32 catches it.
    flipped = bytearray(good)
    flipped[200] ^= 0x40
    add("flipped.npz", bytes(flipped), bp.CorruptError, "corrupt or truncated .npz file")
    add("text.npz", b"this is not an array archive\n" * 10, bp.CorruptError,
        "not a plain array archive")
    obj = tmp_path / "objects.npz"
    np.savez(obj, **{"l0.weight": np.array([{"a": 1}], dtype=object)})
    cases.append((obj, bp.CorruptError, "holds Python objects, which are never loaded"))
    nan = dict(np.load(_good_npz(tmp_path, rng)))
    nan["l1.weight"][3, 7] = np.nan
    np.savez(tmp_path / "nan.npz", **nan)
    cases.append((tmp_path / "nan.npz", bp.NonFiniteError, r"'l1.weight'\[3, 7\] is nan"))
    missing = dict(np.load(_good_npz(tmp_path, rng)))
    del missing["l2.weight"]
    np.savez(tmp_path / "missing.npz", **missing)
    cases.append((tmp_path / "missing.npz", bp.CorruptError, "mlp file without 'l2.weight'"))
    try:
        from safetensors.numpy import save_file
    except ImportError:
        return cases
    st = tmp_path / "good.safetensors"
    save_file({"0.weight": np.ones((4, 3), np.float32)}, str(st))
    data = st.read_bytes()
    add("truncated.safetensors", data[:len(data) - 8], bp.CorruptError,
        "not a valid .safetensors file")
    add("text.safetensors", b"hello", bp.CorruptError, "not a valid .safetensors file")
    return cases


def test_bad_files_raise_library_errors(tmp_path, rng):
    cases = _bad_files(tmp_path, rng)
    assert len(cases) >= 7
    for path, kind, pattern in cases:
        with pytest.raises(kind, match=pattern) as e:
            models.read(path)
        assert isinstance(e.value, bp.Error), path
        msg = str(e.value)
        assert "\n" not in msg and str(path) in msg and "allow_pickle" not in msg, msg
    with pytest.raises(bp.FileError, match="no model file"):
        models.read(tmp_path / "absent.npz")


def test_sweep_prints_one_line_and_exits_2(tmp_path, rng, capsys):
    for path, _, pattern in _bad_files(tmp_path, rng):
        rc = sweep.main(["--model", str(path), "--out", str(tmp_path / "o")] + FAST)
        err = capsys.readouterr().err.strip()
        assert rc == 2, (path, err)
        assert err.count("\n") == 0 and err.startswith("bitplane-sweep: "), err
        assert "Traceback" not in err and "allow_pickle" not in err


def test_sweep_bad_inputs_file(tmp_path, rng, capsys):
    np.savez(tmp_path / "stack.npz", **{"0.weight": np.ones((4, 3), np.float32)})
    (tmp_path / "x.npy").write_text("not numbers")
    rc = sweep.main(["--model", str(tmp_path / "stack.npz"), "--inputs",
                     str(tmp_path / "x.npy"), "--out", str(tmp_path / "o")] + FAST)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "x.npy" in err and "allow_pickle" not in err


def test_console_script_has_no_traceback(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    script = Path(sys.executable).parent / "bitplane-sweep"
    # Without --quiet: the file is checked before any progress bar is drawn.
    args = [a for a in FAST if a != "--quiet"]
    res = subprocess.run([str(script), "--model", str(bad), "--out", str(tmp_path / "o")] + args,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "Traceback" not in res.stderr
    assert str(bad) in res.stderr
