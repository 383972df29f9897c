# SPDX-License-Identifier: Apache-2.0
"""Read builder, build type and source out of SLSA provenance predicates (pure).

Provenance v1 (``https://slsa.dev/provenance/v1``): ``runDetails.builder.id``,
``buildDefinition.buildType``; the source comes from
``buildDefinition.externalParameters`` (the GitHub generator's
``workflow.repository``/``workflow.ref``, or a ``source`` URI) and, only when
those name none, from ``buildDefinition.resolvedDependencies[].uri``.
Provenance v0.2 (``https://slsa.dev/provenance/v0.2``): ``builder.id``,
``buildType``, ``invocation.configSource.uri``, then ``materials[].uri``.
A URI such as ``git+https://github.com/org/repo@refs/heads/main`` gives the
repository (before the last ``@``) and the ref (after it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attestor.policy.sections import Conditions

__all__ = ["SLSA_V02", "SLSA_V1", "SLSA_TYPES", "condition_problems"]

SLSA_V1 = "https://slsa.dev/provenance/v1"
SLSA_V02 = "https://slsa.dev/provenance/v0.2"
SLSA_TYPES = (SLSA_V1, SLSA_V02)


def _get(doc: object, *path: str) -> Any:
    for key in path:
        if not isinstance(doc, Mapping):
            return None
        doc = doc.get(key)
    return doc


def _split_uri(uri: object) -> tuple[str, str | None] | None:
    if not isinstance(uri, str) or not uri:
        return None
    repo, at, ref = uri.rpartition("@")
    # "@" inside the authority (user@host) is not a ref separator.
    if not at or ("/" in ref and not ref.startswith("refs/")):
        return uri, None
    return repo, ref


def _normal_repo(value: str) -> str:
    value = value.removeprefix("git+")
    return value.removesuffix(".git").rstrip("/")


def _v1_sources(predicate: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    params = _get(predicate, "buildDefinition", "externalParameters")
    found: list[tuple[str, str | None]] = []
    workflow = _get(params, "workflow")
    if isinstance(_get(workflow, "repository"), str):
        ref = _get(workflow, "ref")
        found.append((workflow["repository"], ref if isinstance(ref, str) else None))
    source = _get(params, "source")
    uri = source.get("uri") if isinstance(source, Mapping) else source
    split = _split_uri(uri)
    if split:
        found.append(split)
    if found:
        return found
    deps = _get(predicate, "buildDefinition", "resolvedDependencies")
    for dep in deps if isinstance(deps, list) else ():
        split = _split_uri(_get(dep, "uri"))
        if split:
            found.append(split)
    return found


def _v02_sources(predicate: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    split = _split_uri(_get(predicate, "invocation", "configSource", "uri"))
    if split:
        return [split]
    materials = _get(predicate, "materials")
    return [
        s
        for s in (
            _split_uri(_get(m, "uri")) for m in (materials if isinstance(materials, list) else ())
        )
        if s
    ]


def _one_of(what: str, value: object, allowed: tuple[str, ...]) -> str | None:
    if value in allowed:
        return None
    shown = ", ".join(repr(a) for a in allowed[:3]) + (" ..." if len(allowed) > 3 else "")
    got = repr(value)[:120] if value is not None else "nothing"
    return f"{what} is {got}, not one of {shown}"


def condition_problems(
    conditions: Conditions, predicate_type: str, predicate: Mapping[str, Any]
) -> list[str]:
    """Why ``predicate`` fails ``conditions`` (empty when it meets all of them)."""
    v1 = predicate_type == SLSA_V1
    problems: list[str] = []
    if conditions.builder_id:
        builder = (
            _get(predicate, "runDetails", "builder", "id")
            if v1
            else _get(predicate, "builder", "id")
        )
        problems.append(_one_of("builder id", builder, conditions.builder_id) or "")
    if conditions.build_type:
        build_type = (
            _get(predicate, "buildDefinition", "buildType") if v1 else _get(predicate, "buildType")
        )
        problems.append(_one_of("buildType", build_type, conditions.build_type) or "")
    if conditions.source_repository or conditions.source_ref:
        problems.append(_source_problem(conditions, predicate, v1=v1) or "")
    for cond in conditions.fields:
        value = cond.path.lookup(predicate)
        # Same JSON type and value: True must not pass for 1, nor 1 for "1".
        if not any(type(value) is type(v) and value == v for v in cond.values):
            shown = ", ".join(repr(v) for v in cond.values[:3])
            problems.append(f"{cond.path.text} is {repr(value)[:120]}, not one of {shown}")
    return [p for p in problems if p]


def _source_problem(
    conditions: Conditions, predicate: Mapping[str, Any], *, v1: bool
) -> str | None:
    sources = _v1_sources(predicate) if v1 else _v02_sources(predicate)
    if not sources:
        return "the provenance names no source repository"
    repos = {_normal_repo(r) for r in conditions.source_repository}
    for repo, ref in sources:
        if repos and _normal_repo(repo) not in repos:
            continue
        if conditions.source_ref and ref not in conditions.source_ref:
            continue
        return None
    shown = ", ".join(f"{r}@{ref}" if ref else r for r, ref in sources[:3])
    want = " at ".join(
        ", ".join(v[:3]) for v in (conditions.source_repository, conditions.source_ref) if v
    )
    return f"source {shown[:200]} is not {want[:200]}"
