# SPDX-License-Identifier: Apache-2.0
"""One check per requirement section: evidence in, (status, reason) out (pure).

Each check fails closed: evidence it needs that was not gathered (``None``)
fails it, with a reason that says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from attestor.policy._cel import CelError, CelInput
from attestor.policy._provenance import condition_problems
from attestor.policy.decision import Voucher
from attestor.policy.evidence import Evidence, ImageEvidence, VerifiedSigner
from attestor.policy.model import Policy, split_host_port
from attestor.policy.sections import AttestationRequirement, Authority, CelRule

__all__ = [
    "CLOCK_SKEW",
    "Outcome",
    "check_attestation",
    "check_base_layers",
    "check_max_age",
    "check_rule",
    "check_signatures",
    "not_gathered",
]

#: How far in the future a config's ``created`` may be (builder clock skew).
#: Further is refused: it would keep an image "young" forever.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class Outcome:
    """A check's result before the policy's mode turns it into an effect."""

    passed: bool
    reason: str
    authorities: tuple[Voucher, ...] = ()


def not_gathered(what: str) -> Outcome:
    """The fail-closed outcome for evidence that was not gathered."""
    return Outcome(False, f"{what}: not gathered for this image (fail closed)")


def _voucher(name: str, signer: VerifiedSigner) -> Voucher:
    return Voucher(
        authority=name,
        keyid=signer.keyid,
        signer_uri=signer.signer_uri,
        issuer=signer.issuer,
        subject=signer.subject,
    )


def _short(digest: str) -> str:
    return digest[:19] + "…" if len(digest) > 20 else digest


def _max_matching(
    signers: list[VerifiedSigner], authorities: tuple[Authority, ...]
) -> dict[str, VerifiedSigner]:
    """Authorities paired with distinct signers (maximum bipartite matching).

    A signer counts for one authority only, so two authorities that describe
    the same key (or overlapping keyless patterns) cannot turn one signature
    into two toward a threshold.
    """
    owner: dict[str, int] = {}  # authority name -> signer index

    def assign(i: int, seen: set[str]) -> bool:
        for a in authorities:
            if a.name in seen or not a.matches(signers[i]):
                continue
            seen.add(a.name)
            if a.name not in owner or assign(owner[a.name], seen):
                owner[a.name] = i
                return True
        return False

    for i in range(len(signers)):
        assign(i, set())
    return {name: signers[i] for name, i in owner.items()}


def _names_repository(reference: str, image: ImageEvidence) -> bool:
    """Whether a payload's docker-reference names the image's registry and repository."""
    name = reference.split("@", 1)[0]
    host, _, path = name.partition("/")
    last = path.rsplit("/", 1)[-1]
    if ":" in last:  # a tag
        path = path[: len(path) - len(last)] + last.split(":", 1)[0]
    want_host, want_port = split_host_port(image.registry)
    got_host, got_port = split_host_port(host)
    return (got_host, got_port) == (want_host, want_port) and path == image.repository


def check_signatures(policy: Policy, evidence: Evidence) -> Outcome:
    """Signatures by ``threshold`` distinct authorities naming this image."""
    req = policy.signatures
    assert req is not None  # noqa: S101 - only called for policies with the section
    if evidence.signatures is None:
        return not_gathered("signatures")
    digests = evidence.image.digests()
    if not digests:
        return Outcome(False, "the image's manifest digest is unknown (fail closed)")
    other_digest: list[str] = []
    other_repo: list[str] = []
    signers: dict[VerifiedSigner, None] = {}
    for sig in evidence.signatures:
        if sig.manifest_digest not in digests:
            other_digest.append(_short(sig.manifest_digest))
        elif req.require_same_repository and not _names_repository(
            sig.docker_reference, evidence.image
        ):
            other_repo.append(sig.docker_reference[:120])
        else:
            signers.setdefault(sig.signer)
    matched = _max_matching(list(signers), req.authorities)
    need, of = req.threshold, len(req.authorities)
    by_name = {a.name: a for a in req.authorities}
    names = tuple(sorted(matched))
    if len(matched) >= need:
        who = ", ".join(by_name[n].describe() for n in names)
        vouchers = tuple(_voucher(n, matched[n]) for n in names)
        return Outcome(True, f"signature threshold {need} of {of} met by {who}", vouchers)
    if matched:
        found = "matched " + ", ".join(by_name[n].describe() for n in names) + " only"
    else:
        found = "no signature by any of its authorities"
    notes = [
        f"{len(evidence.signatures)} signature(s) found",
        *(
            [f"ignored, naming another digest: {', '.join(other_digest[:3])}"]
            if other_digest
            else []
        ),
        *(
            [f"ignored, naming another repository: {', '.join(other_repo[:3])}"]
            if other_repo
            else []
        ),
    ]
    unknown = [s.describe() for s in signers if not any(a.matches(s) for a in req.authorities)]
    if unknown:
        notes.append(f"by signers that are not authorities: {', '.join(unknown[:3])}")
    return Outcome(
        False, f"signature threshold {need} of {of} not met: {found} ({'; '.join(notes)})"
    )


def check_attestation(req: AttestationRequirement, evidence: Evidence) -> Outcome:
    """An attestation of the type, about this image, by an authority, meeting the conditions."""
    if evidence.attestations is None:
        return not_gathered("attestations")
    digests = set(evidence.image.digests())
    if not digests:
        return Outcome(False, "the image's manifest digest is unknown (fail closed)")
    candidates = [a for a in evidence.attestations if a.predicate_type == req.predicate_type]
    if not candidates:
        return Outcome(False, f"no {req.predicate_type} attestation was found")
    notes: list[str] = []
    for att in candidates:
        if not digests.intersection(att.subject_digests):
            subjects = ", ".join(_short(d) for d in att.subject_digests[:2]) or "none"
            notes.append(f"one is about other subjects ({subjects})")
            continue
        authority = next((a for a in req.authorities if a.matches(att.signer)), None)
        if authority is None:
            notes.append(f"one is signed by {att.signer.describe()}, not an authority")
            continue
        problems = condition_problems(req.conditions, req.predicate_type, att.predicate)
        if problems:
            notes.append(f"one by {authority.name}: {problems[0]}")
            continue
        who = authority.describe()
        reason = f"{req.predicate_type} attestation signed by {who} meets its conditions"
        return Outcome(True, reason, (_voucher(authority.name, att.signer),))
    shown = "; ".join(notes[:4]) + (f"; and {len(notes) - 4} more" if len(notes) > 4 else "")
    return Outcome(False, f"no {req.predicate_type} attestation qualifies: {shown}")


def _parse_created(value: object) -> datetime | None:
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        return None
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        created = datetime.fromisoformat(text)
    except ValueError:
        return None
    return created if created.tzinfo is not None else None


def check_max_age(max_age: timedelta, image: ImageEvidence, now: datetime) -> Outcome:
    """The config's ``created`` is at most ``max_age`` before ``now`` (and not in the future)."""
    if image.config is None:
        return not_gathered("config")
    raw = image.config.get("created")
    created = _parse_created(raw)
    if created is None:
        return Outcome(False, f"the config's created {repr(raw)[:60]} is not an RFC 3339 time")
    age = now - created
    if age < -CLOCK_SKEW:
        return Outcome(False, f"the config's created {raw} is in the future")
    if age > max_age:
        return Outcome(
            False, f"image is {_days(age)} old (created {raw}), max_age {_days(max_age)}"
        )
    return Outcome(True, f"image is {_days(max(age, timedelta(0)))} old, within {_days(max_age)}")


