# SPDX-License-Identifier: Apache-2.0
"""``attestor verify``: bulk-verify envelope or bundle files on a server, for pipelines.

Each file holds one DSSE envelope or one Sigstore bundle (JSON). Without
``--artifact-digest`` an envelope is checked against every sha256 subject of
its own statement (one item per subject): that proves the signature and
statement, not which artifact you hold, so pipelines should pass the digest.
A bundle needs ``--artifact-digest`` unless it carries a DSSE statement or a
sha256 message digest.

Exit codes: 0 every item verified, 1 at least one rejected (or the job
failed), 2 bad input, an unreachable server or an error answer.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import click
import requests

from attestor.errors import InvalidInput
from attestor.json_strict import loads_strict

__all__ = ["command"]

EXIT_REJECTED = 1
EXIT_ERROR = 2
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_PAGE = 1000
_HTTP_TIMEOUT_S = 30


class _CliError(click.ClickException):
    """One line on stderr, exit code 2, never a traceback."""

    exit_code = EXIT_ERROR

    def show(self, file: Any = None) -> None:
        click.echo(f"attestor: {self.message}", err=True)


def _load(path: Path) -> tuple[str, dict[str, Any]]:
    try:
        # Strict, like the server: a file that two parsers could read differently
        # (a repeated member) is refused here rather than sent as one reading.
        doc = loads_strict(path.read_bytes(), what=str(path))
    except OSError as e:
        raise _CliError(f"{path}: cannot read: {e.strerror}") from e
    except InvalidInput as e:
        raise _CliError(e.message) from e
    if not isinstance(doc, dict):
        raise _CliError(f"{path}: expected a JSON object")
    if "payloadType" in doc and "signatures" in doc:
        return "envelope", doc
    if str(doc.get("mediaType", "")).startswith("application/vnd.dev.sigstore.bundle"):
        return "bundle", doc
    raise _CliError(f"{path}: neither a DSSE envelope nor a Sigstore bundle")


def _statement_subjects(envelope: dict[str, Any], path: Path) -> list[str]:
    try:
        statement = json.loads(base64.b64decode(str(envelope["payload"]), validate=False))
        subjects = statement["subject"]
        found = [f"sha256:{s['digest']['sha256']}" for s in subjects if "sha256" in s["digest"]]
    except (KeyError, TypeError, ValueError) as e:
        raise _CliError(
            f"{path}: cannot read the statement's subjects; pass --artifact-digest"
        ) from e
    found = [d for d in found if _DIGEST.fullmatch(d)]
    if not found:
        raise _CliError(f"{path}: the statement has no sha256 subject; pass --artifact-digest")
    return found


def _bundle_digests(bundle: dict[str, Any], path: Path) -> list[str]:
    if isinstance(bundle.get("dsseEnvelope"), dict):
        return _statement_subjects(bundle["dsseEnvelope"], path)
    message = bundle.get("messageSignature", {}).get("messageDigest", {})
    if message.get("algorithm") == "SHA2_256":
        try:
            return [f"sha256:{base64.b64decode(message['digest']).hex()}"]
        except (KeyError, TypeError, ValueError) as e:
            raise _CliError(f"{path}: unreadable message digest") from e
    raise _CliError(f"{path}: cannot tell the artifact digest; pass --artifact-digest")


def build_items(
    files: Sequence[Path], *, artifact_digest: str | None, policy: str | None
) -> tuple[list[dict[str, Any]], list[Path]]:
    """The request items and, for each, the file it came from.

    Raises:
        click.ClickException: A file is unreadable or not an envelope or bundle.
    """
    items: list[dict[str, Any]] = []
    origins: list[Path] = []
    for path in files:
        kind, doc = _load(path)
        if artifact_digest is not None:
            digests = [artifact_digest]
        elif kind == "envelope":
            digests = _statement_subjects(doc, path)
        else:
            digests = _bundle_digests(doc, path)
        for digest in digests:
            item: dict[str, Any] = {kind: doc, "artifact_digest": digest}
            if policy is not None:
                item["policy"] = policy
            items.append(item)
            origins.append(path)
    return items, origins


class _Client:
    def __init__(self, server: str, token: str) -> None:
        self._base = server.rstrip("/")
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        url = path if path.startswith("http") else self._base + path
        try:
            response = self._session.request(method, url, timeout=_HTTP_TIMEOUT_S, **kwargs)
        except requests.RequestException as e:
            raise _CliError(f"cannot reach {self._base}: {type(e).__name__}") from e
        if response.status_code >= 400:
            try:
                problem = response.json()
                detail = problem.get("detail") or problem.get("title")
            except ValueError:
                detail = response.reason
            raise _CliError(f"{method} {path}: HTTP {response.status_code}: {detail}")
        try:
            body = response.json()
        except ValueError as e:
            raise _CliError(f"{method} {path}: the answer is not JSON") from e
        if not isinstance(body, dict):
            raise _CliError(f"{method} {path}: unexpected answer")
        return body


def _wait(
    client: _Client, job_url: str, total: int, *, poll_s: float, deadline: float
) -> dict[str, Any]:
    with click.progressbar(length=total, label="verifying", file=sys.stderr) as bar:
        shown = 0
        while True:
            job = client.call("GET", job_url)
            done = int(job.get("progress", {}).get("done", 0))
            bar.update(max(0, done - shown))
            shown = max(shown, done)
            if job.get("status") in ("finished", "failed"):
                return job
            if time.monotonic() > deadline:
                raise _CliError(f"job {job.get('id')} did not finish in time")
            time.sleep(poll_s)


def _results(client: _Client, job_id: str, total: int) -> Iterable[dict[str, Any]]:
    for offset in range(0, total, _PAGE):
        page = client.call("GET", f"/v1/jobs/{job_id}/results?offset={offset}&limit={_PAGE}")
        yield from page.get("items", [])


@click.command("verify")
@click.option("--server", required=True, help="Base URL of the attestor server.")
@click.option("--token", required=True, envvar="ATTESTOR_TOKEN", help="Pipeline or admin token.")
@click.option("--artifact-digest", help="sha256:<hex> every item must be about.")
@click.option("--policy", help="Policy id each attestation must have been issued under.")
@click.option("--poll-interval", type=click.FloatRange(min=0.05), default=0.5, show_default=True)
@click.option("--timeout", type=click.FloatRange(min=1), default=600, show_default=True)
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
def command(
    server: str,
    token: str,
    artifact_digest: str | None,
    policy: str | None,
    poll_interval: float,
    timeout: float,
    files: tuple[Path, ...],
) -> None:
    """Verify envelope or bundle FILES on the server; exit 0 only if all verified."""
    if artifact_digest is not None and not _DIGEST.fullmatch(artifact_digest):
        raise _CliError('--artifact-digest must be "sha256:<64 lowercase hex>"')
    items, origins = build_items(files, artifact_digest=artifact_digest, policy=policy)
    client = _Client(server, token)
    submitted = client.call(
        "POST",
        "/v1/verifications",
        # Compact: the server's strict parser takes compact JSON on its fast path.
        data=json.dumps({"items": items}, separators=(",", ":"), ensure_ascii=False).encode(),
        headers={"Content-Type": "application/json"},
    )
    job_ref = submitted.get("job", {})
    deadline = time.monotonic() + timeout
    job = _wait(client, str(job_ref["url"]), len(items), poll_s=poll_interval, deadline=deadline)
    if job.get("status") == "failed":
        click.echo(f"job {job_ref['id']} failed: {job.get('error')}", err=True)
        raise SystemExit(EXIT_REJECTED)
    _report(_results(client, str(job_ref["id"]), len(items)), origins, click.echo)


def _report(
    results: Iterable[dict[str, Any]], origins: Sequence[Path], echo: Callable[..., Any]
) -> None:
    verified = rejected = revoked = 0
    seen = 0
    for result in results:
        seen += 1
        if result.get("status") == "verified":
            verified += 1
            continue
        rejected += 1
        revoked += bool(result.get("revoked"))
        origin = origins[int(result["index"])]
        echo(f"REJECTED {origin}: {result.get('reason')}")
    missing = len(origins) - seen
    echo(
        f"{verified} verified, {rejected} rejected ({revoked} revoked)"
        + (f", {missing} without result" if missing else "")
        + f" of {len(origins)}"
    )
    if rejected or missing:
        raise SystemExit(EXIT_REJECTED)
