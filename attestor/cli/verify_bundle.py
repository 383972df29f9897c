# SPDX-License-Identifier: Apache-2.0
"""``attestor verify-bundle``: the sigstore-conformance CLI protocol, offline.

    verify-bundle [--staging] --bundle FILE --certificate-identity ID
                  --certificate-oidc-issuer URL [--trusted-root FILE] FILE_OR_DIGEST
    verify-bundle [--staging] --bundle FILE --key PEM [--trusted-root FILE] FILE_OR_DIGEST

The Sigstore layer (certificate, log, identity or key) proves who signed; a
DSSE envelope then goes through :class:`attestor.verify.Verifier` with the
signing key, like every envelope the server and the agent verify: signature,
strict statement, payloadType, subject. ``--predicate-type`` (repeatable)
also restricts the predicateType and checks its registered schema, which is
what the server and the agent always do; without it any predicateType is
accepted, as cosign does without ``--type``.

Exit 0: verified. Exit 1: rejected; exit 2: bad usage. Either way exactly one
line on stderr says why. No network: the public-good roots are the ones
embedded in sigstore-python, and no TUF refresh happens.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import click

from attestor.cli.usage import OneLineUsage
from attestor.errors import Error
from attestor.verify import Verifier
from attestor.verify.bundle import Artifact, BundleVerifier, CertificateIdentity, SigningMaterial
from attestor.verify.keys import load_public_key
from attestor.verify.statement import DEFAULT_PREDICATE_SCHEMAS
from attestor.verify.trust import (
    SigstoreTrust,
    load_client_trust_config,
    load_trusted_root,
    public_good,
)

__all__ = ["command", "resolve_artifact"]

_DIGEST_RE = re.compile(r"^sha256:[0-9a-fA-F]{64}$")
_KEEP_BYTES = 64 * 1024 * 1024
_CLIENT_TRUST_CONFIG = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"


def resolve_artifact(value: str) -> Artifact:
    """A path or ``sha256:<hex>`` as the conformance protocol defines it.

    A digest must have the prefix, the right length, and not name a file on
    disk; anything else is a path.

    Raises:
        attestor.errors.InvalidInput: if the value is neither a digest nor a readable file.
    """
    if _DIGEST_RE.match(value) and not Path(value).exists():
        return Artifact.from_digest(value.lower())
    path = Path(value)
    try:
        size = path.stat().st_size
        if size <= _KEEP_BYTES:
            return Artifact.from_bytes(path.read_bytes())
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        return Artifact.from_digest("sha256:" + digest.hexdigest())
    except OSError as e:
        from attestor.errors import InvalidInput

        raise InvalidInput(f"cannot read artifact {value}: {e.strerror}") from None


def _load_trust(staging: bool, trusted_root: Path | None) -> SigstoreTrust:
    if trusted_root is None:
        return public_good("staging" if staging else "production")
    data = trusted_root.read_bytes()
    try:
        media_type = json.loads(data).get("mediaType")
    except (ValueError, AttributeError):
        media_type = None
    if media_type == _CLIENT_TRUST_CONFIG:
        return load_client_trust_config(data, name=trusted_root.name)
    return load_trusted_root(data, name=trusted_root.name)


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(" ".join(message.split()), err=True)
    sys.exit(code)


class _OneLineCommand(OneLineUsage, click.Command):
    """Usage errors also fit on one stderr line (the protocol reads stderr)."""

    label = "attestor verify-bundle"


@click.command("verify-bundle", cls=_OneLineCommand, help="Verify a Sigstore bundle (offline).")
@click.option("--staging", is_flag=True, help="Use the Sigstore staging trust root.")
@click.option(
    "--bundle",
    "bundle_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The Sigstore bundle to verify.",
)
@click.option("--certificate-identity", help="Expected certificate SAN (exact).")
@click.option("--certificate-identity-regexp", help="Expected certificate SAN (regex).")
@click.option("--certificate-oidc-issuer", help="Expected OIDC issuer (exact).")
@click.option("--certificate-oidc-issuer-regexp", help="Expected OIDC issuer (regex).")
@click.option(
    "--key",
    "key_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="PEM public key of a managed-key bundle.",
)
@click.option(
    "--trusted-root",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Custom trusted_root.json or ClientTrustConfig.",
)
@click.option(
    "--insecure-ignore-tlog",
    is_flag=True,
    help="Accept a --key bundle without a transparency log entry (like cosign's flag); "
    "the server's own key-signed bundles have none.",
)
@click.option(
    "--predicate-type",
    "predicate_types",
    multiple=True,
    help="Allowed predicateType of a DSSE bundle, checked against its schema (repeatable). "
    "Default: any predicateType.",
)
@click.argument("file_or_digest")
def command(
    staging: bool,
    bundle_path: Path,
    certificate_identity: str | None,
    certificate_identity_regexp: str | None,
    certificate_oidc_issuer: str | None,
    certificate_oidc_issuer_regexp: str | None,
    key_path: Path | None,
    trusted_root: Path | None,
    insecure_ignore_tlog: bool,
    predicate_types: tuple[str, ...],
    file_or_digest: str,
) -> None:
    """Verify FILE_OR_DIGEST against a Sigstore bundle; exit 0 only if it verifies."""
    # sigstore-python logs warnings (e.g. root CA in chain) to stderr: keep stderr one line.
    logging.getLogger("sigstore").addHandler(logging.NullHandler())
    logging.getLogger("sigstore").propagate = False
    ident = certificate_identity or certificate_identity_regexp
    issuer = certificate_oidc_issuer or certificate_oidc_issuer_regexp
    if key_path is not None and (ident or issuer):
        _fail("usage: give --key or a certificate identity, not both", 2)
    if key_path is None and not (ident and issuer):
        _fail("usage: give --key, or --certificate-identity and --certificate-oidc-issuer", 2)
    if insecure_ignore_tlog and key_path is None:
        # Keyless trust rests on the log (certificate validity at integrated time).
        _fail("usage: --insecure-ignore-tlog goes only with --key", 2)
    unknown = sorted(set(predicate_types) - set(DEFAULT_PREDICATE_SCHEMAS))
    if unknown:
        _fail(f"usage: no schema for --predicate-type {unknown[0]!r}", 2)
    try:
        trust = _load_trust(staging, trusted_root)
        artifact = resolve_artifact(file_or_digest)
        bundle = bundle_path.read_bytes()
        verifier = BundleVerifier(trust)
        now = datetime.now(UTC)
        if key_path is not None:
            key = load_public_key(key_path.read_bytes())
            material = verifier.signing_material(
                bundle, artifact, now=now, key=key, require_tlog=not insecure_ignore_tlog
            )
        else:
            assert ident is not None and issuer is not None  # noqa: S101 - checked above
            identity = CertificateIdentity(
                identity=ident,
                issuer=issuer,
                identity_regex=certificate_identity is None,
                issuer_regex=certificate_oidc_issuer is None,
            )
            material = verifier.signing_material(bundle, artifact, now=now, identity=identity)
        _verify_statement(material, frozenset(predicate_types))
    except Error as e:
        _fail(f"verification failed: {e.message}")
    except OSError as e:
        _fail(f"verification failed: cannot read {e.filename}: {e.strerror}")
    except re.error as e:
        _fail(f"usage: bad regular expression: {e}", 2)
    who = material.identity if material.signer == "keyless" else f"key {material.key_id}"
    click.echo(f"OK: {file_or_digest} ({material.content}, signed by {who})")


def _verify_statement(material: SigningMaterial, predicate_types: frozenset[str]) -> None:
    """The envelope of a DSSE bundle through the one verifier, with the signing key.

    Raises:
        VerificationError: if the signature or the statement does not verify.
    """
    if material.envelope is None:
        return  # a message signature: verified over the artifact by the Sigstore layer
    rules = Verifier(
        keys=[material.key],
        allowed_predicate_types=predicate_types,
        any_predicate_type=not predicate_types,
    )
    rules.verify_envelope(material.envelope, artifact_digest=material.artifact_sha256)


if __name__ == "__main__":
    command()
