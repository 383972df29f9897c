# SPDX-License-Identifier: Apache-2.0
"""Frozen policy model: scope rules, policies and policy sets (pure, no I/O).

Decisions live in ``attestor.policy.decision``, requirement sections in
``attestor.policy.sections``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from attestor.errors import ConfigError, InvalidInput, NotFound
from attestor.policy.decision import MODES, Mode
from attestor.policy.sections import AttestationRequirement, CelRule, SignatureRequirement

__all__ = [
    "UNENFORCED_SECTIONS",
    "ImageRef",
    "Policy",
    "PolicySet",
    "RegistryRule",
]

#: Deprecated sections the schema still accepts but that are never enforced
#: (``signatures`` and ``attestations`` replace them). A policy that uses one
#: refuses every image it applies to (fail closed, STYLE.md rule 10).
UNENFORCED_SECTIONS: tuple[str, ...] = ("signing_keys", "keyless_identities", "builders")

_HOST_RE = re.compile(
    r"^((\*\.)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
    r"|\[[0-9a-f:.]+\])"
    r"(:([0-9]{1,5}|\*))?\Z"
)
_PORT_RE = re.compile(r"^[0-9]{1,5}\Z")
_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")
_REPO_GLOB_RE = re.compile(r"^[a-z0-9._/*?-]+\Z")
# \Z, not $: Python's "$" also matches before a trailing newline, which the
# schema's ECMA-style patterns let through when jsonschema runs them.
_ID_RE = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?\Z")
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}\Z")


class ImageRef(Protocol):
    """Anything naming an image by registry host and repository.

    ``attestor.registry.reference.ImageReference`` fits; the core must not
    import it because the registry package imports ``requests``.
    """

    @property
    def registry(self) -> str:
        """Registry host, ``host`` or ``host:port``."""
        ...

    @property
    def repository(self) -> str:
        """Repository path inside the registry, e.g. ``team/app``."""
        ...


def split_host_port(value: str) -> tuple[str, str | None]:
    """Split ``host[:port]`` (``[v6]:port`` included) into host and port.

    The host comes back lowercased: DNS names are case-insensitive, so a
    policy must not be bypassed by ``LOCALHOST:5000``.
    """
    value = value.lower()
    if value.startswith("["):
        end = value.find("]")
        if end == -1:
            return value, None
        rest = value[end + 1 :]
        return value[: end + 1], (rest[1:] if rest.startswith(":") else None)
    host, sep, port = value.rpartition(":")
    if not sep:
        return value, None
    return host, port


def _glob_regex(pattern: str) -> re.Pattern[str]:
    # Hand-written rather than fnmatch: fnmatch lets "*" cross "/", which would
    # silently widen what a rule admits; wcmatch would add a dependency to the
    # core for a dozen lines.
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


@dataclass(frozen=True)
class RegistryRule:
    """Which registry host, and which repositories in it, a policy admits.

    Attributes:
        host: ``host``, ``host:port``, ``[v6]:port``, ``host:*`` (any port, or
            none) or ``*.example.com[:port]`` (exactly one leading DNS label,
            as in TLS wildcards). Without a port the pattern matches only a
            reference without a port.
        repositories: Globs over the repository path; ``*`` and ``?`` stay in
            one segment, ``**`` crosses segments.
        require_signatures: Images must carry signatures. The policy's
            ``signatures`` section says whose; without one, a matching rule
            with ``True`` refuses (fail closed). Scope entries set ``False``:
            there the ``signatures`` section alone decides.
    """

    host: str
    repositories: tuple[str, ...] = ("**",)
    require_signatures: bool = True
    _repo_res: tuple[re.Pattern[str], ...] = field(
        init=False, repr=False, compare=False, default=()
    )

    def __post_init__(self) -> None:
        """Check the patterns once, so matching can't fail later.

        Raises:
            InvalidInput: if the host pattern or a repository glob is malformed.
        """
        if not isinstance(self.host, str) or _HOST_RE.match(self.host.lower()) is None:
            raise InvalidInput(f"invalid registry host pattern: {str(self.host)[:80]!r}")
        if not self.repositories:
            raise InvalidInput(f"rule for {self.host!r}: repositories must not be empty")
        for glob in self.repositories:
            if not isinstance(glob, str) or _REPO_GLOB_RE.match(glob) is None:
                raise InvalidInput(f"invalid repository glob: {str(glob)[:80]!r}")
        object.__setattr__(self, "host", self.host.lower())
        object.__setattr__(self, "_repo_res", tuple(_glob_regex(g) for g in self.repositories))

    def matches_host(self, registry: str) -> bool:
        """Whether ``registry`` (``host[:port]``) matches this rule's host pattern."""
        want_host, want_port = split_host_port(self.host)
        host, port = split_host_port(registry)
        if want_port == "*":
            port_ok = port is None or _PORT_RE.match(port) is not None
        else:
            port_ok = port == want_port
        if not port_ok:
            return False
        if want_host.startswith("*."):
            suffix = want_host[1:]
            label = host[: -len(suffix)] if host.endswith(suffix) else ""
            return _LABEL_RE.match(label) is not None
        return host == want_host

    def matches_repository(self, repository: str) -> bool:
        """Whether ``repository`` matches one of this rule's globs."""
        return any(r.match(repository) is not None for r in self._repo_res)


