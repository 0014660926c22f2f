"""The README's Python example runs and prints what the README says."""

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _python_examples():
    """Every ```python block of the README that is followed by its output."""
    found = re.findall(r"```python\n(.*?)```\n\nprints\n\n```\n(.*?)```", README.read_text(), re.S)
    assert len(found) >= 2, "README.md lacks its short and long Python examples with their output"
    return found


def test_readme_python_examples_print_what_they_show():
    for code, shown in _python_examples():
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, "README.md", "exec"), {})
        assert out.getvalue() == shown


def test_readme_python_examples_run_from_the_repository_root():
    """As a user runs them after the main command (`.venv/bin/python` in the
    repository root): the installed package, not the source tree, is imported."""
    import subprocess
    import sys

    for code, shown in _python_examples():
        res = subprocess.run([sys.executable, "-c", code], cwd=str(README.parent),
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        assert res.stdout == shown


def test_readme_c_example_is_the_body_of_tests_example_c():
    """The README's C example is tests/example.c's code between its markers,
    so the example CTest and CI build is the one the README shows."""
    shown = re.search(r"## Example\n.*?```c\n(.*?)```", README.read_text(), re.S)
    assert shown, "README.md's Example section has no ```c block"
    source = (README.parent / "tests" / "example.c").read_text()
    body = re.search(r"/\* EXAMPLE BEGIN \*/\n(.*?)\n[ ]*/\* EXAMPLE END \*/", source, re.S)
    assert body, "tests/example.c lacks its EXAMPLE BEGIN / END markers"
    dedented = "\n".join(line[4:] if line.startswith("    ") else line
                          for line in body.group(1).split("\n"))
    assert shown.group(1) == dedented + "\n"


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
