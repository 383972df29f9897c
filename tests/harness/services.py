# SPDX-License-Identifier: Apache-2.0
"""Real throwaway services on 127.0.0.1: PostgreSQL, Redis, an OCI registry, containerd.

Each service lives in its own temp dir on a random free port, is started with
``start()`` (which waits until it answers, or raises with the log tail) and is
stopped by PID with ``stop()``. Nothing here is ever killed by name.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness import _proc
from tests.harness._proc import ServiceError
from tests.harness.binaries import require, require_root

__all__ = ["Containerd", "CtrError", "Postgres", "Redis", "Registry", "ServiceError"]

# initdb refuses to run as root; this account owns the cluster when we are root.
_PG_OS_USER = "postgres"
_PG_DB_USER = "attestor"
_PG_DB = "attestor"


@dataclass
class Postgres:
    """A fresh PostgreSQL cluster (``initdb -A trust`` + ``pg_ctl start``)."""

    port: int = 0
    startup_seconds: float = 0.0
    _dir: Path | None = field(default=None, repr=False)
    _pid: int | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``attestor`` database."""
        return f"postgresql+psycopg://{_PG_DB_USER}@127.0.0.1:{self.port}/{_PG_DB}"

    @property
    def dsn(self) -> str:
        """libpq URL of the ``attestor`` database (for psycopg directly)."""
        return f"postgresql://{_PG_DB_USER}@127.0.0.1:{self.port}/{_PG_DB}"

    def start(self) -> Postgres:
        """Create the cluster, start it, create database ``attestor``.

        Raises:
            ServiceError: when initdb, pg_ctl or createdb fail.
        """
        initdb, pg_ctl, createdb = require("initdb"), require("pg_ctl"), require("createdb")
        t0 = time.monotonic()
        # Not under pytest's tmp dir: that is mode 0700 root, and the
        # unprivileged postgres account must be able to reach its files.
        self._dir = Path(tempfile.mkdtemp(prefix="attestor-pg-"))
        data, sock, log = self._dir / "data", self._dir / "sock", self._dir / "postgres.log"
        sock.mkdir()
        log.touch()
        run_as = _pg_os_user()
        if run_as is not None:
            for p in (self._dir, sock, log):
                os.chown(p, run_as.pw_uid, run_as.pw_gid)
        self.port = _proc.free_port()
        self._run(
            [initdb, "-A", "trust", "-U", _PG_DB_USER, "-E", "UTF8", "--no-sync", "-D", str(data)],
            run_as,
            log,
        )
        opts = f"-k {sock} -p {self.port} -h 127.0.0.1 -c fsync=off -c full_page_writes=off"
        self._run(
            [pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", opts, "start"],
            run_as,
            log,
        )
        self._pid = int((data / "postmaster.pid").read_text().split()[0])
        self._run(
            [createdb, "-h", "127.0.0.1", "-p", str(self.port), "-U", _PG_DB_USER, _PG_DB],
            run_as,
            log,
        )
        self.startup_seconds = time.monotonic() - t0
        return self

    def stop(self) -> None:
        """Fast shutdown by PID (SIGINT: disconnect clients), SIGKILL fallback; remove the dir."""
        if self._pid is not None:
            # SIGTERM is "smart" shutdown, which waits for a leaked pool forever.
            _proc.stop_pid(self._pid, sig=signal.SIGINT)
            self._pid = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    @staticmethod
    def _run(argv: list[str], run_as: pwd.struct_passwd | None, log: Path) -> None:
        kwargs: dict[str, object] = {}
        if run_as is not None:
            kwargs = {"user": run_as.pw_uid, "group": run_as.pw_gid, "extra_groups": []}
        res = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=_proc.env_with_path({"LC_ALL": "C", "HOME": str(log.parent)}),
            cwd=log.parent,
            timeout=120,
            **kwargs,  # type: ignore[call-overload]
        )
        if res.returncode != 0:
            raise ServiceError(
                f"{Path(argv[0]).name} failed with code {res.returncode}:\n"
                f"{res.stdout.decode(errors='replace')}{res.stderr.decode(errors='replace')}\n"
                f"log {log}:\n{_proc.tail(log)}"
            )


