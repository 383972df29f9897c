# SPDX-License-Identifier: Apache-2.0
"""The ``reverify`` job: re-check stored attestations and update their status.

Enqueued after a key or policy revocation (scope ``key`` / ``policy``) and
periodically (scope ``all``; scheduling is in :mod:`attestor.jobs.reverify`,
which uses the runners: the task itself imports none).

Each ``valid`` attestation in scope is checked, cheapest first:
1. the revocation set (server-side meta: id, image, recorded issue time);
2. a key row revoked through the keys API -> a key revocation is recorded;
3. the verification core (:class:`attestor.verify.Verifier`) on the stored
   envelope with every server key and the revocation set;
4. for a policy whose loaded version differs from the recorded one, the
   current policy against the attestation's image.
Whatever fails 3 or 4 gets an attestation revocation (actor
``system:reverify``), so history, statuses and the agent feed agree. A policy
that is no longer loaded is skipped, never mass-revoked: an emptied policy
directory is an operator mistake, and revocation cannot be undone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy.orm import Session, sessionmaker

from attestor.errors import ConfigError, InvalidInput, Unavailable, VerificationError
from attestor.jobqueue import TaskContext
from attestor.policy import PolicySet, evaluate
from attestor.revocation import AttestationTarget, RevocationSet
from attestor.services import revocation as service
from attestor.services.policy_db import DatabasePolicies
from attestor.store import revocations as revocation_store
from attestor.store import signing_keys
from attestor.store.revocations import StoredAttestation
from attestor.verify import TrustedKey, Verifier

__all__ = ["SWEEP_ACTOR", "reverify_task"]

log = logging.getLogger(__name__)

SWEEP_ACTOR: Final = "system:reverify"
_BATCH: Final = 200
_SCOPES: Final = ("all", "key", "policy")


@dataclass(frozen=True)
class _Image:
    registry: str
    repository: str


@dataclass(frozen=True)
class _Decision:
    """What to do with one attestation: flip its status, or record a revocation."""

    item: StoredAttestation
    #: None: the revocation set already covers it; flip the status only.
    new_reason: str | None
    revoke_key: bool = False


def _trusted_keys(session: Session) -> tuple[list[TrustedKey], frozenset[str]]:
    rows = signing_keys.list_keys(session)
    keys = [TrustedKey.from_pem(row.public_key_pem, keyid=row.keyid) for row in rows]
    return keys, frozenset(row.keyid for row in rows if row.status == "revoked")


def _policies(session_factory: sessionmaker[Session]) -> PolicySet | None:
    try:
        return DatabasePolicies(session_factory).current()
    except (ConfigError, Unavailable) as e:
        log.warning("re-verification: policies not loaded, policy checks skipped: %s", e)
        return None


def _decide(
    item: StoredAttestation,
    *,
    revset: RevocationSet,
    revoked_keys: frozenset[str],
    verifier: Verifier | None,
    policies: PolicySet | None,
) -> _Decision | None:
    meta = item.meta
    if revset.match(meta) is not None:
        return _Decision(item, None)
    if meta.keyid in revoked_keys:
        return _Decision(item, "signing key revoked", revoke_key=True)
    if verifier is None:
        return _Decision(item, "no server key to verify with")
    try:
        verifier.verify_envelope(item.envelope, artifact_digest=meta.layer_digest)
    except VerificationError as e:
        if e.detail.get("revoked"):
            return _Decision(item, None)
        return _Decision(item, f"re-verification failed: {e.message}")
    except InvalidInput as e:
        return _Decision(item, f"re-verification failed: {e.message}")
    if policies is None or meta.policy_id is None or meta.policy_id not in policies.ids:
        return None
    policy = policies.get(meta.policy_id)
    if policy.version == meta.policy_version:
        return None
    decision = evaluate(policies, _Image(item.registry, item.repository), policy_id=meta.policy_id)
    if decision.allowed:
        return None
    return _Decision(
        item,
        f"policy {policy.id} version {policy.version} no longer admits the image: "
        + "; ".join(decision.reasons),
    )


def _apply(session: Session, decision: _Decision, *, now: datetime) -> int:
    meta = decision.item.meta
    if meta.attestation_id is None or meta.pae_sha256 is None:
        return 0
    if decision.new_reason is None:
        target = AttestationTarget(meta.attestation_id, meta.pae_sha256)  # type: ignore[arg-type]
        return revocation_store.mark_revoked(session, target)
    if decision.revoke_key and meta.keyid is not None:
        service.on_key_revoked(
            session, meta.keyid, reason=decision.new_reason, actor=SWEEP_ACTOR, now=now
        )
        return 1
    service.create_revocation(
        session,
        target={"kind": "attestation", "attestation_id": meta.attestation_id},
        reason=decision.new_reason[:1000],
        actor=SWEEP_ACTOR,
        now=now,
    )
    return 1


def reverify_task(payload: Mapping[str, Any], context: TaskContext) -> Mapping[str, Any]:
    """Re-verify the ``valid`` attestations in scope and update their status.

    Payload: ``{"scope": "all"}``, ``{"scope": "key", "keyid": K}`` or
    ``{"scope": "policy", "policy_id": P}``.

    Raises:
        InvalidInput: an unknown scope or a missing keyid / policy_id.
    """
    scope = payload.get("scope", "all")
    if scope not in _SCOPES:
        raise InvalidInput(f"scope must be one of {list(_SCOPES)}, got {str(scope)[:40]!r}")
    keyid = payload.get("keyid") if scope == "key" else None
    policy_id = payload.get("policy_id") if scope == "policy" else None
    if scope == "key" and not isinstance(keyid, str):
        raise InvalidInput("a key sweep needs keyid")
    if scope == "policy" and not isinstance(policy_id, str):
        raise InvalidInput("a policy sweep needs policy_id")
    checked = revoked = 0
    after = ""
    while True:
        with context.session_factory() as session:
            revset = revocation_store.current_revocation_set(session)
            keys, revoked_keys = _trusted_keys(session)
            batch = list(
                revocation_store.attestation_metas(
                    session, keyid=keyid, policy_id=policy_id, after=after, limit=_BATCH
                )
            )
        if not batch:
            break
        verifier = Verifier(keys=keys, revocations=revset) if keys else None
        policies = _policies(context.session_factory) if scope != "key" else None
        decisions = [
            d
            for d in (
                _decide(
                    item,
                    revset=revset,
                    revoked_keys=revoked_keys,
                    verifier=verifier,
                    policies=policies,
                )
                for item in batch
            )
            if d is not None
        ]
        for decision in decisions:
            # One transaction per decision: each new revocation takes the feed lock.
            with context.session_factory.begin() as session:
                revoked += _apply(session, decision, now=context.clock())
        checked += len(batch)
        after = batch[-1].meta.attestation_id or ""
        context.report_progress({"done": checked, "revoked": revoked})
    return {"scope": scope, "checked": checked, "revoked": revoked}
