# SPDX-License-Identifier: Apache-2.0
"""A schema-valid policy document to the frozen model, with semantic checks (pure).

The schema cannot say that a CEL rule compiles, that a subject regex is
valid RE2 within its memory bound, that a threshold is at most the number of
authorities, that a PEM is a public key whose keyid matches the one given,
or that names are unique. Each such error is collected with its JSON pointer,
so the administrator sees all of them at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from securesystemslib.signer import SSlibKey  # type: ignore[attr-defined]

from attestor.errors import InvalidInput
from attestor.policy._document import PolicyError, error
from attestor.policy._jsonpath import JsonPath
from attestor.policy._provenance import SLSA_TYPES
from attestor.policy.model import UNENFORCED_SECTIONS, Policy, RegistryRule
from attestor.policy.sections import (
    AttestationRequirement,
    Authority,
    CelRule,
    Conditions,
    FieldCondition,
    SignatureRequirement,
    parse_max_age,
)

__all__ = ["build_policy"]

_T = TypeVar("_T")
_SLSA_ONLY = ("builder_id", "build_type", "source_repository", "source_ref")


class _Collector:
    def __init__(self) -> None:
        self.errors: list[PolicyError] = []

    def run(self, pointer: str, make: Callable[[], _T]) -> _T | None:
        """``make()``, or ``None`` with the error recorded at ``pointer``."""
        try:
            return make()
        except InvalidInput as e:
            self.errors.append(error(pointer, e.message))
            return None


def _keyid_of(pem: str) -> str:
    try:
        key = load_pem_public_key(pem.encode("utf-8"))
        return str(SSlibKey.from_crypto(key).keyid)
    except (ValueError, TypeError, UnicodeError, UnsupportedAlgorithm) as e:
        raise InvalidInput(f"public_key_pem is not a usable public key: {str(e)[:120]}") from None


def _authority(doc: Mapping[str, Any], at: str, c: _Collector) -> Authority | None:
    key = doc.get("key")
    if isinstance(key, Mapping):
        keyid = key.get("keyid")
        pem = key.get("public_key_pem")
        if pem is not None:
            derived = c.run(f"{at}/key/public_key_pem", lambda: _keyid_of(pem))
            if derived is None:
                return None
            if keyid is not None and keyid != derived:
                c.errors.append(
                    error(
                        f"{at}/key/keyid", f"keyid {keyid[:80]!r} is not the PEM's keyid {derived}"
                    )
                )
                return None
            keyid = derived
        return c.run(
            at,
            lambda: Authority(
                name=doc["name"], keyid=keyid, signer_uri=key.get("signer_uri"), public_key_pem=pem
            ),
        )
    keyless = doc["keyless"]
    pointer = f"{at}/keyless/subject_regex" if "subject_regex" in keyless else at
    return c.run(
        pointer,
        lambda: Authority(
            name=doc["name"],
            issuer=keyless["issuer"],
            subject=keyless.get("subject"),
            subject_regex=keyless.get("subject_regex"),
        ),
    )


def _authorities(docs: list[Any], at: str, c: _Collector) -> tuple[Authority, ...]:
    out: list[Authority] = []
    seen: dict[str, int] = {}
    for i, doc in enumerate(docs):
        name = doc["name"]
        if name in seen:
            c.errors.append(error(f"{at}/{i}/name", f"authority name {name!r} is used twice"))
            continue
        seen[name] = i
        made = _authority(doc, f"{at}/{i}", c)
        if made is not None:
            out.append(made)
    keyids = [a.keyid for a in out if a.keyid is not None]
    for i, a in enumerate(out):
        if a.keyid is not None and keyids.count(a.keyid) > 1:
            c.errors.append(error(f"{at}/{i}", f"two authorities name the same key {a.keyid[:20]}"))
            break
    return tuple(out)


def _signatures(doc: Mapping[str, Any], c: _Collector) -> SignatureRequirement | None:
    n_errors = len(c.errors)
    authorities = _authorities(doc["authorities"], "/signatures/authorities", c)
    threshold = doc.get("threshold", 1)
    if threshold > len(doc["authorities"]):
        c.errors.append(
            error(
                "/signatures/threshold",
                f"threshold {threshold} is more than the {len(doc['authorities'])} authorities",
            )
        )
    if len(c.errors) > n_errors:
        return None
    return c.run(
        "/signatures",
        lambda: SignatureRequirement(
            authorities=authorities,
            threshold=threshold,
            require_same_repository=doc.get("require_same_repository", False),
        ),
    )


def _conditions(doc: Mapping[str, Any], predicate_type: str, at: str, c: _Collector) -> Conditions:
    if predicate_type not in SLSA_TYPES:
        for name in _SLSA_ONLY:
            if name in doc:
                c.errors.append(
                    error(
                        f"{at}/{name}",
                        f"{name} applies to SLSA provenance ({', '.join(SLSA_TYPES)}) only; "
                        "use fields with a JSON path for other predicates",
                    )
                )
    fields: list[FieldCondition] = []
    for i, f in enumerate(doc.get("fields", ())):
        path = c.run(f"{at}/fields/{i}/path", lambda f=f: JsonPath.parse(f["path"]))  # type: ignore[misc]
        if path is not None:
            fields.append(FieldCondition(path=path, values=tuple(f["values"])))
    return Conditions(
        builder_id=tuple(doc.get("builder_id", ())),
        build_type=tuple(doc.get("build_type", ())),
        source_repository=tuple(doc.get("source_repository", ())),
        source_ref=tuple(doc.get("source_ref", ())),
        fields=tuple(fields),
    )


def _attestations(docs: list[Any], c: _Collector) -> tuple[AttestationRequirement, ...]:
    out: list[AttestationRequirement] = []
    names: set[str] = set()
    for i, doc in enumerate(docs):
        at = f"/attestations/{i}"
        if doc["name"] in names:
            c.errors.append(error(f"{at}/name", f"attestation name {doc['name']!r} is used twice"))
            continue
        names.add(doc["name"])
        n_errors = len(c.errors)
        authorities = _authorities(doc["authorities"], f"{at}/authorities", c)
        conditions = _conditions(
            doc.get("conditions", {}), doc["predicate_type"], f"{at}/conditions", c
        )
        if len(c.errors) == n_errors:
            made = c.run(
                at,
                lambda d=doc, a=authorities, k=conditions: AttestationRequirement(  # type: ignore[misc]
                    name=d["name"], predicate_type=d["predicate_type"], authorities=a, conditions=k
                ),
            )
            if made is not None:
                out.append(made)
    return tuple(out)


def _rules(docs: list[Any], c: _Collector) -> tuple[CelRule, ...]:
    out: list[CelRule] = []
    names: set[str] = set()
    for i, doc in enumerate(docs):
        if doc["name"] in names:
            c.errors.append(error(f"/rules/{i}/name", f"rule name {doc['name']!r} is used twice"))
            continue
        names.add(doc["name"])
        made = c.run(
            f"/rules/{i}/expression",
            lambda d=doc: CelRule.compile(d["name"], d["expression"], d.get("message", "")),  # type: ignore[misc]
        )
        if made is not None:
            out.append(made)
    return tuple(out)


def _scope(document: Mapping[str, Any], c: _Collector) -> tuple[RegistryRule, ...]:
    if "scope" in document:
        entries = [
            (f"/scope/{i}", e["registry"], e.get("repositories", ("**",)), False)
            for i, e in enumerate(document["scope"])
        ]
    else:
        entries = [
            (
                f"/registries/{i}",
                r["host"],
                r.get("repositories", ("**",)),
                r.get("require_signatures", True),
            )
            for i, r in enumerate(document["registries"])
        ]
    rules = [
        c.run(
            at,
            lambda h=host, r=repos, s=sig: RegistryRule(  # type: ignore[misc]
                host=h, repositories=tuple(r), require_signatures=s
            ),
        )
        for at, host, repos, sig in entries
    ]
    return tuple(r for r in rules if r is not None)


def build_policy(
    document: Mapping[str, Any], *, source: str, sha256: str
) -> tuple[Policy | None, list[PolicyError]]:
    """Build the policy from a schema-valid ``document``.

    Returns:
        The policy and no errors, or ``None`` and every semantic error found.
    """
    c = _Collector()
    registries = _scope(document, c)
    signatures = _signatures(document["signatures"], c) if "signatures" in document else None
    attestations = _attestations(document.get("attestations", []), c)
    rules = _rules(document.get("rules", []), c)
    max_age = (
        c.run("/max_age", lambda: parse_max_age(document["max_age"]))
        if "max_age" in document
        else None
    )
    if c.errors:
        return None, c.errors
    policy = c.run(
        "",
        lambda: Policy(
            id=document["id"],
            version=document["version"],
            registries=registries,
            description=document.get("description", ""),
            unenforced_sections=tuple(s for s in UNENFORCED_SECTIONS if s in document),
            source=source,
            sha256=sha256,
            mode=document.get("mode", "enforce"),
            signatures=signatures,
            attestations=attestations,
            max_age=max_age,
            forbidden_base_layers=tuple(document.get("forbidden_base_layers", ())),
            rules=rules,
        ),
    )
    return policy, c.errors
