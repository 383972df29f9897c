# SPDX-License-Identifier: Apache-2.0
"""The one module that uses sigstore-python's non-public API.

sigstore-python keeps some of what a verifier needs (trust-root internals,
log-entry bodies, embedded trust roots) under underscore names, which can
change in any release. Every such use lives here, and
``tests/unit/sigstore_internals/`` pins the behaviour relied on, so that an
upgrade that breaks one fails there first. Each wrapper's docstring names the
internal it wraps and why the public API is not enough (checked against
sigstore-python 4.5.1). The rest of the code uses only these names and
sigstore's public API; ``tests/unit/sigstore_internals/test_only_here.py``
refuses an underscore name of sigstore anywhere else.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

import rekor_types
from cryptography.x509 import Certificate
from rfc3161_client import TimeStampResponse
from sigstore._internal.rekor import _hashedrekord_from_parts
from sigstore._internal.timestamp import TimestampSource, TimestampVerificationResult
from sigstore._internal.trust import KeyringPurpose
from sigstore._utils import cert_is_root_ca as _cert_is_root_ca
from sigstore.errors import Error as SigstoreError
from sigstore.hashes import Hashed
from sigstore.models import Bundle, ClientTrustConfig, TransparencyLogEntry, TrustedRoot
from sigstore.verify import Verifier
from sigstore.verify.policy import VerificationPolicy
from sigstore.verify.verifier import (
    _validate_dsse_v001_entry_body,
    _validate_hashedrekord_v002_dsse_entry_body,
)
from sigstore_models.intoto import Envelope as EnvelopeModel
from sigstore_models.rekor import v1 as rekor_v1
from sigstore_models.trustroot import v1 as trustroot_v1

__all__ = [
    "EMBEDDED_INSTANCES",
    "EnvelopeModel",
    "ExtensibleVerifier",
    "TimestampSource",
    "TimestampVerificationResult",
    "bundle_certificate_chain",
    "bundle_dsse_envelope",
    "bundle_media_type",
    "cert_is_root_ca",
    "client_trust_config_from_model",
    "embedded_trust_file",
    "hashedrekord_from_parts",
    "log_entry_model",
    "trusted_root_from_model",
    "trusted_root_model",
    "validate_dsse_v001_entry_body",
    "validate_hashedrekord_v002_dsse_entry_body",
    "verify_log_entry_proofs",
]

#: The public-good instances whose trust files sigstore-python embeds, and the
#: directory of each under ``sigstore._store`` (the percent-quoted TUF URL).
EMBEDDED_INSTANCES: Mapping[str, str] = MappingProxyType(
    {
        "production": "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev",
        "staging": "https%3A%2F%2Ftuf-repo-cdn.sigstage.dev",
    }
)

# ``TimestampSource`` and ``TimestampVerificationResult`` (sigstore._internal.timestamp)
# are re-exported: the verifier steps below return them, and the public API
# has no other name for "this time came from a TSA" versus "from the log".


def embedded_trust_file(
    instance: Literal["production", "staging"],
    name: Literal["trusted_root.json", "signing_config.v0.2.json"],
) -> bytes:
    """One trust file that sigstore-python ships for a public-good instance.

    Wraps the package data under ``sigstore._store``. The public API reaches
    it only through ``ClientTrustConfig.production()``/``staging()``, which
    go through TUF (a network refresh, or a local TUF cache that may not
    exist); the core reads the shipped copy offline instead.

    Raises:
        KeyError: if ``instance`` is not a public-good instance.
        OSError: if the installed sigstore-python does not ship the file.
        ModuleNotFoundError: if it has no ``_store`` package at all.
    """
    base = importlib.resources.files("sigstore._store").joinpath(EMBEDDED_INSTANCES[instance])
    return base.joinpath(name).read_bytes()


def trusted_root_model(root: TrustedRoot) -> trustroot_v1.TrustedRoot:
    """The protobuf-specs model behind a ``TrustedRoot`` (``TrustedRoot._inner``), not a copy.

    The public API exposes the Fulcio certificates, the TSAs and keyrings,
    but not the log instances themselves: their log ids and the ``validFor``
    of each key, which the extra keyless checks need (the log that an entry
    or an SCT names, valid at the time it signed).
    """
    return root._inner


def trusted_root_from_model(model: trustroot_v1.TrustedRoot) -> TrustedRoot:
    """A ``TrustedRoot`` built from a parsed model (``TrustedRoot(inner)``, "@api private").

    The public constructors read a file path (``TrustedRoot.from_file``) or go
    through TUF; we parse bytes we have already bounded in size, and build
    roots that we changed (the inclusive TSA validity ends).

    Raises:
        sigstore.errors.Error: for an unknown trusted-root media type.
    """
    return TrustedRoot(model)


def client_trust_config_from_model(model: trustroot_v1.ClientTrustConfig) -> ClientTrustConfig:
    """A ``ClientTrustConfig`` from a parsed model (``ClientTrustConfig(inner)``, "@api private").

    The public ``ClientTrustConfig.from_json`` does not check the media type
    and reads only text; the embedded public-good configs are assembled from
    two shipped files, which no public constructor does offline.
    """
    return ClientTrustConfig(model)


def bundle_media_type(bundle: Bundle) -> str:
    """The bundle's ``mediaType`` as written (``Bundle._inner.media_type``).

    ``Bundle`` has no public accessor for it; verification results report it.
    """
    return bundle._inner.media_type


def bundle_dsse_envelope(bundle: Bundle) -> EnvelopeModel | None:
    """The bundle's DSSE envelope as parsed (``Bundle._inner.dsse_envelope``), or None.

    ``Bundle`` exposes its envelope only as the private ``_dsse_envelope``,
    and ``sigstore.dsse.Envelope`` its payload and signatures only through
    ``_inner``; the public API offers ``verify_dsse``, which checks the
    signature itself, while ours is checked by the one DSSE verifier. The
    model has ``payload`` (bytes), ``payload_type`` and ``signatures``
    (each with ``sig`` bytes).
    """
    return bundle._inner.dsse_envelope


def bundle_certificate_chain(bundle: Bundle) -> list[bytes]:
    """DER of each certificate of a v0.1/v0.2 bundle's ``x509CertificateChain``; ``[]`` if none.

    Wraps ``Bundle._inner.verification_material``. The public API gives only
    the leaf (``signing_certificate``); the rest of the chain must be read
    to refuse a root CA in it (protobuf-specs; sigstore-python only warns).
    """
    chain = bundle._inner.verification_material.x509_certificate_chain
    return [] if chain is None else [c.raw_bytes for c in chain.certificates]


def log_entry_model(entry: TransparencyLogEntry) -> rekor_v1.TransparencyLogEntry:
    """The model behind a log entry (``TransparencyLogEntry._inner``), not a copy.

    The public class has no accessors: its log id, index, kind and version,
    integrated time, inclusion promise and canonicalized body are only on
    the model, and results and the entry-body checks need them.
    """
    return entry._inner


def verify_log_entry_proofs(model: rekor_v1.TransparencyLogEntry, root: TrustedRoot) -> None:
    """Inclusion proof, signed checkpoint and SET of one entry, against the root's Rekor keys.

    Wraps ``TransparencyLogEntry(inner)._verify(root.rekor_keyring(KeyringPurpose.VERIFY))``
    (the constructor is "@private", ``_verify`` and ``KeyringPurpose`` are
    internal). sigstore-python runs these checks only inside its
    certificate flow; key-signed bundles need them too, and the RFC 6962 and
    signed-note code is not ours to copy. Expired log keys count (VERIFY).

    Raises:
        sigstore.errors.Error: if a proof, checkpoint or SET does not verify,
            the entry has no inclusion proof with a checkpoint, or the root
            has no Rekor key.
        ValueError: on a malformed proof.
    """
    TransparencyLogEntry(model)._verify(root.rekor_keyring(KeyringPurpose.VERIFY))


def cert_is_root_ca(cert: Certificate) -> bool:
    """Whether ``cert`` is a self-issued, self-signed CA (``sigstore._utils.cert_is_root_ca``).

    No public equivalent; it is the test sigstore-python itself uses when it
    warns about a root CA in a bundle's chain, so both agree on what a root is.

    Raises:
        sigstore.errors.VerificationError: for a certificate that is not X.509 v3.
    """
    return _cert_is_root_ca(cert)


def hashedrekord_from_parts(
    cert: Certificate, signature: bytes, hashed: Hashed
) -> rekor_types.Hashedrekord:
    """The Rekor v1 hashedrekord body for a signature (``sigstore._internal.rekor``).

    Wraps ``_hashedrekord_from_parts``: the exact body sigstore-python
    compares a message-signature entry against, reused for a DSSE signature
    logged as a hashedrekord over sha256(PAE), which 4.5.1 does not accept.
    """
    return _hashedrekord_from_parts(cert, signature, hashed)


def validate_dsse_v001_entry_body(bundle: Bundle) -> None:
    """Rekor v1 ``dsse`` 0.0.1 entry body against the bundle's envelope and certificate.

    Wraps ``sigstore.verify.verifier._validate_dsse_v001_entry_body``; the
    public ``verify_dsse`` runs it only after checking the signature itself.

    Raises:
        sigstore.errors.VerificationError: if the body does not match.
    """
    _validate_dsse_v001_entry_body(bundle)


def validate_hashedrekord_v002_dsse_entry_body(bundle: Bundle) -> None:
    """Rekor v2 ``hashedrekord`` 0.0.2 body (over the PAE digest) against the bundle.

    Wraps ``sigstore.verify.verifier._validate_hashedrekord_v002_dsse_entry_body``,
    for the same reason as :func:`validate_dsse_v001_entry_body`.

    Raises:
        sigstore.errors.VerificationError: if the body does not match.
    """
    _validate_hashedrekord_v002_dsse_entry_body(bundle)


class ExtensibleVerifier(Verifier):
    """sigstore-python's ``Verifier`` with its private steps under public names.

    ``Verifier`` has no extension points: the time sources and the shared
    certificate checks are ``_establish_time`` and
    ``_verify_common_signing_cert``, and a TSA timestamp is checked by
    ``_verify_signed_timestamp``. Subclasses override :meth:`establish_time`
    and :meth:`verify_signing_cert` (sigstore-python's own ``verify_artifact``
    and ``verify_dsse`` then call the overrides), and call the others.

    Unlike ``Verifier``, a root that sigstore-python refuses (no Fulcio CA,
    or no log) still builds: :attr:`unusable` says why, and the subclass
    must refuse keyless verification with it. Timestamps and log entries of
    key-signed bundles can still be checked against such a root.
    """

    def __init__(self, *, trusted_root: TrustedRoot) -> None:
        #: Why sigstore-python refused the root for keyless use, or None.
        self.unusable: str | None = None
        try:
            super().__init__(trusted_root=trusted_root)
        except SigstoreError as e:
            self._trusted_root = trusted_root
            self._fulcio_certificate_chain = []
            self.unusable = str(e)

    @property
    def trusted_root(self) -> TrustedRoot:
        """The root this verifier checks against (``Verifier._trusted_root``)."""
        return self._trusted_root

    def _establish_time(self, bundle: Bundle) -> list[TimestampVerificationResult]:
        return self.establish_time(bundle)

    def _verify_common_signing_cert(self, bundle: Bundle, policy: VerificationPolicy) -> None:
        self.verify_signing_cert(bundle, policy)

    def establish_time(self, bundle: Bundle) -> list[TimestampVerificationResult]:
        """The verified signing times (``Verifier._establish_time``): TSA, then log.

        Raises:
            sigstore.errors.VerificationError: if a time source cannot be used.
        """
        return super()._establish_time(bundle)

    def verify_signing_cert(self, bundle: Bundle, policy: VerificationPolicy) -> None:
        """Certificate chain, SCT, policy, log entry proofs (``_verify_common_signing_cert``).

        Raises:
            sigstore.errors.VerificationError: on any failure.
        """
        super()._verify_common_signing_cert(bundle, policy)

    def verify_timestamp_authority(self, bundle: Bundle) -> list[TimestampVerificationResult]:
        """The bundle's RFC 3161 timestamps that verify (``_verify_timestamp_authority``).

        Raises:
            sigstore.errors.VerificationError: on too many or duplicate timestamps.
        """
        return self._verify_timestamp_authority(bundle)

    def verify_signed_timestamp(
        self, response: TimeStampResponse, signature: bytes
    ) -> TimestampVerificationResult | None:
        """One RFC 3161 timestamp over ``signature`` (``_verify_signed_timestamp``).

        The TSA chain, the message imprint and the TSA's ``validFor``; None if
        no TSA of the root verifies it.
        """
        return self._verify_signed_timestamp(response, signature)