@dataclass(frozen=True)
class Policy:
    """One admission policy, as parsed from one document.

    Attributes:
        id: Stable policy name, recorded in attestations.
        version: The document's explicit ``version`` field, recorded in attestations.
        registries: The scope: rules in document order, the first matching
            one decides (``scope`` entries become rules without
            ``require_signatures``).
        description: Free text for humans.
        unenforced_sections: Deprecated sections present in the document
            (see ``UNENFORCED_SECTIONS``); non-empty means the policy refuses
            every image it applies to.
        source: Where the policy came from (a path), for messages and audit.
        sha256: ``sha256:<hex>`` of the document's exact bytes, for audit.
        mode: ``enforce`` refuses on a failed rule; ``warn`` and ``audit``
            admit and record it (``audit`` also raises a finding).
        signatures: Required image signatures, if any.
        attestations: Required attestations.
        max_age: Maximum age from the config's ``created``.
        forbidden_base_layers: ``sha256:`` digests or prefixes (of layer
            digests or diffIDs) that refuse an image.
        rules: CEL rules, compiled.
    """

    id: str
    version: str
    registries: tuple[RegistryRule, ...]
    description: str = ""
    unenforced_sections: tuple[str, ...] = ()
    source: str = ""
    sha256: str = ""
    mode: Mode = "enforce"
    signatures: SignatureRequirement | None = None
    attestations: tuple[AttestationRequirement, ...] = ()
    max_age: timedelta | None = None
    forbidden_base_layers: tuple[str, ...] = ()
    rules: tuple[CelRule, ...] = ()

    def __post_init__(self) -> None:
        """Check invariants.

        Raises:
            InvalidInput: if the id, version or mode is malformed, there are no
                registry rules, a section name is unknown, or two
                attestation requirements or rules share a name.
        """
        if not isinstance(self.id, str) or _ID_RE.match(self.id) is None:
            raise InvalidInput(f"invalid policy id: {str(self.id)[:80]!r}")
        if not isinstance(self.version, str) or _VERSION_RE.match(self.version) is None:
            raise InvalidInput(f"policy {self.id!r}: invalid version {str(self.version)[:80]!r}")
        if not self.registries:
            raise InvalidInput(f"policy {self.id!r} has no registry rules")
        unknown = set(self.unenforced_sections) - set(UNENFORCED_SECTIONS)
        if unknown:
            raise InvalidInput(f"policy {self.id!r}: unknown sections {sorted(unknown)}")
        if self.mode not in MODES:
            raise InvalidInput(f"policy {self.id!r}: unknown mode {str(self.mode)[:20]!r}")
        for what, names in (
            ("attestation", [a.name for a in self.attestations]),
            ("rule", [r.name for r in self.rules]),
        ):
            if len(set(names)) != len(names):
                raise InvalidInput(f"policy {self.id!r}: two {what}s share a name")
        if self.max_age is not None and self.max_age <= timedelta(0):
            raise InvalidInput(f"policy {self.id!r}: max_age must be positive")

    def matching_rule(self, registry: str, repository: str) -> tuple[int, RegistryRule] | None:
        """The first scope rule matching the image, with its index."""
        for index, rule in enumerate(self.registries):
            if rule.matches_host(registry) and rule.matches_repository(repository):
                return index, rule
        return None

    @property
    def needs_evidence(self) -> bool:
        """Whether any requirement can only be checked with the fetched image."""
        return bool(
            self.signatures
            or self.attestations
            or self.max_age
            or self.forbidden_base_layers
            or self.rules
        )


@dataclass(frozen=True)
class PolicySet:
    """The policies in force, ordered by id so evaluation is deterministic.

    An empty set is allowed to exist (the server may start without policies)
    but admits nothing: evaluation refuses with a reason naming ``source``.

    Attributes:
        policies: The policies, sorted by id on construction.
        source: Where they were loaded from (a directory), for messages.
    """

    policies: tuple[Policy, ...]
    source: str = ""

    def __post_init__(self) -> None:
        """Sort and reject duplicate ids.

        Raises:
            ConfigError: if two policies share an id.
        """
        ordered = tuple(sorted(self.policies, key=lambda p: p.id))
        for prev, cur in zip(ordered, ordered[1:], strict=False):
            if prev.id == cur.id:
                raise ConfigError(
                    f"duplicate policy id {cur.id!r} in {prev.source or '?'} "
                    f"and {cur.source or '?'}"
                )
        object.__setattr__(self, "policies", ordered)

    @property
    def ids(self) -> tuple[str, ...]:
        """The policy ids, sorted."""
        return tuple(p.id for p in self.policies)

    def get(self, policy_id: str) -> Policy:
        """The policy named ``policy_id``.

        Raises:
            NotFound: if no policy has that id.
        """
        for policy in self.policies:
            if policy.id == policy_id:
                return policy
        raise NotFound(f"no policy with id {policy_id[:80]!r}", detail={"policy": policy_id[:80]})
