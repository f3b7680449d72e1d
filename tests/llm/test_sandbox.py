"""The Python sandbox refuses what a policy's code must not do: each refusal has a test."""

from __future__ import annotations

import sys
import time

import pytest

from rlfoundry.llm.sandbox import python_tool, run_python

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX resource limits")


def test_ordinary_code_runs_and_may_use_its_directory():
    res = run_python("open('x.txt', 'w').write('hi'); print(open('x.txt').read(), 6 * 7)")
    assert res.ok and res.output == "hi 42\n"
    assert python_tool("sum(range(10))") == "45"


def test_network_is_refused():
    code = "import socket\nsocket.create_connection(('127.0.0.1', 80), timeout=1)"
    res = run_python(code)
    assert not res.ok and "socket" in res.reason and "refused" in res.reason


def test_writes_outside_the_sandbox_are_refused(tmp_path):
    target = tmp_path / "escape.txt"
    for code in (
        f"open({str(target)!r}, 'w')",
        f"import os; os.open({str(target)!r}, os.O_WRONLY | os.O_CREAT)",
        f"import pathlib; pathlib.Path({str(target)!r}).write_text('x')",
        f"import os; os.remove({str(tmp_path)!r})",
        "open('../escape.txt', 'a')",
    ):
        res = run_python(code)
        assert not res.ok and "refused" in res.reason, code
    assert not target.exists()


def test_processes_are_refused():
    for code in ("import os; os.system('true')", "import subprocess; subprocess.run(['ls'])"):
        res = run_python(code)
        assert not res.ok and "refused" in res.reason, code


def test_runaway_cpu_is_stopped():
    t0 = time.monotonic()
    res = run_python("while True: pass", timeout=30, cpu_seconds=1)
    assert not res.ok and res.reason == "cpu"
    assert time.monotonic() - t0 < 25  # stopped by the CPU limit, not the wall clock


def test_runaway_memory_is_stopped():
    res = run_python("x = bytearray(4 * 2**30)", memory_mb=256)
    assert not res.ok and res.reason == "memory"


def test_wall_clock_timeout_kills_a_sleeper():
    t0 = time.monotonic()
    res = run_python("import time; time.sleep(60)", timeout=1)
    assert not res.ok and res.reason == "timeout" and time.monotonic() - t0 < 10


def test_python_tool_reports_failure():
    with pytest.raises(RuntimeError):
        python_tool("1/0")


def test_python_is_a_builtin_tool():
    from rlfoundry.llm.tools import answer, load_tool

    assert answer(load_tool("python"), "sorted('cab')") == "['a', 'b', 'c']>>"
    assert answer(load_tool("python"), "open('/etc/x', 'w')").startswith("error:")
