# SPDX-License-Identifier: Apache-2.0
"""Certificate identity policy: SAN and OIDC issuer, each exact or regex.

sigstore-python's ``Identity`` matches exactly only; the regex form (cosign's
``--certificate-identity-regexp``) is written here. Exact matching delegates
to ``Identity`` so its behaviour is unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography.hazmat import asn1
from cryptography.x509 import (
    Certificate,
    ExtensionNotFound,
    ObjectIdentifier,
    OtherName,
    RFC822Name,
    SubjectAlternativeName,
    UniformResourceIdentifier,
    UnrecognizedExtension,
)
from sigstore.errors import VerificationError as SigstoreVerificationError
from sigstore.verify.policy import Identity

__all__ = ["CertificateIdentity", "IdentityPolicy", "certificate_identity"]

_OTHERNAME_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.7")
_ISSUER_V1_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
_ISSUER_V2_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")


@dataclass(frozen=True)
class CertificateIdentity:
    """The expected signer of a keyless bundle.

    ``identity`` is the certificate SAN (email, URI or Sigstore other-name),
    ``issuer`` the OIDC issuer. With a ``*_regex`` flag the value is a Python
    regular expression that must match the whole value (``re.fullmatch``).
    """

    identity: str
    issuer: str
    identity_regex: bool = False
    issuer_regex: bool = False

    def __post_init__(self) -> None:
        if not self.identity or not self.issuer:
            raise ValueError("identity and issuer must both be non-empty")


def certificate_identity(cert: Certificate) -> tuple[str, str]:
    """(first SAN, OIDC issuer) of a Fulcio certificate, for results and messages."""
    sans = _sans(cert)
    return (sans[0] if sans else "", _issuer(cert) or "")


def _sans(cert: Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(SubjectAlternativeName).value
    except ExtensionNotFound:
        return []
    values: list[str] = list(ext.get_values_for_type(RFC822Name))
    values += ext.get_values_for_type(UniformResourceIdentifier)
    values += [
        o.value.decode("utf-8", "replace")
        for o in ext.get_values_for_type(OtherName)
        if o.type_id == _OTHERNAME_OID
    ]
    return values


def _issuer(cert: Certificate) -> str | None:
    for oid, der in ((_ISSUER_V2_OID, True), (_ISSUER_V1_OID, False)):
        try:
            value = cert.extensions.get_extension_for_oid(oid).value
        except ExtensionNotFound:
            continue
        if not isinstance(value, UnrecognizedExtension):
            continue
        try:
            return asn1.decode_der(str, value.value) if der else value.value.decode()
        except (ValueError, UnicodeDecodeError):
            continue
    return None


class IdentityPolicy:
    """A sigstore-python ``VerificationPolicy`` for a :class:`CertificateIdentity`."""

    def __init__(self, expected: CertificateIdentity) -> None:
        self._expected = expected
        self._san_re = re.compile(expected.identity) if expected.identity_regex else None
        self._iss_re = re.compile(expected.issuer) if expected.issuer_regex else None

    def verify(self, cert: Certificate) -> None:
        """Raise sigstore's ``VerificationError`` unless ``cert`` matches.

        Raises:
            sigstore.errors.VerificationError: on a SAN or issuer mismatch.
        """
        if self._san_re is None and self._iss_re is None:
            Identity(identity=self._expected.identity, issuer=self._expected.issuer).verify(cert)
            return
        issuer = _issuer(cert)
        if issuer is None:
            raise SigstoreVerificationError("certificate has no OIDC issuer extension")
        if self._iss_re is not None:
            if not self._iss_re.fullmatch(issuer):
                raise SigstoreVerificationError(
                    f"OIDC issuer {issuer!r} does not match {self._expected.issuer!r}"
                )
        elif issuer != self._expected.issuer:
            raise SigstoreVerificationError(
                f"OIDC issuer {issuer!r} is not {self._expected.issuer!r}"
            )
        sans = _sans(cert)
        if self._san_re is not None:
            ok = any(self._san_re.fullmatch(s) for s in sans)
        else:
            ok = self._expected.identity in sans
        if not ok:
            raise SigstoreVerificationError(
                f"certificate SANs {sans} do not match {self._expected.identity!r}"
            )