def _pg_os_user() -> pwd.struct_passwd | None:
    """Return the account to run PostgreSQL as when we are root, else None."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(_PG_OS_USER)
    except KeyError:
        raise ServiceError(
            f"running as root and there is no {_PG_OS_USER!r} user for initdb "
            "(install the postgresql package)"
        ) from None


@dataclass
class _Daemon:
    """A long-running child process we started, with its temp dir and log."""

    workdir: Path
    startup_seconds: float = 0.0
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log(self) -> Path:
        return self.workdir / f"{type(self).__name__.lower()}.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def stop(self) -> None:
        """SIGTERM by PID, wait, SIGKILL fallback."""
        if self._proc is not None:
            _proc.stop_pid(self._proc.pid, proc=self._proc)
            self._proc = None


@dataclass
class Redis(_Daemon):
    """``redis-server`` without persistence."""

    port: int = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Redis:
        """Start and wait for PING.

        Raises:
            ServiceError: when it exits or does not answer within 30 s.
        """
        server = require("redis-server")
        self.port = _proc.free_port()
        argv = [
            server,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            "--daemonize",
            "no",
        ]
        self._proc = _proc.spawn(argv, log=self.log, cwd=self.workdir)
        self.startup_seconds = _proc.wait_until(
            self._pong, what="redis-server", log=self.log, proc=self._proc
        )
        return self

    def _pong(self) -> bool:
        # A raw RESP PING keeps the harness independent of the redis client.
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")


@dataclass
class Registry(_Daemon):
    """Debian's ``docker-registry`` (distribution 2.8) with a filesystem store."""

    port: int = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> Registry:
        """Write config.yml, start and wait for ``GET /v2/`` to answer 200.

        Raises:
            ServiceError: when it exits or does not answer within 30 s.
        """
        binary = require("docker-registry")
        self.port = _proc.free_port()
        storage = self.workdir / "storage"
        storage.mkdir(exist_ok=True)
        config = self.workdir / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n"
            "storage:\n"
            f"  filesystem:\n    rootdirectory: {storage}\n"
            "  delete:\n    enabled: true\n"
            "  maintenance:\n    uploadpurging:\n      enabled: false\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n"
        )
        self._proc = _proc.spawn([binary, "serve", str(config)], log=self.log, cwd=self.workdir)
        self.startup_seconds = _proc.wait_until(
            self._answers, what="docker-registry", log=self.log, proc=self._proc
        )
        return self

    def _answers(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/v2/", timeout=1) as resp:  # noqa: S310
            return bool(resp.status == 200)


class CtrError(subprocess.CalledProcessError):
    """``ctr`` failed; unlike its base class, the message carries ctr's stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstderr: {self.stderr}"


@dataclass
class Containerd(_Daemon):
    """containerd (as root) with its own root, state, sockets and overlayfs."""

    # Unique per instance: runc keeps state in /run/containerd/runc/<ns>/<id>
    # and cgroups in <ns>/<id>, shared by every containerd on the host, so a
    # fixed namespace collides with a concurrent run ("container with given ID
    # already exists").
    namespace: str = field(default_factory=lambda: f"attestor-test-{uuid.uuid4().hex[:8]}")

    @property
    def address(self) -> str:
        return str(self.workdir / "containerd.sock")

    @property
    def root(self) -> Path:
        return self.workdir / "root"

    @property
    def state(self) -> Path:
        return self.workdir / "state"

    @property
    def snapshots_dir(self) -> Path:
        """Where the overlayfs snapshotter keeps ``snapshots/N/fs``."""
        return self.root / "io.containerd.snapshotter.v1.overlayfs" / "snapshots"

    def start(self) -> Containerd:
        """Write a version 2 config, start and wait for ``ctr version``.

        Raises:
            ServiceError: when it exits or does not answer within 30 s.
        """
        require_root()
        if len(self.address) + len(".ttrpc") >= 108:
            # sun_path holds 108 bytes; a long --basetemp would fail obscurely.
            raise ServiceError(f"socket path too long for a unix socket: {self.address}")
        binary = require("containerd")
        require("ctr")
        # The runc shim finds runc on PATH; fail here with a clear reason
        # instead of at the first container start.
        require("runc")
        require("containerd-shim-runc-v2")
        config = self.workdir / "config.toml"
        config.write_text(
            "version = 2\n"
            f'root = "{self.root}"\n'
            f'state = "{self.state}"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",'
            ' "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",'
            ' "io.containerd.snapshotter.v1.aufs"]\n'
            "[grpc]\n"
            f'  address = "{self.address}"\n'
            "[ttrpc]\n"
            f'  address = "{self.address}.ttrpc"\n'
            "[debug]\n"
            '  level = "warn"\n'
            "[plugins]\n"
            # Keeps the default /opt/containerd untouched.
            '  [plugins."io.containerd.internal.v1.opt"]\n'
            f'    path = "{self.workdir / "opt"}"\n'
        )
        self._proc = _proc.spawn([binary, "--config", str(config)], log=self.log, cwd=self.workdir)
        self.startup_seconds = _proc.wait_until(
            self._answers, what="containerd", log=self.log, proc=self._proc
        )
        return self

    def ctr(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run ``ctr -a SOCK -n NS *args`` and return the completed process.

        Raises:
            CtrError: (a ``subprocess.CalledProcessError``) when ``check`` and ctr fails.
        """
        argv = [require("ctr"), "-a", self.address, "-n", self.namespace, *args]
        res = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=_proc.env_with_path(),
            timeout=timeout,
            check=False,
        )
        if check and res.returncode != 0:
            raise CtrError(res.returncode, argv, res.stdout, res.stderr)
        return res

    def stop(self) -> None:
        """Kill our containers and shims by PID, stop containerd by PID, unmount what it left."""
        shims = self._shim_pids()
        # Container processes are the shims' descendants; a shim killed first
        # would orphan them.
        for pid in _proc.descendants(shims):
            _proc.stop_pid(pid, sig=signal.SIGKILL, timeout=5)
        for pid in shims:
            _proc.stop_pid(pid, timeout=5)
        super().stop()
        # containerd may have started "shim delete" helpers meanwhile.
        for pid in self._shim_pids():
            _proc.stop_pid(pid, timeout=5)
        self._unmount_leftovers()
        self._remove_runc_leftovers()

    def _answers(self) -> bool:
        if not Path(self.address).exists():
            return False
        return self.ctr("version", check=False, timeout=5).returncode == 0

    def _shim_pids(self) -> list[int]:
        # Shims outlive containerd; ours are the ones started with our socket.
        needle = f"-address\0{self.address}\0".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if needle in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
        return pids

    def _remove_runc_leftovers(self) -> None:
        # Only our own unique namespace: runc state and the empty cgroups that
        # killed containers leave behind (rmdir removes only empty cgroups).
        shutil.rmtree(f"/run/containerd/runc/{self.namespace}", ignore_errors=True)
        for ns_dir in Path("/sys/fs/cgroup").glob(f"*/{self.namespace}"):
            for cgroup in sorted(ns_dir.glob("**/"), key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):
                    cgroup.rmdir()

    def _unmount_leftovers(self) -> None:
        # Container rootfs mounts under our state dir would block rmtree.
        prefix = str(self.workdir) + "/"
        with contextlib.suppress(OSError):
            mounts = [
                line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
            ]
            for target in sorted((m for m in mounts if m.startswith(prefix)), reverse=True):
                subprocess.run(["umount", "-l", target], check=False, capture_output=True)
