# SPDX-License-Identifier: Apache-2.0
"""Process plumbing shared by the services: ports, readiness polling, stopping by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tests.harness.binaries import search_path


class ServiceError(RuntimeError):
    """A harness service failed to start or stop (test infrastructure, not product code)."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now.

    The kernel picks it; a tiny race with other processes remains, which the
    start error message (with the log tail) makes easy to recognise.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def tail(path: Path, lines: int = 30) -> str:
    """Return the last ``lines`` lines of a log file, or a note when unreadable."""
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        return f"<no log at {path}: {e}>"
    return "\n".join(text.splitlines()[-lines:])


def env_with_path(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the current environment with the harness search PATH."""
    env = dict(os.environ)
    env["PATH"] = search_path()
    env.update(extra or {})
    return env


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    log: Path,
    timeout: float = 30.0,
    proc: subprocess.Popen[bytes] | None = None,
) -> float:
    """Poll ``ready`` until it returns True; return the seconds it took.

    Raises:
        ServiceError: when ``proc`` exits or ``timeout`` passes first; the
            message carries the log tail.
    """
    start = time.monotonic()
    deadline = start + timeout
    delay = 0.01
    while True:
        if proc is not None and proc.poll() is not None:
            raise ServiceError(
                f"{what} exited with code {proc.returncode} before it was ready; "
                f"log {log}:\n{tail(log)}"
            )
        with contextlib.suppress(OSError):
            if ready():
                return time.monotonic() - start
        if time.monotonic() > deadline:
            raise ServiceError(f"{what} not ready after {timeout:.0f}s; log {log}:\n{tail(log)}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def tcp_open(port: int) -> bool:
    """Return whether something accepts TCP connections on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def spawn(
    argv: Sequence[str], *, log: Path, cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a long-running child with stdout and stderr appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env_with_path(env),
            # Own process group: a Ctrl-C in the terminal must not kill it
            # before our teardown runs in order.
            start_new_session=True,
        )


def pid_alive(pid: int) -> bool:
    """Return whether ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state follows the parenthesised command name, which may hold spaces.
    return stat.rsplit(")", 1)[1].split()[0] not in {"Z", "X"}


def descendants(roots: list[int]) -> list[int]:
    """Return every live descendant PID of ``roots``, deepest first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = list(roots)
    while todo:
        kids = children.get(todo.pop(), [])
        found.extend(kids)
        todo.extend(kids)
    return found[::-1]


def stop_pid(
    pid: int,
    *,
    sig: signal.Signals = signal.SIGTERM,
    timeout: float = 10.0,
    proc: subprocess.Popen[bytes] | None = None,
) -> None:
    """Stop one process by PID: ``sig``, wait up to ``timeout``, then SIGKILL.

    ``proc`` is given when the process is our child, so it is also reaped.
    """
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    if not _wait_gone(pid, timeout, proc):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 5.0, proc)


def _wait_gone(pid: int, timeout: float, proc: subprocess.Popen[bytes] | None) -> bool:
    if proc is not None:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
