# SPDX-License-Identifier: Apache-2.0
"""The one DSSE verifier: envelope bytes in, a verified statement out."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from attestor.dsse import EnvelopeLimits, parse_envelope
from attestor.errors import ConfigError, VerificationError
from attestor.verify.dsse import verify_envelope_signatures
from attestor.verify.keys import TrustedKey
from attestor.verify.result import VerifiedStatement
from attestor.verify.statement import (
    DEFAULT_PREDICATE_SCHEMAS,
    SLSA_PROVENANCE_V1,
    check_predicate,
    match_subject,
    normalize_artifact_digest,
    parse_statement,
)

__all__ = ["Verifier"]

_DEFAULT_LIMITS = EnvelopeLimits()


class Verifier:
    """Verifies DSSE envelopes against already-loaded trust material.

    Order of checks: parse (InvalidInput) -> revocation -> signatures with the
    threshold -> statement -> artifact subject -> predicate type and schema.
    """

    def __init__(
        self,
        *,
        keys: Sequence[TrustedKey],
        threshold: int = 1,
        allowed_predicate_types: frozenset[str] = frozenset({SLSA_PROVENANCE_V1}),
        revoked_envelopes: frozenset[str] = frozenset(),
        predicate_schemas: Mapping[str, str] = DEFAULT_PREDICATE_SCHEMAS,
        limits: EnvelopeLimits = _DEFAULT_LIMITS,
    ) -> None:
        """Build a verifier.

        Args:
            keys: trusted keys; each distinct key counts once toward the threshold.
            threshold: how many distinct keys must have signed (>= 1).
            allowed_predicate_types: predicateTypes accepted (non-empty).
            revoked_envelopes: sha256 hex of revoked envelopes (``envelope_sha256``).
            predicate_schemas: predicateType -> schema name in ``schemas/``.
            limits: parsing caps for untrusted envelopes.

        Raises:
            ConfigError: on no keys, a duplicate key, a threshold that cannot be
                met, an empty predicate set, or an allowed type without a schema.
        """
        if not keys:
            raise ConfigError("verifier needs at least one trusted key")
        for i, key in enumerate(keys):
            if any(key.public_key == other.public_key for other in keys[:i]):
                raise ConfigError(f"trusted key {key.keyid!r} is listed twice")
        if not 1 <= threshold <= len(keys):
            raise ConfigError(f"threshold must be within 1..{len(keys)}, got {threshold}")
        if not allowed_predicate_types:
            raise ConfigError("allowed_predicate_types must not be empty")
        missing = sorted(t for t in allowed_predicate_types if t not in predicate_schemas)
        if missing:
            raise ConfigError(f"no schema for allowed predicateType(s) {missing}")
        self._keys = tuple(keys)
        self._threshold = threshold
        self._allowed = frozenset(allowed_predicate_types)
        self._revoked = frozenset(revoked_envelopes)
        self._schemas = dict(predicate_schemas)
        self._limits = limits

    def verify_envelope(
        self, envelope: bytes | Mapping[str, object], *, artifact_digest: str | None = None
    ) -> VerifiedStatement:
        """Verify a DSSE envelope and the in-toto Statement it carries.

        Args:
            envelope: the envelope JSON bytes, or its decoded JSON object.
            artifact_digest: ``sha256:<hex>`` or ``<hex>``; one subject must match.

        Raises:
            InvalidInput: if the envelope (or the artifact digest) is malformed.
            VerificationError: with the precise reason, for anything that does
                not verify.
        """
        artifact_sha256 = (
            None if artifact_digest is None else normalize_artifact_digest(artifact_digest)
        )
        parsed = parse_envelope(envelope, limits=self._limits)
        envelope_sha256 = hashlib.sha256(parsed.to_json()).hexdigest()
        if envelope_sha256 in self._revoked:
            raise VerificationError(f"envelope sha256:{envelope_sha256} is revoked")
        signers = verify_envelope_signatures(parsed, self._keys, threshold=self._threshold)
        statement, subjects = parse_statement(parsed.payload_type, parsed.payload)
        matched = None if artifact_sha256 is None else match_subject(subjects, artifact_sha256)
        predicate_type = check_predicate(
            statement, allowed_predicate_types=self._allowed, predicate_schemas=self._schemas
        )
        return VerifiedStatement(
            statement=statement,
            payload_sha256=hashlib.sha256(parsed.payload).hexdigest(),
            envelope_sha256=envelope_sha256,
            keys=tuple(k.keyid for k in signers),
            predicate_type=predicate_type,
            subjects=subjects,
            matched_subject=matched,
        )