def _days(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} days"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def check_base_layers(forbidden: Iterable[str], image: ImageEvidence) -> Outcome:
    """No layer digest or diffID starts with a forbidden prefix."""
    if image.layer_digests is None or image.diff_ids is None:
        return not_gathered("layer digests and diffIDs")
    prefixes = tuple(forbidden)
    for kind, values in (("layer", image.layer_digests), ("diffID", image.diff_ids)):
        for index, value in enumerate(values):
            if value.startswith(prefixes):
                hit = next(p for p in prefixes if value.startswith(p))
                return Outcome(
                    False, f"{kind} {index} ({_short(value)}) matches forbidden base layer {hit}"
                )
    return Outcome(True, f"none of {len(image.layer_digests)} layers is a forbidden base layer")


def check_rule(rule: CelRule, variables: CelInput) -> Outcome:
    """The CEL expression evaluates to true; an error fails it (closed)."""
    missing = sorted(name for name in rule.program.uses if variables.plain(name) is None)
    if missing:
        return not_gathered(" and ".join(missing))
    try:
        value = rule.program.evaluate(variables)
    except CelError as e:
        return Outcome(False, f"rule {rule.name} could not be evaluated (fail closed): {e}")
    if value:
        return Outcome(True, f"rule {rule.name} holds")
    return Outcome(
        False, rule.message or f"rule {rule.name} is false: {rule.program.expression[:200]}"
    )


def utc(now: datetime) -> datetime:
    """``now`` as an aware UTC time (a naive one is taken as UTC)."""
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
