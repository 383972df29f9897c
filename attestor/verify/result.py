# SPDX-License-Identifier: Apache-2.0
"""Typed results of a successful verification."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Any

from attestor.dsse import IN_TOTO_PAYLOAD_TYPE, Envelope, pae_sha256

__all__ = ["Subject", "VerifiedPayload", "VerifiedStatement"]


@dataclass(frozen=True)
class Subject:
    """One statement subject: its name and its digests (algorithm -> hex)."""

    name: str
    digest: tuple[tuple[str, str], ...]

    @property
    def sha256(self) -> str | None:
        """The subject's sha256 hex, if it has one."""
        for algorithm, value in self.digest:
            if algorithm == "sha256":
                return value
        return None


@dataclass(frozen=True)
class VerifiedPayload:
    """A DSSE payload whose signatures verified (not a statement: no payload checks)."""

    payload_type: str
    #: The exact signed payload bytes.
    payload: bytes
    #: keyids of the distinct trusted keys whose signatures verified.
    keys: tuple[str, ...]


@dataclass(frozen=True)
class VerifiedStatement:
    """An in-toto Statement whose envelope verified, and what was checked.

    ``statement`` is the parsed JSON of the signed payload bytes; it must be
    treated as read-only.
    """

    statement: dict[str, Any]
    #: The exact signed payload bytes.
    payload: bytes
    #: The envelope that verified, as parsed.
    envelope: Envelope
    #: keyids of the distinct trusted keys whose signatures verified.
    keys: tuple[str, ...]
    predicate_type: str
    subjects: tuple[Subject, ...]
    #: The subject matched to the artifact digest, when one was given.
    matched_subject: Subject | None = None

    @functools.cached_property
    def envelope_sha256(self) -> str:
        """sha256 hex of the envelope's canonical JSON (``Envelope.to_json``).

        The address of these envelope bytes (caches, attestation chains). Not
        the attestation's identity: unsigned keyids and signatures change it;
        that is :attr:`pae_sha256`. Computed when asked for: serializing and
        hashing the envelope was ~4% of a verification that nobody in bulk
        verification reads.
        """
        return hashlib.sha256(self.envelope.to_json()).hexdigest()

    @functools.cached_property
    def payload_sha256(self) -> str:
        """sha256 hex of the exact signed payload bytes (computed when asked for)."""
        return hashlib.sha256(self.payload).hexdigest()

    @functools.cached_property
    def pae_sha256(self) -> str:
        """The attestation's identity: sha256 hex of what its signatures sign.

        :func:`attestor.dsse.pae_sha256` of the in-toto payload type (the only
        one a statement verifies under) and :attr:`payload`. Unlike
        :attr:`envelope_sha256` it does not change with keyids, extra or
        reordered signatures or the JSON layout; revocations match on it.
        """
        return pae_sha256(IN_TOTO_PAYLOAD_TYPE, self.payload)
