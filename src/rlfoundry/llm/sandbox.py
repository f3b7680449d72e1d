"""A Python sandbox for tool calls and unit-test rewards: a child process with a
timeout, memory and CPU limits, no network, no processes, and writes only inside its
own temporary directory.

    res = run_python("print(sum(range(10)))")          # SandboxResult(ok=True, output="45\\n")
    python_tool("2**100 % 7")                           # "2": the `python` tool

Limits, each refused with a message rather than a crash of the trainer:
- wall time `timeout` (the whole process group is killed), CPU time `cpu_seconds`
  (RLIMIT_CPU), address space `memory_mb` (RLIMIT_AS), file size (RLIMIT_FSIZE);
  (the limits are set by the child itself, first thing: no preexec_fn in a threaded
  trainer);
- a Python audit hook (PEP 578) installed before the code runs refuses sockets,
  subprocesses, exec/fork/kill, ctypes, and any write, remove, rename or mkdir outside
  the temporary working directory; the child runs isolated (`python -I`: no user site,
  no PYTHON* variables) with an empty environment.

An audit hook is a guard against the accidents and reward hacks of a policy's code,
not a security boundary against a determined attacker (C extensions can bypass it);
run untrusted code from the internet in a container or VM as well.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass

_BOOTSTRAP = r"""
import os, resource, sys
mem, cpu, fsize = (int(a) for a in sys.argv[1:4])
resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
code = sys.stdin.read()
root = os.path.realpath(os.getcwd())
deny = {"socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo",
        "socket.sendto", "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn",
        "os.spawn", "os.fork", "os.forkpty", "os.kill", "os.killpg", "ctypes.dlopen",
        "ctypes.dlsym", "ctypes.cdata", "pty.spawn"}
touch = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "shutil.rmtree", "os.chmod",
         "os.chown", "os.symlink", "os.link", "os.truncate", "os.utime"}
WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

def inside(path):
    if isinstance(path, int):
        return True
    p = os.path.realpath(os.fsdecode(path))
    return p == root or p.startswith(root + os.sep)

def hook(event, args):
    if event in deny:
        raise PermissionError(f"sandbox: {event} is refused")
    if event == "open":
        path, mode, flags = args
        writing = (mode is not None and any(c in mode for c in "wax+")) or (flags or 0) & WRITE
        if writing and not inside(path):
            raise PermissionError(f"sandbox: writing {path!r} outside the sandbox is refused")
    elif event in touch and args and not inside(args[0]):
        raise PermissionError(f"sandbox: {event} outside the sandbox is refused")

sys.addaudithook(hook)
del hook
exec(compile(code, "<sandbox>", "exec"), {"__name__": "__main__"})
"""


@dataclass
class SandboxResult:
    ok: bool
    """The code ran to the end without an exception."""
    output: str
    """stdout and stderr, cut to `max_output` characters."""
    reason: str = ""
    """Why it did not finish: 'timeout', 'cpu', 'memory' or the exception's last line."""


def run_python(
    code: str,
    timeout: float = 10.0,
    memory_mb: int = 512,
    cpu_seconds: int = 5,
    file_mb: int = 16,
    max_output: int = 4000,
) -> SandboxResult:
    """Run `code` in a fresh sandboxed interpreter (module docstring); never raises for
    what the code does."""
    if sys.platform == "win32":  # resource limits and process groups are POSIX
        raise OSError("the Python sandbox needs Linux or macOS.")
    with tempfile.TemporaryDirectory(prefix="rlf-sandbox-") as tmp:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-c",
                _BOOTSTRAP,
                str(memory_mb * 2**20),
                str(cpu_seconds),
                str(file_mb * 2**20),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=tmp,
            env={"PYTHONIOENCODING": "utf-8", "HOME": tmp, "TMPDIR": tmp},
            start_new_session=True,  # its own process group, killed as a whole
        )
        try:
            out, _ = proc.communicate(code.encode(), timeout=timeout)
            reason = ""
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            reason = "timeout"
    text = out.decode("utf-8", "replace")
    if not reason and proc.returncode != 0:
        last = text.strip().splitlines()[-1] if text.strip() else ""
        if proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
            reason = "cpu"
        elif "MemoryError" in last:
            reason = "memory"
        else:
            reason = last or f"exit code {proc.returncode}"
    return SandboxResult(not reason, text[:max_output], reason)


def python_tool(expression: str) -> str:
    """The `python` tool: the repr of one Python expression evaluated in the sandbox
    (`<<sum(range(10))=` -> `45>>`); raises when it fails, which the episode reports as
    `error: ...`."""
    res = run_python(f"print(repr(({expression})))", timeout=5.0, cpu_seconds=2)
    if not res.ok:
        raise RuntimeError(res.reason)
    return res.output.strip()
