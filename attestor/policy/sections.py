# SPDX-License-Identifier: Apache-2.0
"""The frozen model of a policy's requirement sections (pure, no I/O).

Signatures, attestations, age, base layers and CEL rules, as parsed from
``schemas/policy.schema.json``. Each object checks what it can on
construction, so evaluation cannot meet a malformed requirement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import re2  # type: ignore[import-untyped]

from attestor.errors import InvalidInput
from attestor.policy._cel import CelError, CelProgram, compile_cel
from attestor.policy._jsonpath import JsonPath
from attestor.policy.evidence import VerifiedSigner

__all__ = [
    "AttestationRequirement",
    "Authority",
    "CelRule",
    "Conditions",
    "FieldCondition",
    "SignatureRequirement",
    "compile_identity_regex",
]

#: RE2 program memory for one subject regex; a pattern needing more is refused.
MAX_REGEX_MEMORY = 1 << 20


def compile_identity_regex(pattern: str) -> Any:
    """Compile a keyless subject pattern with RE2 (linear-time matching).

    The pattern must match the whole subject (it is anchored here), so
    ``https://github.com/org/.*`` cannot be satisfied by a subject that only
    contains it.

    Raises:
        InvalidInput: the pattern does not compile or needs too much memory.
    """
    options = re2.Options()
    options.max_mem = MAX_REGEX_MEMORY
    options.log_errors = False
    try:
        return re2.compile(f"(?:{pattern})", options)
    except re2.error as e:
        why = e.args[0] if e.args else ""
        text = why.decode("utf-8", "replace") if isinstance(why, bytes) else str(why)
        raise InvalidInput(f"subject_regex does not compile: {text[:120]}") from None


@dataclass(frozen=True)
class Authority:
    """Who may sign: a key (keyid, PEM-derived keyid, signer URI) or a keyless identity.

    Attributes:
        name: Unique in its section; decisions name authorities by it.
        keyid: securesystemslib keyid of the key (given, or derived from the PEM).
        signer_uri: ``kms://...`` and similar: the adapter resolves and verifies.
        public_key_pem: The key's PEM, for the adapter that verifies.
        issuer: Keyless OIDC issuer (exact).
        subject: Keyless subject (exact), or ``None`` with ``subject_regex``.
        subject_regex: Keyless subject pattern (RE2, whole subject).
    """

    name: str
    keyid: str | None = None
    signer_uri: str | None = None
    public_key_pem: str | None = None
    issuer: str | None = None
    subject: str | None = None
    subject_regex: str | None = None
    _regex: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Check that exactly one kind of authority is described.

        Raises:
            InvalidInput: neither or both kinds, or a bad subject regex.
        """
        keyed = any((self.keyid, self.signer_uri))
        keyless = self.issuer is not None
        if keyed == keyless:
            raise InvalidInput(f"authority {self.name!r}: exactly one of key or keyless")
        if keyless and (self.subject is None) == (self.subject_regex is None):
            raise InvalidInput(f"authority {self.name!r}: one of subject or subject_regex")
        if self.subject_regex is not None and self._regex is None:
            object.__setattr__(self, "_regex", compile_identity_regex(self.subject_regex))

    @property
    def is_keyless(self) -> bool:
        """Whether this is a keyless identity."""
        return self.issuer is not None

    def matches(self, signer: VerifiedSigner) -> bool:
        """Whether ``signer`` (verified by the adapter) is this authority."""
        if self.issuer is not None:
            if signer.issuer != self.issuer or signer.subject is None:
                return False
            if self.subject is not None:
                return signer.subject == self.subject
            try:
                return self._regex.fullmatch(signer.subject) is not None
            except UnicodeEncodeError:  # a lone surrogate: RE2 takes UTF-8 only
                return False
        if self.keyid is not None and signer.keyid == self.keyid:
            return True
        return self.signer_uri is not None and signer.signer_uri == self.signer_uri

    def describe(self) -> str:
        """``name (key sha256:ab…)`` or ``name (subject from issuer)``, for reasons."""
        if self.issuer is not None:
            who = self.subject if self.subject is not None else f"/{self.subject_regex}/"
            return f"{self.name} ({who} from {self.issuer})"
        what = self.keyid if self.keyid is not None else self.signer_uri
        text = str(what)
        return f"{self.name} (key {text if len(text) <= 20 else text[:16] + '…'})"


