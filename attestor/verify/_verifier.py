# SPDX-License-Identifier: Apache-2.0
"""The one DSSE verifier: envelope bytes in, a verified statement out."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping, Sequence

from attestor.dsse import Envelope, EnvelopeLimits, parse_envelope
from attestor.errors import ConfigError, VerificationError
from attestor.revocation.match import RevocationSet
from attestor.verify.dsse import verify_envelope_signatures
from attestor.verify.keys import TrustedKey
from attestor.verify.result import VerifiedPayload, VerifiedStatement
from attestor.verify.revocation import has_time_windows, raise_if_revoked
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


def _check_keys(keys: Sequence[TrustedKey], threshold: int) -> None:
    if not keys:
        raise ConfigError("verifier needs at least one trusted key")
    for i, key in enumerate(keys):
        if any(key.public_key == other.public_key for other in keys[:i]):
            raise ConfigError(f"trusted key {key.keyid!r} is listed twice")
    if not 1 <= threshold <= len(keys):
        raise ConfigError(f"threshold must be within 1..{len(keys)}, got {threshold}")


class Verifier:
    """Verifies DSSE envelopes against already-loaded trust material.

    Order of checks: parse (InvalidInput) -> revoked statements (by PAE hash) ->
    signatures with the threshold -> statement -> artifact subject -> predicate
    type and schema -> revocations. Revocations come last so that "revoked" is
    only ever reported for an attestation that is otherwise valid: a forgery is
    reported as a forgery.
    """

    def __init__(
        self,
        *,
        keys: Sequence[TrustedKey],
        threshold: int = 1,
        allowed_predicate_types: frozenset[str] = frozenset({SLSA_PROVENANCE_V1}),
        revoked_statements: frozenset[str] = frozenset(),
        revocations: RevocationSet | None = None,
        predicate_schemas: Mapping[str, str] = DEFAULT_PREDICATE_SCHEMAS,
        limits: EnvelopeLimits = _DEFAULT_LIMITS,
        any_predicate_type: bool = False,
    ) -> None:
        """Build a verifier.

        Args:
            keys: trusted keys; each distinct key counts once toward the threshold.
            threshold: how many distinct keys must have signed (>= 1).
            allowed_predicate_types: predicateTypes accepted (non-empty).
            revoked_statements: revoked attestations by what they sign
                (:func:`attestor.dsse.pae_sha256`), so that no change to the
                unsigned parts of an envelope gets one past this list.
            revocations: the revocation snapshot; its ``version`` belongs in the
                key of any cache of this verifier's results.
            predicate_schemas: predicateType -> schema name in ``schemas/``.
            limits: parsing caps for untrusted envelopes.
            any_predicate_type: accept every predicateType and skip the predicate
                schema (the statement itself is still checked in full). Only for
                tools that verify other parties' attestations, like cosign
                without ``--type``; never for the server's or the agent's rules.

        Raises:
            ConfigError: on no keys, a duplicate key, a threshold that cannot be
                met, an empty predicate set, or an allowed type without a schema.
        """
        _check_keys(keys, threshold)
        if not allowed_predicate_types and not any_predicate_type:
            raise ConfigError("allowed_predicate_types must not be empty")
        missing = sorted(t for t in allowed_predicate_types if t not in predicate_schemas)
        self._any_predicate_type = any_predicate_type
        if missing:
            raise ConfigError(f"no schema for allowed predicateType(s) {missing}")
        self._allowed = frozenset(allowed_predicate_types)
        self._revoked = frozenset(revoked_statements)
        self._revocations = revocations if revocations is not None else RevocationSet()
        self._schemas = dict(predicate_schemas)
        self._limits = limits
        # An empty set matches nothing (raise_if_revoked returns at once).
        self._any_revocations = len(self._revocations) > 0
        # Without a time window, no verification needs to parse a finish time.
        self._with_issued_at = has_time_windows(self._revocations)
        self._use_keys(keys, threshold)

    def _use_keys(self, keys: Sequence[TrustedKey], threshold: int) -> None:
        # The key-dependent state (keys checked by _check_keys first).
        self._keys = tuple(keys)
        self._threshold = threshold
        # Keys revoked outright are tried last (see _verify_signatures).
        self._unrevoked = tuple(
            k for k in self._keys if not self._revocations.is_key_revoked(k.keyid)
        )

    def _verify_signatures(self, parsed: Envelope) -> tuple[TrustedKey, ...]:
        """Meet the threshold with unrevoked keys if possible, else with all keys.

        Without this the answer for an envelope signed by a revoked and an
        unrevoked key would depend on the order of its signatures. If only the
        revoked keys make the threshold, the revocation check that follows
        reports the envelope as revoked.
        """
        if len(self._unrevoked) != len(self._keys) and len(self._unrevoked) >= self._threshold:
            try:
                return verify_envelope_signatures(
                    parsed, self._unrevoked, threshold=self._threshold
                )
            except VerificationError:
                pass  # maybe signed by a revoked key: try again with every key
        return verify_envelope_signatures(parsed, self._keys, threshold=self._threshold)

    def with_keys(self, keys: Sequence[TrustedKey], *, threshold: int = 1) -> Verifier:
        """The same statement, predicate and revocation rules, other trusted keys.

        Used for keyless attestations: the bundle check proves the certificate
        key, then the envelope goes through exactly these rules with that key.

        Raises:
            ConfigError: on no keys, a duplicate key or a threshold that cannot
                be met (the rules were checked when this verifier was built).
        """
        _check_keys(keys, threshold)
        # A copy shares the rules, which no verifier changes after it is built,
        # and what was derived from them: going through the constructor again
        # rescanned the whole revocation set for time windows on every call
        # (~80 us with 1,000 revocations, per bundle in bulk verification).
        other = copy.copy(self)
        other._use_keys(keys, threshold)
        return other

    @property
    def revocation_version(self) -> int:
        """The revocation snapshot's version (highest sequence; 0 when none)."""
        return self._revocations.version

    def verify_envelope(
        self,
        envelope: bytes | Mapping[str, object] | Envelope,
        *,
        artifact_digest: str | None = None,
    ) -> VerifiedStatement:
        """Verify a DSSE envelope and the in-toto Statement it carries.

        Args:
            envelope: the envelope JSON bytes, its decoded JSON object, or an
                envelope already parsed (e.g. the one a Sigstore bundle carries).
            artifact_digest: ``sha256:<hex>`` or ``<hex>``; one subject must match.

        Raises:
            InvalidInput: if the envelope (or the artifact digest) is malformed.
            VerificationError: with the precise reason, for anything that does
                not verify. A revoked attestation gives ``"revoked: <reason>"``
                with ``detail["revoked"] is True`` (``raise_if_revoked``).
        """
        artifact_sha256 = (
            None if artifact_digest is None else normalize_artifact_digest(artifact_digest)
        )
        parsed = (
            envelope
            if isinstance(envelope, Envelope)
            else parse_envelope(envelope, limits=self._limits)
        )
        if self._revoked and (signed := parsed.pae_sha256()) in self._revoked:
            envelope_sha256 = hashlib.sha256(parsed.to_json()).hexdigest()
            raise VerificationError(
                f"attestation pae sha256:{signed} is revoked",
                detail={"revoked": True, "envelope_sha256": envelope_sha256, "pae_sha256": signed},
            )
        signers = self._verify_signatures(parsed)
        statement, subjects = parse_statement(parsed.payload_type, parsed.payload)
        matched = None if artifact_sha256 is None else match_subject(subjects, artifact_sha256)
        predicate_type = (
            statement["predicateType"]
            if self._any_predicate_type
            else check_predicate(
                statement, allowed_predicate_types=self._allowed, predicate_schemas=self._schemas
            )
        )
        result = VerifiedStatement(
            statement=statement,
            payload=parsed.payload,
            envelope=parsed,
            keys=tuple(k.keyid for k in signers),
            predicate_type=predicate_type,
            subjects=subjects,
            matched_subject=matched,
        )
        if self._any_revocations:
            raise_if_revoked(self._revocations, result, with_issued_at=self._with_issued_at)
        return result

    def verify_payload(
        self, envelope: bytes | Mapping[str, object] | Envelope, *, payload_type: str
    ) -> VerifiedPayload:
        """Verify a DSSE envelope that carries something other than a statement.

        The same parsing and signature rules as :meth:`verify_envelope` (keys,
        threshold, revoked keys tried last), for signed documents with their
        own payload type, such as revocation feed pages. The caller parses and
        checks the payload: this only proves who signed which bytes.

        Raises:
            InvalidInput: if the envelope is malformed.
            VerificationError: on another payload type or too few valid signatures.
        """
        parsed = (
            envelope
            if isinstance(envelope, Envelope)
            else parse_envelope(envelope, limits=self._limits)
        )
        if parsed.payload_type != payload_type:
            raise VerificationError(
                f"payloadType {parsed.payload_type[:80]!r} is not {payload_type!r}"
            )
        signers = self._verify_signatures(parsed)
        return VerifiedPayload(
            payload_type=parsed.payload_type,
            payload=parsed.payload,
            keys=tuple(k.keyid for k in signers),
        )
