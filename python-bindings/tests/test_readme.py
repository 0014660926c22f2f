"""The README's Python example runs and prints what the README says."""

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_python_example_prints_what_it_shows():
    text = README.read_text()
    m = re.search(r"```python\n(.*?)```\n\nprints\n\n```\n(.*?)```", text, re.S)
    assert m, "README.md has no ```python example followed by its output"
    code, shown = m.group(1), m.group(2)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    assert out.getvalue() == shown


def test_readme_python_example_runs_from_the_repository_root():
    """As a user runs it after the main command (`.venv/bin/python` in the
    repository root): the installed package, not the source tree, is imported."""
    import subprocess
    import sys

    code = re.search(r"```python\n(.*?)```\n\nprints", README.read_text(), re.S).group(1)
    res = subprocess.run([sys.executable, "-c", code], cwd=str(README.parent),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[-1].startswith("planes must be 0 (all) or 1..8")


def test_readme_c_example_prints_what_it_shows(tmp_path):
    """tests/example.c, built against the library this package bundles,
    prints the output the README states."""
    import shutil
    import subprocess

    import pytest

    import bitplane

    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler")
    root = README.parent
    m = re.search(r"`tests/example\.c` prints[^`]*```\n(.*?)```", README.read_text(), re.S)
    assert m, "README.md does not state tests/example.c's output"
    lib = Path(bitplane.library_path())
    exe = tmp_path / "example"
    subprocess.run([cc, "-std=c11", "-I", str(root / "include"), str(root / "tests/example.c"),
                    str(lib), f"-Wl,-rpath,{lib.parent}", "-o", str(exe)], check=True,
                   timeout=120)
    res = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout == m.group(1)
