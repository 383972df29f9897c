# SPDX-License-Identifier: Apache-2.0
"""A local keyless Sigstore stack (Fulcio + CT log + Rekor v1) on 127.0.0.1.

``sigstore_mock/server.mjs`` wraps npm's ``@sigstore/mock`` handlers in an HTTP
server; this module starts it on random ports in a temp dir, waits for the
``ready.json`` it writes last, and stops it by PID. It is a test double for a
private Sigstore deployment: its trusted root and ClientTrustConfig let
sigstore-python and sigstore-js work fully offline against it.

Identity tokens are JWTs signed with an OIDC key this harness generates; the
server accepts only tokens signed with it (like Fulcio checking the issuer's
JWKS), with ``aud: sigstore``, ``iss``, ``sub``, ``iat`` and ``exp``.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.harness import _proc
from tests.harness._proc import ServiceError
from tests.harness.binaries import require, unavailable

__all__ = ["SigstoreMock", "SigstoreStack", "interop_modules"]

_HERE = Path(__file__).resolve().parent
SERVER = _HERE / "sigstore_mock" / "server.mjs"
#: tests/interop holds the one package.json (and node_modules) for node checks.
INTEROP = _HERE.parent / "interop"


def interop_modules() -> Path:
    """Return tests/interop when its node_modules has what the stack needs.

    Raises:
        pytest.skip.Exception: when missing, outside CI (``pytest.fail`` under CI=true).
    """
    for package in ("@sigstore/mock", "@sigstore/verify", "@sigstore/bundle"):
        if not (INTEROP / "node_modules" / package / "package.json").exists():
            unavailable(f"npm package {package} missing: run `npm ci` in {INTEROP}")
    return INTEROP


@dataclass(frozen=True)
class SigstoreStack:
    """What a test needs from a running stack (all paths are files in its temp dir)."""

    fulcio_url: str
    rekor_url: str
    #: ``trusted_root.json``: Fulcio root, CT log key, Rekor key, validity periods.
    trusted_root_path: Path
    #: ClientTrustConfig (trusted root + signing config pointing at this stack).
    client_trust_config_path: Path
    signing_config_path: Path
    _oidc_key: ec.EllipticCurvePrivateKey = field(repr=False)

    def mint_token(
        self,
        identity: str,
        issuer: str,
        *,
        issued_at: datetime | None = None,
        lifetime: timedelta = timedelta(minutes=10),
        audience: str = "sigstore",
        extra: dict[str, Any] | None = None,
    ) -> str:
        """An OIDC identity token for ``identity`` (``sub``) from ``issuer`` (``iss``).

        The stack's Fulcio certifies ``sub`` as a URI SAN and ``iss`` as the
        OIDC issuer extension. ``issued_at`` defaults to now.
        """
        iat = issued_at or datetime.now(UTC)
        claims: dict[str, Any] = {
            "iss": issuer,
            "sub": identity,
            "aud": audience,
            "iat": int(iat.timestamp()),
            "exp": int((iat + lifetime).timestamp()),
            "email_verified": True,
            **(extra or {}),
        }
        return jwt.encode(claims, self._oidc_key, algorithm="ES256")


@dataclass
class SigstoreMock:
    """The ``node server.mjs`` process; ``start()`` returns its :class:`SigstoreStack`."""

    workdir: Path
    startup_seconds: float = 0.0
    stack: SigstoreStack | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log(self) -> Path:
        return self.workdir / "sigstore-mock.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> SigstoreMock:
        """Generate the OIDC key, start the server, wait for ``ready.json``.

        Raises:
            ServiceError: when node exits or the stack is not ready within 30 s.
        """
        node = require("node")
        modules = interop_modules()
        key = ec.generate_private_key(ec.SECP256R1())
        public = self.workdir / "oidc_public.pem"
        public.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        ready = self.workdir / "ready.json"
        argv = [
            node,
            str(SERVER),
            "--out",
            str(self.workdir),
            "--oidc-public-key",
            str(public),
            "--modules",
            str(modules),
        ]
        t0 = time.monotonic()
        self._proc = _proc.spawn(argv, log=self.log, cwd=self.workdir)
        _proc.wait_until(ready.exists, what="sigstore mock", log=self.log, proc=self._proc)
        info = json.loads(ready.read_text())
        if info.get("pid") != self._proc.pid:
            raise ServiceError(f"stale {ready}: pid {info.get('pid')} is not {self._proc.pid}")
        self.stack = SigstoreStack(
            fulcio_url=info["fulcio_url"],
            rekor_url=info["rekor_url"],
            trusted_root_path=Path(info["trusted_root"]),
            client_trust_config_path=Path(info["client_trust_config"]),
            signing_config_path=Path(info["signing_config"]),
            _oidc_key=key,
        )
        self.startup_seconds = time.monotonic() - t0
        return self

    def stop(self) -> None:
        """SIGTERM by PID, wait, SIGKILL fallback."""
        if self._proc is not None:
            _proc.stop_pid(self._proc.pid, proc=self._proc)
            self._proc = None
