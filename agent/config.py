# SPDX-License-Identifier: Apache-2.0
"""The agent's configuration: one frozen value built from CLI flags and env.

The token is read from ``--token-file`` or ``ATTESTOR_AGENT_TOKEN`` in
preference to ``--token``: a command-line argument is readable by every user
of the host in ``/proc/<pid>/cmdline``.

Keyless trust (a Sigstore root plus the one accepted signer identity and
issuer) is pinned here, on the node, and never taken from the server.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from agent.integrity.attestation import KeylessTrust
from agent.integrity.budget import BudgetConfig
from agent.integrity.inventory import SUPPORTED_SNAPSHOTTERS, ContainerFilter
from agent.response import RESPONSE_MODES, ResponseMode
from agent.trust import KeyPins, load_operator_keys
from attestor.errors import ConfigError, InvalidInput

if TYPE_CHECKING:
    # sigstore-python costs memory at import; only keyless trust needs it.
    from attestor.verify.trust import SigstoreTrust

__all__ = [
    "AgentConfig",
    "AgentMode",
    "KeylessInstance",
    "load_keyless_root",
    "parse_label_selector",
    "read_token",
]

AgentMode = Literal["node", "sidecar"]
KeylessInstance = Literal["production", "staging"]
#: Largest keyless trust file read (trust.py caps the parse at 4 MiB too).
_MAX_TRUST_BYTES = 4 * 1024 * 1024
#: Largest token file read (a token is a short opaque string).
_MAX_TOKEN_BYTES = 4096


def parse_label_selector(text: str | None) -> dict[str, str]:
    """``k=v[,k2=v2]`` into a dict (equality selectors only).

    Raises:
        ConfigError: on a term without ``=`` or with an empty key.
    """
    out: dict[str, str] = {}
    for term in (text or "").split(","):
        term = term.strip()
        if not term:
            continue
        key, sep, value = term.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"label selector term must be key=value, got {term!r}")
        out[key.strip()] = value.strip()
    return out


def read_token(path: Path) -> str:
    """The first line of a token file, stripped.

    Raises:
        ConfigError: the file cannot be read, is too large or is empty.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read(_MAX_TOKEN_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"cannot read token file {path}: {e.strerror}") from e
    if len(raw) > _MAX_TOKEN_BYTES:
        raise ConfigError(f"token file {path} is over {_MAX_TOKEN_BYTES} bytes")
    token = raw.decode("utf-8", "replace").strip().splitlines()
    if not token or not token[0].strip():
        raise ConfigError(f"token file {path} is empty")
    return token[0].strip()