@dataclass(frozen=True)
class SignatureRequirement:
    """Signatures by ``threshold`` distinct authorities must name this image.

    Attributes:
        authorities: The M authorities.
        threshold: N, at most M.
        require_same_repository: Count a signature only when its payload's
            docker-reference names this image's registry and repository.
    """

    authorities: tuple[Authority, ...]
    threshold: int = 1
    require_same_repository: bool = False

    def __post_init__(self) -> None:
        """Check N of M.

        Raises:
            InvalidInput: no authorities, duplicate names, or N out of 1..M.
        """
        _unique_names(self.authorities)
        if not 1 <= self.threshold <= len(self.authorities):
            raise InvalidInput(
                f"threshold {self.threshold} must be between 1 and the number of "
                f"authorities ({len(self.authorities)})"
            )


def _unique_names(authorities: tuple[Authority, ...]) -> None:
    if not authorities:
        raise InvalidInput("at least one authority is needed")
    names = [a.name for a in authorities]
    for name in names:
        if names.count(name) > 1:
            raise InvalidInput(f"authority name {name!r} is used twice")


@dataclass(frozen=True)
class FieldCondition:
    """The predicate value at ``path`` must be one of ``values`` (same JSON type)."""

    path: JsonPath
    values: tuple[str | int | bool, ...]


@dataclass(frozen=True)
class Conditions:
    """Conditions on a provenance predicate; every given one must hold.

    Attributes:
        builder_id: Allowed builder ids.
        build_type: Allowed buildType values.
        source_repository: Allowed source repositories (``git+`` and ``.git``
            are ignored when comparing).
        source_ref: Allowed source refs (``refs/heads/main``, ...).
        fields: Allowed values at JSON paths of the predicate.
    """

    builder_id: tuple[str, ...] = ()
    build_type: tuple[str, ...] = ()
    source_repository: tuple[str, ...] = ()
    source_ref: tuple[str, ...] = ()
    fields: tuple[FieldCondition, ...] = ()


@dataclass(frozen=True)
class AttestationRequirement:
    """An attestation of ``predicate_type``, signed by an authority, meeting conditions."""

    name: str
    predicate_type: str
    authorities: tuple[Authority, ...]
    conditions: Conditions = Conditions()

    def __post_init__(self) -> None:
        """Check the authorities.

        Raises:
            InvalidInput: no authorities or duplicate names.
        """
        _unique_names(self.authorities)


@dataclass(frozen=True)
class CelRule:
    """A custom rule: a CEL expression that must evaluate to ``true``."""

    name: str
    program: CelProgram
    message: str = ""

    @classmethod
    def compile(cls, name: str, expression: str, message: str = "") -> CelRule:
        """Compile ``expression`` once.

        Raises:
            InvalidInput: the expression does not compile or is over the bounds.
        """
        try:
            program = compile_cel(expression)
        except CelError as e:
            raise InvalidInput(f"rule {name!r}: {e}") from None
        return cls(name=name, program=program, message=message)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_max_age(text: str) -> timedelta:
    """``"90d"`` to a timedelta (units s, m, h, d, w).

    Raises:
        InvalidInput: not a positive number followed by a unit.
    """
    number, unit = text[:-1], text[-1:]
    if not number.isdigit() or not number.isascii() or unit not in _UNITS or int(number) < 1:
        raise InvalidInput(f"max_age {text[:40]!r} is not like '90d' (units s m h d w)")
    return timedelta(seconds=int(number) * _UNITS[unit])
