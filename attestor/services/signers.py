# SPDX-License-Identifier: Apache-2.0
"""Who signs a statement: the active local key, or a keyless (Fulcio) identity.

Issuance sees one small interface, :class:`StatementSigner`. Both kinds give
the DSSE envelope that ``/envelope`` serves byte for byte; the keyless one also
gives the full Sigstore bundle (Fulcio certificate + Rekor entry), which is
stored because it cannot be rebuilt from the envelope.

A keyless identity is recorded under a pseudo keyid ``keyless:<sha256 hex of
"issuer\\nidentity">``: a hash, because identities (workflow URIs) may exceed
the keyid column, and the issuer is part of who signed. Idempotence, key
revocation and revocation by keyid then work the same for both kinds.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Protocol

from cryptography import x509
from securesystemslib.signer import Signer  # type: ignore[attr-defined]  # no __all__ upstream

from attestor.errors import UpstreamError
from attestor.keyless import (
    AmbientToken,
    EnvToken,
    FileToken,
    KeylessConfig,
    KeylessSigner,
    TokenSource,
    dsse_envelope,
    parse_identity_token,
    signing_certificate_pem,
)
from attestor.signing.dsse import sign_envelope
from attestor.verify.identity import certificate_identity

__all__ = [
    "KEYLESS_KEYID_PREFIX",
    "KeySigner",
    "KeylessStatementSigner",
    "SignedStatement",
    "SignerIdentity",
    "StatementSigner",
    "keyless_keyid",
    "keyless_statement_signer",
]

KEYLESS_KEYID_PREFIX = "keyless:"


@dataclass(frozen=True)
class SignerIdentity:
    """A keyless signer: the certificate's SAN and its OIDC issuer."""

    identity: str
    issuer: str


@dataclass(frozen=True)
class SignedStatement:
    """One signature's outputs, as stored."""

    #: The DSSE envelope JSON, served verbatim (cosign ``--signature``).
    envelope: bytes
    #: Keyless only: the Sigstore bundle JSON with certificate and tlog entry.
    bundle: bytes | None = None
    #: Keyless only: who the certificate names.
    identity: SignerIdentity | None = None


class StatementSigner(Protocol):
    """Signs serialized in-toto statements for issuance."""

    @property
    def keyid(self) -> str:
        """The keyid stored with (and deduplicating) what this signer signs."""
        ...

    def sign(self, statement: bytes) -> SignedStatement:
        """Sign ``statement`` verbatim.

        Raises:
            ConfigError: the signer's token source stopped yielding a token.
            UpstreamError: a remote signer (Fulcio, Rekor, KMS) failed.
        """
        ...


@dataclass(frozen=True)
class KeySigner:
    """The active local key (a securesystemslib signer)."""

    signer: Signer
    keyid: str

    def sign(self, statement: bytes) -> SignedStatement:
        """DSSE-sign with the key; no bundle is stored (it is derived on demand)."""
        return SignedStatement(
            envelope=sign_envelope(statement, self.signer, keyid=self.keyid).to_json()
        )


def keyless_keyid(issuer: str, identity: str) -> str:
    """The pseudo keyid of a keyless identity (see the module docstring)."""
    digest = hashlib.sha256(f"{issuer}\n{identity}".encode()).hexdigest()
    return KEYLESS_KEYID_PREFIX + digest


@dataclass(frozen=True)
class KeylessStatementSigner:
    """Fulcio + Rekor via sigstore-python; one ephemeral key per statement."""

    signer: KeylessSigner
    keyid: str

    def sign(self, statement: bytes) -> SignedStatement:
        """Keyless-sign; keep the bundle and its envelope (``keyid: ""``, as cosign).

        Raises:
            ConfigError: the token source stopped yielding a usable token.
            UpstreamError: Fulcio, the CT log or Rekor failed, or the bundle
                has no usable certificate.
        """
        bundle = self.signer.sign_statement(statement)
        try:
            envelope = dsse_envelope(bundle).to_json()
            cert = x509.load_pem_x509_certificate(signing_certificate_pem(bundle))
        except Exception as e:  # noqa: BLE001 - InvalidInput or a parse error: Fulcio's fault
            raise UpstreamError(f"keyless signer returned an unusable bundle: {e}") from e
        identity, issuer = certificate_identity(cert)
        return SignedStatement(
            envelope=envelope,
            bundle=json.dumps(bundle, separators=(",", ":")).encode(),
            identity=SignerIdentity(identity=identity, issuer=issuer),
        )


def _token_source(config: KeylessConfig) -> TokenSource:
    if config.token_file is not None:
        return FileToken(config.token_file)
    if config.token_env is not None:
        return EnvToken(config.token_env)
    return AmbientToken()


def keyless_statement_signer(
    signer: KeylessSigner, config: KeylessConfig
) -> KeylessStatementSigner:
    """The keyless signer under the pseudo keyid of the token's current identity.

    Raises:
        ConfigError: the token source yields no usable token.
    """
    token = parse_identity_token(_token_source(config).token())
    return KeylessStatementSigner(signer=signer, keyid=keyless_keyid(token.issuer, token.identity))