def load_keyless_root(path: Path) -> SigstoreTrust:
    """A ``trusted_root.json`` or a ClientTrustConfig, told apart by its ``mediaType``.

    Raises:
        ConfigError: the file cannot be read or is neither valid form.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_TRUST_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"cannot read keyless trusted root {path}: {e.strerror}") from e
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ConfigError(f"keyless trusted root {path} is not JSON") from None
    from attestor.verify.trust import load_client_trust_config, load_trusted_root

    media_type = doc.get("mediaType") if isinstance(doc, dict) else None
    try:
        if isinstance(media_type, str) and "clienttrustconfig" in media_type:
            return load_client_trust_config(data, name=path.name)
        return load_trusted_root(data, name=path.name)
    except InvalidInput as e:
        raise ConfigError(f"keyless trusted root: {e.message}") from e


@dataclass(frozen=True)
class AgentConfig:
    """Everything ``run`` and ``check`` need.

    Attributes:
        containerd_address: containerd's gRPC socket.
        namespaces: containerd namespaces covered.
        snapshotter: the node's containerd snapshotter; one the agent cannot
            walk is refused here, at start-up, rather than reported as a
            violation of every container.
        server: attestor server URL (None: ``check`` without a server is an error).
        token: the agent token (never printed: ``repr=False``).
        state_dir: cache, spool and agent state.
        interval: seconds between reconciliation sweeps.
        mode: ``node`` (every container) or ``sidecar`` (one pod / a selector).
        pod_uid: sidecar: cover containers of this pod only.
        labels: sidecar: cover containers with all these labels.
        response: ``alert``, ``pause`` or ``kill`` on a violation.
        full_rehash_every: every N-th sweep re-hashes every file.
        budget: hashing budget.
        heartbeat_interval: seconds between heartbeats.
        server_timeout: seconds per server request.
        attestation_refresh: seconds a layer's attestation status is reused.
        pending_grace: seconds a layer's attestation may stay unresolved
            (``pending``: the server cannot be asked, or has not issued it
            yet) before the layer is an ``unverified`` violation and the
            response applies.
        revocation_poll_interval: seconds between polls of the revocation feed.
        revocation_max_age: seconds after which the newest verified feed page
            is stale (an anomaly); at least the server's refresh + one poll.
        revocation_fail_mode: the response applied to containers first seen
            while the feed is anomalous (``alert``: report only).
        unsafe_allow_plain_http: allow ``http://`` to a non-loopback server.
        ca_bundle: PEM CA certificates that verify the server's TLS
            certificate (None: the system's trust store).
        keyless_trusted_root: trusted_root.json or ClientTrustConfig that
            keyless attestations must chain to.
        keyless_instance: or the public-good root embedded in sigstore-python.
        keyless_identity: the certificate identity (SAN) accepted, exactly.
        keyless_issuer: the OIDC issuer accepted, exactly.
        watch: an inotify watch triggers a check as soon as a checked
            directory changes (``run`` only; the sweeps stay the backstop).
            None: on in node mode, off in sidecar mode (every sidecar on a
            node would draw on root's one per-user watch limit).
        watch_max_watches: cap on the agent's inotify watches (None: half
            of ``/proc/sys/fs/inotify/max_user_watches``).
        pinned_keys: a file of the server's public keys (PEM) an operator
            pins; then the server's key set is never trusted on first use,
            and it must be signed by one of these keys (docs/key-set.md).
    """

    containerd_address: str
    namespaces: tuple[str, ...]
    state_dir: Path
    server: str | None = None
    token: str | None = field(default=None, repr=False)
    interval: float = 30.0
    mode: AgentMode = "node"
    pod_uid: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    response: ResponseMode = "alert"
    full_rehash_every: int = 10
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    heartbeat_interval: float = 30.0
    server_timeout: float = 10.0
    attestation_refresh: float = 300.0
    pending_grace: float = 300.0
    revocation_poll_interval: float = 30.0
    revocation_max_age: float = 900.0
    revocation_fail_mode: ResponseMode = "alert"
    unsafe_allow_plain_http: bool = False
    ca_bundle: Path | None = None
    keyless_trusted_root: Path | None = None
    keyless_instance: KeylessInstance | None = None
    keyless_identity: str | None = None
    keyless_issuer: str | None = None
    watch: bool | None = None
    watch_max_watches: int | None = None
    pinned_keys: Path | None = None
    snapshotter: str = "overlayfs"

    def __post_init__(self) -> None:
        if not self.namespaces or any(not ns for ns in self.namespaces):
            raise ConfigError("at least one non-empty containerd namespace is required")
        if self.snapshotter not in SUPPORTED_SNAPSHOTTERS:
            raise ConfigError(
                f"snapshotter {self.snapshotter[:100]!r} is not supported "
                f"(supported: {', '.join(sorted(SUPPORTED_SNAPSHOTTERS))})"
            )
        if self.interval <= 0 or self.heartbeat_interval <= 0 or self.server_timeout <= 0:
            raise ConfigError("interval, heartbeat_interval and server_timeout must be > 0")
        if self.mode not in ("node", "sidecar"):
            raise ConfigError(f"mode must be node or sidecar, got {self.mode!r}")
        if self.mode == "sidecar" and not (self.pod_uid or self.labels):
            raise ConfigError("sidecar mode needs --pod-uid or --label-selector")
        if self.mode == "node" and (self.pod_uid or self.labels):
            raise ConfigError("--pod-uid and --label-selector are for sidecar mode")
        if self.response not in RESPONSE_MODES:
            raise ConfigError(f"response must be one of {RESPONSE_MODES}, got {self.response!r}")
        if self.revocation_poll_interval <= 0 or self.revocation_max_age <= 0:
            raise ConfigError("revocation_poll_interval and revocation_max_age must be > 0")
        if self.revocation_fail_mode not in RESPONSE_MODES:
            raise ConfigError(
                f"revocation_fail_mode must be one of {RESPONSE_MODES}, "
                f"got {self.revocation_fail_mode!r}"
            )
        if self.full_rehash_every < 1:
            raise ConfigError("full_rehash_every must be >= 1")
        if not 0 <= self.pending_grace < float("inf"):
            raise ConfigError(f"pending_grace must be finite and >= 0, got {self.pending_grace}")
        if self.watch_max_watches is not None and self.watch_max_watches < 1:
            raise ConfigError(f"watch_max_watches must be >= 1, got {self.watch_max_watches}")
        self._check_keyless()
        object.__setattr__(self, "labels", dict(self.labels))
        if self.watch is None:
            object.__setattr__(self, "watch", self.mode == "node")

    def _check_keyless(self) -> None:
        roots = (self.keyless_trusted_root is not None) + (self.keyless_instance is not None)
        if roots > 1:
            raise ConfigError("give --keyless-trusted-root or --keyless-instance, not both")
        if self.keyless_instance not in (None, "production", "staging"):
            raise ConfigError(
                f"keyless_instance must be production or staging, not {self.keyless_instance!r}"
            )
        named = bool(self.keyless_identity) + bool(self.keyless_issuer)
        if (roots or named) and not (roots and named == 2):
            raise ConfigError(
                "keyless trust needs a root (--keyless-trusted-root or --keyless-instance) "
                "and both --keyless-identity and --keyless-issuer"
            )

    def keyless_trust(
        self,
        fetch_bundle: Callable[[str], bytes],
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> KeylessTrust | None:
        """The pinned keyless trust, or None when none is configured.

        Raises:
            ConfigError: the trusted root cannot be read or is invalid.
        """
        if self.keyless_identity is None or self.keyless_issuer is None:
            return None
        from attestor.verify.bundle import BundleVerifier, CertificateIdentity
        from attestor.verify.trust import public_good

        if self.keyless_trusted_root is not None:
            trust = load_keyless_root(self.keyless_trusted_root)
        else:
            try:
                trust = public_good(self.keyless_instance or "production")
            except InvalidInput as e:
                raise ConfigError(e.message) from e
        return KeylessTrust(
            verifier=BundleVerifier(trust),
            identity=CertificateIdentity(self.keyless_identity, self.keyless_issuer),
            fetch_bundle=fetch_bundle,
            now=now,
        )

    @property
    def selector(self) -> ContainerFilter:
        """The container filter of this mode."""
        return ContainerFilter(pod_uid=self.pod_uid, labels=dict(self.labels))

    def key_pins(self, *, persist: bool = True) -> KeyPins:
        """The pinned server keys: in ``state_dir`` (or in memory), seeded by ``pinned_keys``.

        Raises:
            ConfigError: the operator's keys or the pinned-keys file are unusable.
            Unavailable: the operator's keys cannot be written to ``state_dir``.
        """
        operator = load_operator_keys(self.pinned_keys) if self.pinned_keys is not None else None
        return KeyPins(self.state_dir if persist else None, operator_keys=operator)

    @property
    def cache_dir(self) -> Path:
        """Verified attestation cache."""
        return self.state_dir / "cache"

    @property
    def revocation_dir(self) -> Path:
        """Revocation feed cursor and set."""
        return self.state_dir / "revocation"

    @property
    def ledger_path(self) -> Path:
        """Findings already reported (so a restart does not report them again)."""
        return self.state_dir / "ledger.json"

    @property
    def spool_dir(self) -> Path:
        """Durable violation spool."""
        return self.state_dir / "spool" / "violations"

    @property
    def report_spool_dir(self) -> Path:
        """Durable report spool."""
        return self.state_dir / "spool" / "reports"

    def require_server(self) -> tuple[str, str]:
        """The server URL and token.

        Raises:
            ConfigError: when either is missing.
        """
        if not self.server:
            raise ConfigError("--server is required")
        if not self.token:
            raise ConfigError("a token is required: --token-file, ATTESTOR_AGENT_TOKEN or --token")
        return self.server, self.token
