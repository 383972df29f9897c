# SPDX-License-Identifier: Apache-2.0
"""`attestor serve --certfile --keyfile` serves HTTPS that the agent's client verifies."""

from __future__ import annotations

import datetime
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.server import ServerClient
from attestor.cli.main import cli
from attestor.errors import UpstreamError

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]
NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_pki(d: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1; (ca, cert, key) PEM files."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("test CA"))
        .issuer_name(_name("test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = d / "ca.crt", d / "tls.crt", d / "tls.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def _env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ATTESTOR_", "DATABASE_URL", "REDIS_URL"))
    }
    env["ATTESTOR_DATA_DIR"] = str(tmp_path / "var")
    return env


def test_serve_over_tls_is_verified_by_the_agent_client(tmp_path: Path) -> None:
    ca, cert, key = _write_pki(tmp_path)
    env = _env(tmp_path)
    created = subprocess.run(
        [sys.executable, "-m", "attestor", "token", "create", "--role", "agent"]
        + ["--agent-id", "n1"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    agent_token = created.stdout.strip().splitlines()[-1]
    port = _free_port()
    err = (tmp_path / "err").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "attestor", "serve", "--host", "127.0.0.1", "--port", str(port)]
        + ["--certfile", str(cert), "--keyfile", str(key)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=err,
    )
    base = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = requests.get(base + "/healthz", verify=str(ca), timeout=5)
                break
            except requests.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((tmp_path / "err").read_text()) from None
                time.sleep(0.1)
        assert r.status_code == 200
        assert r.json() == {"status": "ok"}
        assert f"attestor serving on {base}" in (tmp_path / "err").read_text()
        # Plain HTTP to the TLS port gets no HTTP answer.
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)

        client = ServerClient(base, agent_token, timeout=5, ca_bundle=str(ca))
        try:
            registration = client.register(
                hostname="node-1", mode="node", version="0.1.0", namespaces=["k8s.io"]
            )
            assert registration.agent_id == "n1"
            assert registration.keys == client.keys() != ()
        finally:
            client.close()
        # Without the CA, certifi's public roots do not know the throwaway CA.
        unverified = ServerClient(base, agent_token, timeout=5)
        try:
            with pytest.raises(UpstreamError, match="CERTIFICATE_VERIFY_FAILED"):
                unverified.keys()
        finally:
            unverified.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        err.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--certfile", "CERT"], "--certfile and --keyfile go together"),
        (["--keyfile", "KEY"], "--certfile and --keyfile go together"),
        (["--certfile", "MISSING", "--keyfile", "KEY"], "cannot read TLS file MISSING:"),
        (["--certfile", "CERT", "--keyfile", "MISSING"], "cannot read TLS file MISSING:"),
        (["--certfile", "CERT", "--keyfile", "DIR"], "cannot read TLS file DIR:"),
        (["--certfile", "CERT", "--keyfile", "CA"], "cannot load TLS pair"),
    ],
)
def test_tls_usage_errors_are_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    ca, cert, key = _write_pki(tmp_path)
    files = {
        "CERT": str(cert),
        "KEY": str(key),
        "CA": str(ca),
        "MISSING": str(tmp_path / "no"),
        "DIR": str(tmp_path),
    }
    for name, path in files.items():
        message = message.replace(name, path)
    monkeypatch.setenv("ATTESTOR_DATA_DIR", str(tmp_path / "var"))
    result = CliRunner().invoke(cli, ["serve", *(files.get(a, a) for a in args)])
    assert result.exit_code == 2, result.output
    (line,) = result.output.splitlines()
    assert line.startswith("attestor: invalid configuration: ") and message in line
    assert not (tmp_path / "var").exists()


def test_tls_files_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, cert, _ = _write_pki(tmp_path)
    monkeypatch.setenv("ATTESTOR_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("ATTESTOR_TLS_CERT", str(cert))
    monkeypatch.delenv("ATTESTOR_TLS_KEY", raising=False)
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 2
    assert "--certfile and --keyfile go together" in result.output
