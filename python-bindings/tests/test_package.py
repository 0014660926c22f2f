"""The package itself: what `import bitplane` loads, where its version comes
from, and what the sweep says when its extra is missing."""

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import bitplane
from bitplane import sweep

HEADER = Path(__file__).resolve().parents[2] / "include" / "bitplane.h"


def test_import_does_not_pull_the_sweep_dependencies():
    code = ("import sys, bitplane, bitplane.layers, bitplane.models, bitplane.encoder; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'matplotlib', 'tqdm', 'threadpoolctl', 'safetensors', 'tokenizers'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=str(Path(__file__).parent))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_heavy_dependencies_are_extras():
    requires = importlib.metadata.requires("bitplane") or []
    for req in requires:
        name = re.split(r"[<>=!~ ;\[]", req, maxsplit=1)[0].lower()
        if name in ("matplotlib", "tqdm", "threadpoolctl", "tokenizers", "safetensors"):
            assert "extra ==" in req, req
    extras = importlib.metadata.metadata("bitplane").get_all("Provides-Extra")
    assert {"sweep", "minilm"} <= set(extras)


def test_version_comes_from_the_header():
    assert bitplane.__version__ == importlib.metadata.version("bitplane") == bitplane.version()
    if HEADER.exists():  # run from a source tree
        text = HEADER.read_text()
        parts = [re.search(rf"#define BP_VERSION_{k}\s+(\d+)", text).group(1)
                 for k in ("MAJOR", "MINOR", "PATCH")]
        assert bitplane.__version__ == ".".join(parts)


def test_missing_extra_is_one_line_with_the_fix(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real(name, *a))
    assert sweep.main(["--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install 'bitplane[sweep]'" in err
    assert "matplotlib" in err
