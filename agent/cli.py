# SPDX-License-Identifier: Apache-2.0
"""``attestor-agent`` console script: ``run`` (the daemon) and ``check --once``.

Exit codes: 0 clean, 1 violations found, 2 error (one
line on stderr). Logs are JSON lines on stderr; ``check`` prints its report
as JSON on stdout.

The token: prefer ``--token-file`` or the ``ATTESTOR_AGENT_TOKEN``
environment variable. ``--token`` works but puts the secret in
``/proc/<pid>/cmdline``, readable by every user of the host.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click

from agent.cache import AttestationCache
from agent.check import (
    EXIT_CLEAN,
    EXIT_ERROR,
    EXIT_VIOLATIONS,
    check_once,
    feed_follower,
    prepare_state_dir,
)
from agent.config import AgentConfig, parse_label_selector, read_token
from agent.containerd import ContainerdClient
from agent.daemon import Daemon
from agent.integrity.budget import BudgetConfig
from agent.integrity.ledger import Ledger
from agent.response import RESPONSE_MODES
from agent.server import ServerClient, fetch_bundle, report_sender, violation_sender
from agent.spool import Spool
from attestor.cli.usage import OneLineUsage
from attestor.errors import ConfigError, Error

__all__ = ["EXIT_CLEAN", "EXIT_ERROR", "EXIT_VIOLATIONS", "JsonFormatter", "main"]

_F = TypeVar("_F", bound=Callable[..., Any])
# LogRecord attributes that are not "extra" fields.
_RESERVED = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as compact JSON."""
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, separators=(",", ":"))


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def _common_options(func: _F) -> _F:
    """The flags ``run`` and ``check`` share."""
    options = [
        click.option(
            "--containerd-address",
            default="/run/containerd/containerd.sock",
            show_default=True,
            envvar="ATTESTOR_AGENT_CONTAINERD_ADDRESS",
            help="containerd gRPC socket.",
        ),
        click.option(
            "--namespace",
            "namespaces",
            multiple=True,
            default=("k8s.io",),
            show_default=True,
            envvar="ATTESTOR_AGENT_NAMESPACE",
            help="containerd namespace to cover (repeatable).",
        ),
        click.option(
            "--snapshotter",
            default="overlayfs",
            show_default=True,
            envvar="ATTESTOR_AGENT_SNAPSHOTTER",
            help="the node's containerd snapshotter; only overlayfs is supported (a container "
            "on another one is an unverified violation).",
        ),
        click.option("--server", envvar="ATTESTOR_AGENT_SERVER", help="attestor server URL."),
        click.option(
            "--token",
            envvar="ATTESTOR_AGENT_TOKEN",
            help="agent token; visible in /proc/PID/cmdline: prefer --token-file or the env var.",
        ),
        click.option(
            "--token-file",
            type=click.Path(dir_okay=False, path_type=Path),
            envvar="ATTESTOR_AGENT_TOKEN_FILE",
            help="file holding the agent token (first line).",
        ),
        click.option(
            "--state-dir",
            type=click.Path(file_okay=False, path_type=Path),
            envvar="ATTESTOR_AGENT_STATE_DIR",
            help="cache and spool directory.",
        ),
        click.option(
            "--interval",
            type=click.FloatRange(min=0.1),
            default=30.0,
            show_default=True,
            help="seconds between reconciliation sweeps.",
        ),
        click.option(
            "--mode", type=click.Choice(["node", "sidecar"]), default="node", show_default=True
        ),
        click.option("--pod-uid", help="sidecar: cover the containers of this pod only."),
        click.option("--label-selector", help="sidecar: cover containers with labels k=v[,k=v]."),
        click.option(
            "--response",
            type=click.Choice(RESPONSE_MODES),
            default="alert",
            show_default=True,
            envvar="ATTESTOR_AGENT_RESPONSE",
            help="what to do to a container with a violation.",
        ),
        click.option(
            "--full-rehash-every",
            type=click.IntRange(min=1),
            default=10,
            show_default=True,
            help="every N-th sweep re-hashes every file.",
        ),
        click.option(
            "--pending-grace",
            type=click.FloatRange(min=0, max=365 * 86400),
            default=300.0,
            show_default=True,
            envvar="ATTESTOR_AGENT_PENDING_GRACE",
            help="seconds a layer's attestation may stay unresolved before it is a violation, "
            "counted from its first sighting by any run (kept in the state dir); check: a "
            "pending layer within the grace is an error.",
        ),
        click.option(
            "--max-hash-rate",
            type=click.FloatRange(min=1),
            default=None,
            help="bytes hashed per second (default: unlimited).",
        ),
        click.option("--server-timeout", type=click.FloatRange(min=0.1), default=10.0),
        click.option(
            "--revocation-poll-interval",
            type=click.FloatRange(min=0.1),
            default=30.0,
            show_default=True,
            help="seconds between polls of the server's revocation feed.",
        ),
        click.option(
            "--revocation-max-age",
            type=click.FloatRange(min=1),
            default=900.0,
            show_default=True,
            help="seconds after which an unrefreshed revocation feed is an anomaly.",
        ),
        click.option(
            "--revocation-fail-mode",
            type=click.Choice(RESPONSE_MODES),
            default="alert",
            show_default=True,
            help="response to containers started while the revocation feed is anomalous.",
        ),
        click.option(
            "--ca-bundle",
            type=click.Path(dir_okay=False, path_type=Path),
            envvar="ATTESTOR_AGENT_CA_BUNDLE",
            help="PEM CA certificates that verify the server (default: certifi's public CAs).",
        ),
        click.option(
            "--keyless-trusted-root",
            type=click.Path(dir_okay=False, path_type=Path),
            envvar="ATTESTOR_AGENT_KEYLESS_TRUSTED_ROOT",
            help="trusted_root.json or ClientTrustConfig for keyless attestations.",
        ),
        click.option(
            "--keyless-instance",
            type=click.Choice(["production", "staging"]),
            envvar="ATTESTOR_AGENT_KEYLESS_INSTANCE",
            help="or the public-good Sigstore root embedded in the agent (offline).",
        ),
        click.option(
            "--keyless-identity",
            envvar="ATTESTOR_AGENT_KEYLESS_IDENTITY",
            help="the keyless signer's certificate identity (exact match).",
        ),
        click.option(
            "--keyless-issuer",
            envvar="ATTESTOR_AGENT_KEYLESS_ISSUER",
            help="the keyless signer's OIDC issuer URL (exact match).",
        ),
        click.option(
            "--pinned-keys",
            type=click.Path(dir_okay=False, path_type=Path),
            envvar="ATTESTOR_AGENT_PINNED_KEYS",
            help="PEM public keys of the server to pin; the server's key set must be "
            "signed by one of them (default: pin the server's set at first registration).",
        ),
        click.option(
            "--unsafe-allow-plain-http",
            is_flag=True,
            help="allow http:// to a non-loopback server (the token travels in clear).",
        ),
        click.option("--log-level", default="info", show_default=True),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _config(options: dict[str, Any]) -> AgentConfig:
    token = options["token"]
    if options["token_file"] is not None:
        token = read_token(options["token_file"])
    return AgentConfig(
        containerd_address=options["containerd_address"],
        namespaces=tuple(options["namespaces"]),
        snapshotter=options["snapshotter"],
        state_dir=options["state_dir"] or Path("/var/lib/attestor-agent"),
        server=options["server"],
        token=token,
        interval=options["interval"],
        mode=options["mode"],
        pod_uid=options["pod_uid"],
        labels=parse_label_selector(options["label_selector"]),
        response=options["response"],
        full_rehash_every=options["full_rehash_every"],
        pending_grace=options["pending_grace"],
        budget=BudgetConfig(bytes_per_second=options["max_hash_rate"]),
        server_timeout=options["server_timeout"],
        revocation_poll_interval=options["revocation_poll_interval"],
        revocation_max_age=options["revocation_max_age"],
        revocation_fail_mode=options["revocation_fail_mode"],
        unsafe_allow_plain_http=options["unsafe_allow_plain_http"],
        ca_bundle=options["ca_bundle"],
        keyless_trusted_root=options["keyless_trusted_root"],
        keyless_instance=options["keyless_instance"],
        keyless_identity=options["keyless_identity"],
        keyless_issuer=options["keyless_issuer"],
        watch=options.get("watch"),
        watch_max_watches=options.get("watch_max_watches"),
        pinned_keys=options["pinned_keys"],
    )


def _warn_token_flag() -> None:
    ctx = click.get_current_context()
    if ctx.get_parameter_source("token") is click.core.ParameterSource.COMMANDLINE:
        logging.getLogger("attestor.agent").warning(
            "--token is visible in /proc/PID/cmdline; use --token-file or ATTESTOR_AGENT_TOKEN"
        )


@contextmanager
def _session(config: AgentConfig) -> Iterator[tuple[ServerClient, list[ContainerdClient]]]:
    url, token = config.require_server()
    if config.ca_bundle is not None:
        _check_readable(config.ca_bundle)
    server = ServerClient(
        url,
        token,
        timeout=config.server_timeout,
        ca_bundle=str(config.ca_bundle) if config.ca_bundle is not None else None,
        unsafe_allow_plain_http=config.unsafe_allow_plain_http,
    )
    clients = [
        ContainerdClient(config.containerd_address, ns, snapshotter=config.snapshotter)
        for ns in config.namespaces
    ]
    try:
        yield server, clients
    finally:
        for client in clients:
            client.close()
        server.close()


def _check_readable(path: Path) -> None:
    # urllib3 would only fail to load it at the first request, after start-up.
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as e:
        raise ConfigError(f"cannot read CA bundle {path}: {e.strerror}") from e


def _fail(error: Error) -> None:
    click.echo(f"attestor-agent: {type(error).__name__}: {error.message}", err=True)
    raise SystemExit(EXIT_ERROR)


class _OneLineGroup(OneLineUsage, click.Group):
    """Usage errors are one line on stderr and exit 2, not click's usage block."""

    label = "attestor-agent"


@click.group(cls=_OneLineGroup)
def main() -> None:
    """Verify at runtime that container layers match their attestations."""


@main.command()
@_common_options
@click.option(
    "--watch/--no-watch",
    default=None,
    envvar="ATTESTOR_AGENT_WATCH",
    help="inotify watch: check a layer or upperdir as soon as it changes "
    "[default: on in node mode, off in sidecar mode].",
)
@click.option(
    "--watch-max-watches",
    type=click.IntRange(min=1),
    default=None,
    envvar="ATTESTOR_AGENT_WATCH_MAX_WATCHES",
    help="cap on inotify watches; directories beyond it are checked at --interval "
    "[default: half of fs.inotify.max_user_watches].",
)
def run(**options: Any) -> None:
    """Run the agent daemon."""
    _setup_logging(options["log_level"])
    _warn_token_flag()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    try:
        config = _config(options)
        prepare_state_dir(config.state_dir)
        with ExitStack() as stack, _session(config) as (server, clients):
            violations = stack.enter_context(Spool.open(config.spool_dir))
            reports = stack.enter_context(Spool.open(config.report_spool_dir))
            cache = stack.enter_context(AttestationCache.open(config.cache_dir))
            daemon = Daemon(
                config,
                server=server,
                clients=clients,
                violations=violations,
                reports=reports,
                violation_sender=violation_sender(server),
                report_sender=report_sender(server),
                cache=cache,
                revocations=feed_follower(server, config),
                ledger=Ledger.open(config.ledger_path),
                keyless=config.keyless_trust(lambda i: fetch_bundle(server, i)),
                pins=config.key_pins(),
            )
            signal.signal(signal.SIGTERM, on_signal)
            signal.signal(signal.SIGINT, on_signal)
            daemon.run(stop)
    except Error as e:
        _fail(e)


@main.command()
@_common_options
@click.option("--once", is_flag=True, help="do one full sweep and print a JSON report.")
def check(**options: Any) -> None:
    """Check every covered container once; exit 0 clean, 1 violations, 2 error."""
    _setup_logging(options["log_level"])
    _warn_token_flag()
    if not options["once"]:
        _fail(ConfigError("check needs --once (continuous checking is `run`)"))
    try:
        config = _config(options)
        with ExitStack() as stack, _session(config) as (server, clients):
            cache = None
            if options["state_dir"] is not None:
                prepare_state_dir(config.state_dir)
                cache = stack.enter_context(AttestationCache.open(config.cache_dir))
                feed_dir = config.revocation_dir
            else:
                # No state: the feed is read from cursor 0 into a throwaway dir.
                feed_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            report = check_once(
                config,
                server=server,
                containerd=clients,
                now=datetime.now(UTC),
                clock=time.monotonic,
                cache=cache,
                revocations=feed_follower(server, config, state_dir=feed_dir),
                keyless=config.keyless_trust(lambda i: fetch_bundle(server, i)),
                pins=config.key_pins(persist=options["state_dir"] is not None),
            )
    except Error as e:
        _fail(e)
    click.echo(json.dumps(report.to_json(), indent=2))
    raise SystemExit(report.exit_code)
