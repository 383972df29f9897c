# SPDX-License-Identifier: Apache-2.0
"""Revocation checks on verified statements (the verifier's last step).

What the verifier can know about an attestation comes from what it verified:
the keys that signed, the subjects, and, for statements of our build type
(``attestor.statement.BUILD_TYPE``), the image, the policy and the finish
time. The attestation id is not in the statement; attestation revocations
carry the hash of what was signed (``AttestationTarget.pae_sha256``) for that
reason, which no re-serialization of the envelope changes.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from attestor.errors import InvalidInput, VerificationError
from attestor.revocation.match import AttestationMeta, RevocationSet
from attestor.revocation.model import TimeWindowTarget, parse_time
from attestor.statement import BUILD_TYPE
from attestor.verify.result import VerifiedStatement

__all__ = ["attestation_metas", "has_time_windows", "raise_if_revoked"]


def _get(doc: object, *path: str) -> object:
    for name in path:
        if not isinstance(doc, Mapping):
            return None
        doc = doc.get(name)
    return doc


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _issued_at(value: object) -> datetime | None:
    try:
        return parse_time(value, "finishedOn")
    except InvalidInput:
        return None


def attestation_metas(
    statement: Mapping[str, Any],
    *,
    keyids: Iterable[str],
    pae_sha256: str | None,
    subject_sha256s: Iterable[str | None],
    with_issued_at: bool = True,
) -> tuple[AttestationMeta, ...]:
    """One :class:`AttestationMeta` per (signing key, subject) of a verified statement.

    Every key that counted toward the threshold, and every subject, is matched:
    an attestation is revoked if any of them is. ``with_issued_at=False`` skips
    parsing the finish time, which only time-window revocations look at.
    """
    predicate = statement.get("predicate")
    ours = _get(predicate, "buildDefinition", "buildType") == BUILD_TYPE
    image = policy_id = policy_version = None
    issued_at = None
    if ours:
        image = _text(_get(predicate, "buildDefinition", "externalParameters", "image",
                           "manifestDigest"))  # fmt: skip
        policy = _get(predicate, "buildDefinition", "internalParameters", "policy")
        policy_id = _text(_get(policy, "id"))
        policy_version = _text(_get(policy, "version"))
        if with_issued_at:
            issued_at = _issued_at(_get(predicate, "runDetails", "metadata", "finishedOn"))
    layers = [None if s is None else f"sha256:{s}" for s in subject_sha256s] or [None]
    keys: list[str | None] = [*keyids] or [None]
    return tuple(
        AttestationMeta(
            layer_digest=layer,
            image_digest=image,
            keyid=keyid,
            policy_id=policy_id,
            policy_version=policy_version,
            issued_at=issued_at,
            pae_sha256=pae_sha256,
        )
        for keyid, layer in itertools.product(keys, layers)
    )


def has_time_windows(revocations: RevocationSet) -> bool:
    """Whether any revocation is a time window (the only kind that needs ``issued_at``)."""
    return any(isinstance(r.target, TimeWindowTarget) for r in revocations)


def raise_if_revoked(
    revocations: RevocationSet, result: VerifiedStatement, *, with_issued_at: bool = True
) -> None:
    """Reject a verified statement that a revocation applies to.

    ``with_issued_at=False`` is for callers that know (:func:`has_time_windows`)
    the set has no time window: the finish time is then not parsed.

    Raises:
        VerificationError: ``"revoked: <reason>"``, with ``detail["revoked"] is True``
            and the revocation's JSON in ``detail["revocation"]``.
    """
    if not len(revocations):
        return
    metas = attestation_metas(
        result.statement,
        keyids=result.keys,
        pae_sha256=result.pae_sha256,
        subject_sha256s=[s.sha256 for s in result.subjects],
        with_issued_at=with_issued_at,
    )
    hits = [h for h in (revocations.match(m) for m in metas) if h is not None]
    if hits:
        hit = min(hits, key=lambda r: r.sequence)
        raise VerificationError(
            f"revoked: {hit.reason}",
            detail={
                "revoked": True,
                "revocation": hit.to_dict(),
                "envelope_sha256": result.envelope_sha256,
                "pae_sha256": result.pae_sha256,
            },
        )
