# SPDX-License-Identifier: Apache-2.0
"""Build an :class:`IssuanceContext` from settings (for the API and for job workers)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from attestor.config import Settings, keyless_config
from attestor.errors import Conflict, NotFound
from attestor.keyless import KeylessSigner
from attestor.manifest import ManifestLimits
from attestor.policy import PolicySet, load_policies
from attestor.registry import (
    BlobCache,
    RegistryClient,
    RegistryLimits,
    admitted_by_policies,
    load_registry_credentials,
)
from attestor.services.issuance import IssuanceContext, IssuanceRecorder
from attestor.services.keys import active_signer
from attestor.services.signers import (
    KeySigner,
    StatementSigner,
    keyless_statement_signer,
)
from attestor.store import signing_keys as key_store

__all__ = ["IssuanceAdapters", "adapters_from_settings", "build_context"]

#: Seconds a registry may take to answer one request.
REGISTRY_TIMEOUT_S = 30.0


@dataclass(frozen=True, kw_only=True)
class IssuanceAdapters:
    """The long-lived parts of a context: reuse them across requests of one process."""

    registry: RegistryClient
    cache: BlobCache
    policies: PolicySet
    #: Set in keyless signing mode (its SigningContext is built once per process).
    keyless: KeylessSigner | None = None


def adapters_from_settings(
    settings: Settings, *, registry_timeout: float = REGISTRY_TIMEOUT_S
) -> IssuanceAdapters:
    """Registry client (with the credentials file), blob cache, policies, keyless signer.

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
    policies = load_policies(settings.policy_dir)
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
        registry_admitted=admitted_by_policies(policies),
        blob_hosts=settings.registry_blob_hosts,
        auth_hosts=settings.registry_auth_hosts,
    )
    keyless = (
        KeylessSigner(keyless_config(settings)) if settings.signing_mode == "keyless" else None
    )
    return IssuanceAdapters(
        registry=registry,
        cache=cache,
        policies=policies,
        keyless=keyless,
    )


def build_context(
    settings: Settings,
    session_factory: sessionmaker[Session],
    adapters: IssuanceAdapters,
    *,
    recorder: IssuanceRecorder | None = None,
) -> IssuanceContext:
    """A context with the signer in use now: the active key, or the keyless identity.

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
            active = active_signer(session)
        signer = KeySigner(signer=active.signer, keyid=active.keyid)
    return IssuanceContext(
        registry=adapters.registry,
        cache=adapters.cache,
        policies=adapters.policies,
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
