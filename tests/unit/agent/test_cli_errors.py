# SPDX-License-Identifier: Apache-2.0
"""``attestor-agent check --once`` and ``run`` on bad input: exit 2 and one line on stderr.

Logs are JSON lines on stderr too (agent/cli.py), so "one line" counts the
lines that are not log records.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from securesystemslib.signer import CryptoSigner

from agent.check import prepare_state_dir
from agent.cli import main
from attestor.errors import ConfigError
from tests.unit.agent._key_sets import entry, signed_set


def _error_lines(stderr: str) -> list[str]:
    """The stderr lines that are not JSON log records."""
    lines = []
    for line in stderr.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not (isinstance(record, dict) and "level" in record and "message" in record):
            lines.append(line)
    return lines


def _invoke(args: list[str], tmp_path: Path) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, [a.format(tmp=tmp_path) for a in args])
    return result.exit_code, _error_lines(result.stderr)


# Enough configuration to get past the flag checks; nothing listens on port 9.
_OFFLINE = ["--server", "http://127.0.0.1:9", "--token-file", "{tmp}/token",
            "--containerd-address", "{tmp}/none.sock", "--server-timeout", "1"]  # fmt: skip


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("args", "files", "needle"),
    [
        pytest.param(["check", "--once", "--bogus"], (), "--bogus", id="unknown-flag"),
        pytest.param(["run", "--interval", "abc"], (), "--interval", id="bad-float"),
        pytest.param(["check", "--once", "--mode", "pod"], (), "--mode", id="bad-choice"),
        pytest.param(["chek"], (), "chek", id="unknown-command"),
        pytest.param(["check", *_OFFLINE], (), "--once", id="check-without-once"),
        pytest.param(["check", "--once", "--token", "t"], (), "--server", id="no-server"),
        pytest.param(["check", "--once", *_OFFLINE, "--token-file", "{tmp}/missing"], (),
                     "token file", id="missing-token-file"),
        pytest.param(["check", "--once", *_OFFLINE, "--state-dir", "{tmp}/file/state"],
                     ("file",), "state directory", id="check-state-dir-under-a-file"),
        pytest.param(["run", *_OFFLINE, "--state-dir", "{tmp}/file/state"], ("file",),
                     "state directory", id="run-state-dir-under-a-file"),
        pytest.param(["check", "--once", *_OFFLINE, "--state-dir", "{tmp}/state"],
                     ("state/cache",), "cache directory", id="check-cache-dir-is-a-file"),
        pytest.param(["run", *_OFFLINE, "--state-dir", "{tmp}/state"], ("state/spool",),
                     "spool directory", id="run-spool-dir-is-a-file"),
        pytest.param(["check", "--once", *_OFFLINE, "--pinned-keys", "{tmp}/missing.pem"], (),
                     "cannot read pinned keys", id="missing-pinned-keys"),
        pytest.param(["run", *_OFFLINE, "--state-dir", "{tmp}/state", "--pinned-keys",
                      "{tmp}/empty.pem"], ("empty.pem",), "holds no PEM public key",
                     id="pinned-keys-without-a-key"),
        pytest.param(["run", *_OFFLINE, "--snapshotter", "native"], (),
                     "snapshotter 'native' is not supported", id="run-unsupported-snapshotter"),
        pytest.param(["check", "--once", *_OFFLINE, "--snapshotter", "stargz"], (),
                     "snapshotter 'stargz' is not supported", id="check-unsupported-snapshotter"),
    ],
)  # fmt: skip
def test_bad_input_is_exit_2_and_one_line(
    tmp_path: Path, args: list[str], files: tuple[str, ...], needle: str
) -> None:
    (tmp_path / "token").write_text("agent-token-0123456789\n")
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    code, lines = _invoke(args, tmp_path)
    assert code == 2, lines
    assert len(lines) == 1, lines
    assert needle in lines[0]


def test_prepare_state_dir_creates_it_private_or_raises_config_error(tmp_path: Path) -> None:
    state = tmp_path / "a" / "state"
    prepare_state_dir(state)
    prepare_state_dir(state)  # an existing directory is fine
    assert state.is_dir() and state.stat().st_mode & 0o777 == 0o700
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"state directory .*/file/state unusable: Not a dir"):
        prepare_state_dir(tmp_path / "file" / "state")
    with pytest.raises(ConfigError, match="unusable: File exists"):
        prepare_state_dir(tmp_path / "file")


# -- a containerd socket that does not answer (registration must succeed first) --


@pytest.fixture
def registering_server() -> Iterator[str]:
    """Answers ``POST /v1/agents/register`` with one key; 404 problem to anything else."""
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    key = {"keyid": "k1", "algorithm": "ecdsa-p256", "public_key_pem": pem, "status": "active"}
    signer = CryptoSigner.generate_ecdsa()
    key_set = signed_set([entry(signer)], [signer])

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.command == "POST" and self.path == "/v1/agents/register":
                status, kind = 200, "application/json"
                body: dict[str, Any] = {"agent_id": "ag-1", "keys": [key]}
            elif self.command == "GET" and self.path == "/v1/keys/set":
                status, kind = 200, "application/json"
                body = json.loads(key_set)
            else:
                status, kind = 404, "application/problem+json"
                body = {"type": "about:blank", "title": "Not Found", "status": 404,
                        "detail": "no route"}  # fmt: skip
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("socket", ["none.sock", "a-directory"])
def test_check_with_an_unreachable_containerd_socket_is_exit_2_and_one_line(
    tmp_path: Path, registering_server: str, socket: str
) -> None:
    (tmp_path / "a-directory").mkdir()
    (tmp_path / "token").write_text("agent-token-0123456789\n")
    args = ["check", "--once", "--server", registering_server, "--token-file", "{tmp}/token",
            "--containerd-address", "{tmp}/" + socket, "--namespace", "n1"]  # fmt: skip
    code, lines = _invoke(args, tmp_path)
    assert code == 2, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith("attestor-agent: UpstreamError: containerd list containers")
    assert socket in lines[0]
