# SPDX-License-Identifier: Apache-2.0
"""Frozen policy model: rules, policies, sets and decisions (pure, no I/O)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

from attestor.errors import ConfigError, InvalidInput, NotFound

__all__ = [
    "UNENFORCED_SECTIONS",
    "Decision",
    "ImageRef",
    "Policy",
    "PolicySet",
    "RegistryRule",
]

#: Policy sections the schema accepts but this version cannot enforce yet.
#: A policy that uses one refuses every image (fail closed, STYLE.md rule 10).
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
        require_signatures: Images must carry signatures. Not enforced yet, so
            a matching rule with ``True`` refuses (fail closed).
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
    """One admission policy, as loaded from one file.

    Attributes:
        id: Stable policy name, recorded in attestations.
        version: The file's explicit ``version`` field, recorded in attestations.
        registries: Rules in file order; the first matching one decides.
        description: Free text for humans.
        unenforced_sections: Sections present in the file that this version
            cannot enforce (see ``UNENFORCED_SECTIONS``); non-empty means the
            policy refuses every image.
        source: Where the policy came from (a path), for messages and audit.
        sha256: ``sha256:<hex>`` of the file's exact bytes, for audit.
    """

    id: str
    version: str
    registries: tuple[RegistryRule, ...]
    description: str = ""
    unenforced_sections: tuple[str, ...] = ()
    source: str = ""
    sha256: str = ""

    def __post_init__(self) -> None:
        """Check invariants.

        Raises:
            InvalidInput: if the id or version is malformed, there are no
                registry rules, or a section name is unknown.
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


@dataclass(frozen=True)
class Decision:
    """The outcome of evaluating an image against a policy set.

    Attributes:
        allowed: Whether the image is admitted.
        policy_id: The admitting policy (None when refused).
        policy_version: Its version (None when refused).
        reasons: Why, for humans and audit logs; never empty.
        policy_sha256: sha256 of the admitting policy file (None when refused).
    """

    allowed: bool
    policy_id: str | None
    policy_version: str | None
    reasons: tuple[str, ...]
    policy_sha256: str | None = None

    def __post_init__(self) -> None:
        """Check invariants.

        Raises:
            ValueError: if a decision has no reason, or an admission names no policy.
        """
        # ValueError, not an attestor error: only our own code builds Decisions.
        if not self.reasons:
            raise ValueError("a decision must carry at least one reason")
        if self.allowed and (self.policy_id is None or self.policy_version is None):
            raise ValueError("an admission must name its policy id and version")
