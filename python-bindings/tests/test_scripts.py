"""The repository's shell scripts: they parse, and .ci/install-deps.sh waits
for a held dpkg lock and retries instead of failing at once, and downloads
nothing unless asked (run against stand-in apt-get, dpkg-query, sudo and
python3 commands that record their calls; the system is not touched)."""

import os
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = [ROOT / p for p in (".ci/install-deps.sh", ".ci/run", "tests/run-all.sh",
                              "bench/run-default.sh", "bench/run-bench.sh")]
pytestmark = pytest.mark.skipif(not SCRIPTS[0].exists(), reason="not run from a source tree")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_parses(script):
    res = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def _stand_ins(tmp_path, install_failures):
    """A bin/ directory whose apt-get fails `install` the first
    install_failures times the way a held lock does (exit 100)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    count = tmp_path / "install-count"
    scripts = {
        "dpkg-query": "exit 1\n",  # nothing is installed
        "sudo": 'exec "$@"\n',
        "python3": f'echo "python3 $*" >> {log}\nexit 1\n',
        "apt-get": f'''echo "apt-get $*" >> {log}
case " $* " in *" install "*)
  n=$(cat {count} 2>/dev/null || echo 0); echo $((n + 1)) > {count}
  if [ "$n" -lt {install_failures} ]; then
    echo "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)" >&2
    exit 100
  fi;;
esac
exit 0
''',
    }
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text("#!/bin/bash\n" + body)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return bin_dir, log


def _run(tmp_path, install_failures, **env):
    bin_dir, log = _stand_ins(tmp_path, install_failures)
    full = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", BP_APT_RETRY_DELAY="0",
                **env)
    full.pop("BP_FETCH_CUDA_TOOLS", None)
    full.update(env)
    res = subprocess.run(["bash", str(ROOT / ".ci/install-deps.sh")], capture_output=True,
                         text=True, env=full, timeout=60)
    calls = log.read_text().splitlines() if log.exists() else []
    return res, calls


def test_held_lock_is_waited_for_then_retried(tmp_path):
    res, calls = _run(tmp_path, install_failures=1)
    assert res.returncode == 0, res.stderr
    apt = [c for c in calls if c.startswith("apt-get")]
    assert all("-o DPkg::Lock::Timeout=300" in c for c in apt) and len(apt) == 3
    assert sum(" install " in c for c in apt) == 2  # the failed attempt and the retry
    assert "waiting up to 300 s" in res.stderr and "retrying once" in res.stderr


def test_lock_held_throughout_fails_with_a_message(tmp_path):
    res, _ = _run(tmp_path, install_failures=2, BP_APT_LOCK_TIMEOUT="7")
    assert res.returncode == 100
    assert "failed twice" in res.stderr and "Timeout=7" not in res.stderr
    assert "waiting up to 7 s" in res.stderr


def test_nothing_is_downloaded_unless_asked(tmp_path):
    res, calls = _run(tmp_path, install_failures=0)
    assert res.returncode == 0, res.stderr
    assert not [c for c in calls if c.startswith("python3")]


def test_main_scripts_say_what_the_silent_steps_do():
    default = (ROOT / "bench/run-default.sh").read_text()
    tests = (ROOT / "tests/run-all.sh").read_text()
    bench = (ROOT / "bench/run-bench.sh").read_text()
    assert "extras=sweep" in default and "python-bindings[$extras]" in default
    assert "python-bindings[sweep" in tests
    for text in (default, tests):
        assert "compiles the C library" in text
    assert "GB of memory" in bench and "still running" in bench
