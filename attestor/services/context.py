# SPDX-License-Identifier: Apache-2.0
"""Build an :class:`IssuanceContext` from settings (for the API and for job workers).

The long-lived parts (:class:`IssuanceAdapters`: registry client, blob cache,
policies, keyless signer, the loaded active key) are built once per process
and shared by its requests and jobs; :func:`build_context` then asks, per
request or job, which signer is in use now.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from attestor.config import Settings, keyless_config
from attestor.errors import Conflict, NotFound
from attestor.keyless import KeylessSigner
from attestor.manifest import ManifestLimits
from attestor.policy import PolicySet
from attestor.registry import (
    BlobCache,
    RegistryClient,
    RegistryLimits,
    admitted_by_policies,
    load_registry_credentials,
)
from attestor.services.issuance import IssuanceContext, IssuanceRecorder
from attestor.services.keys import ActiveSigner, active_signer
from attestor.services.policy_source import LoadedPolicies, PolicySource
from attestor.services.signers import (
    KeySigner,
    StatementSigner,
    keyless_statement_signer,
)
from attestor.store import signing_keys as key_store

__all__ = ["ActiveKeySigners", "IssuanceAdapters", "adapters_from_settings", "build_context"]

#: Seconds a registry may take to answer one request.
REGISTRY_TIMEOUT_S = 30.0


class ActiveKeySigners:
    """The active key's signer, loaded again only when another key becomes active.

    Every call reads from the database which key is active, so a rotation or
    a revocation applies from the next signature on, as when the key was
    loaded for each signature. Only the load itself (reading the PEM file, or
    building a KMS or HSM client) is skipped while the active key is the one
    loaded last. A keyid is the hash of the key's public half, so the signer
    loaded for a keyid signs as that key whatever its signer URI says.
    Holds one key: a rotation drops the old one.
    """

    def __init__(self, load: Callable[[Session], ActiveSigner] = active_signer) -> None:
        """``load``: reads the active key row and loads its signer (Conflict when none)."""
        self._load = load
        self._last: KeySigner | None = None

    def signer(self, session: Session) -> KeySigner:
        """The signer of the key active now.

        Raises:
            Conflict: no key is active (the last one was revoked).
            ConfigError: the active key's file or signer URI cannot be loaded.
        """
        row = key_store.active_key(session)
        last = self._last
        if row is not None and last is not None and last.keyid == row.keyid:
            return last
        active = self._load(session)
        signer = KeySigner(signer=active.signer, keyid=active.keyid)
        # Threads may race to load a new key: each gets a correct signer, one is kept.
        self._last = signer
        return signer


@dataclass(frozen=True, kw_only=True)
class IssuanceAdapters:
    """The long-lived parts of a context: reuse them across requests of one process.

    The registry client is shared by every request and job of the process:
    it keeps no per-request state besides its caches, which are keyed by
    what they hold (tokens by registry and repository scope, blobs by digest),
    and every exchange gets its own deadline.
    """

    registry: RegistryClient
    cache: BlobCache
    policies: PolicySet
    #: Set in keyless signing mode (its SigningContext is built once per process).
    keyless: KeylessSigner | None = None
    #: Managed-key mode: the loaded signer of the active key.
    key_signers: ActiveKeySigners = field(default_factory=ActiveKeySigners)
    #: Where ``current_policies`` reads the set in force (None: ``policies`` only).
    policy_source: PolicySource | None = None

    def current_policies(self) -> PolicySet:
        """The set in force now: the source's (it follows changes), else ``policies``."""
        return self.policy_source.current() if self.policy_source is not None else self.policies


def adapters_from_settings(
    settings: Settings,
    *,
    registry_timeout: float = REGISTRY_TIMEOUT_S,
    policies: PolicySource | None = None,
) -> IssuanceAdapters:
    """Registry client (with the credentials file), blob cache, policies, keyless signer.

    Args:
        settings: what to build from.
        registry_timeout: seconds a registry may take to answer one request.
        policies: where the policy set comes from; default, the policy
            directory, read now. The registry client asks it on every
            redirect or token realm, so it follows a source that reloads.

    Raises:
        ConfigError: the policy directory is missing or holds an invalid policy,
            the credentials file is unusable, or keyless signing is misconfigured.
    """
    cache = BlobCache(settings.data_dir / "blobs")
    limits = RegistryLimits(
        max_manifest_bytes=settings.max_manifest_bytes,
        max_config_bytes=settings.max_config_bytes,
        request_deadline_s=settings.registry_request_deadline_s,
        blob_deadline_floor_s=settings.registry_blob_deadline_floor_s,
        blob_min_bytes_per_s=settings.registry_blob_min_bytes_per_s,
        blob_deadline_max_s=settings.registry_blob_deadline_max_s,
    )
    source = policies if policies is not None else LoadedPolicies.load(settings.policy_dir)
    credentials = (
        load_registry_credentials(settings.registry_credentials_file)
        if settings.registry_credentials_file is not None
        else None
    )
    registry = RegistryClient(
        insecure_registries=settings.insecure_registries,
        credentials=credentials,
        cache=cache,
        limits=limits,
        timeout=registry_timeout,
        # A host the operator named as a registry may be a redirect or realm
        # target at any address; other hosts only at public addresses.
        registry_admitted=lambda host: admitted_by_policies(source.current())(host),
        blob_hosts=settings.registry_blob_hosts,
        auth_hosts=settings.registry_auth_hosts,
    )
    keyless = (
        KeylessSigner(keyless_config(settings)) if settings.signing_mode == "keyless" else None
    )
    return IssuanceAdapters(
        registry=registry,
        cache=cache,
        policies=source.current(),
        keyless=keyless,
        policy_source=source,
    )


def build_context(
    settings: Settings,
    session_factory: sessionmaker[Session],
    adapters: IssuanceAdapters,
    *,
    recorder: IssuanceRecorder | None = None,
    policies: PolicySet | None = None,
) -> IssuanceContext:
    """A context with the signer in use now: the active key, or the keyless identity.

    Args:
        settings: the builder id, manifest limits and signing mode.
        session_factory: the database.
        adapters: the process's long-lived parts.
        recorder: receives issuance counts (metrics).
        policies: the set in force now; default, ``adapters.current_policies()``.

    Raises:
        Conflict: no signing key is active, or the keyless identity is revoked.
        ConfigError: the active key cannot be loaded, or the keyless token
            source yields no usable token.
    """
    signer: StatementSigner
    if adapters.keyless is not None:
        keyless = keyless_statement_signer(adapters.keyless, keyless_config(settings))
        with session_factory() as session:
            try:
                row = key_store.get_key(session, keyless.keyid)
            except NotFound:
                row = None
        if row is not None and row.status == "revoked":
            raise Conflict(
                f"the keyless signing identity {keyless.keyid} is revoked; "
                "configure another identity",
                detail={"reason": "identity-revoked", "keyid": keyless.keyid},
            )
        signer = keyless
    else:
        with session_factory() as session:
            signer = adapters.key_signers.signer(session)
    return IssuanceContext(
        registry=adapters.registry,
        cache=adapters.cache,
        policies=policies if policies is not None else adapters.current_policies(),
        session_factory=session_factory,
        signer=signer,
        builder_id=settings.builder_id,
        manifest_limits=_manifest_limits(settings),
        recorder=recorder,
        attach_by_default=settings.attach_attestations,
    )


def _manifest_limits(settings: Settings) -> ManifestLimits:
    if settings.layer_max_expansion_ratio is None:
        return ManifestLimits()
    return ManifestLimits(max_expansion_ratio=settings.layer_max_expansion_ratio)
