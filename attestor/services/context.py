# SPDX-License-Identifier: Apache-2.0
"""Build an :class:`IssuanceContext` from settings (for the API and for job workers)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from attestor.config import Settings
from attestor.policy import PolicySet, load_policies
from attestor.registry import BlobCache, RegistryClient, RegistryLimits
from attestor.services.issuance import IssuanceContext, IssuanceRecorder
from attestor.services.keys import active_signer

__all__ = ["IssuanceAdapters", "adapters_from_settings", "build_context"]

#: Seconds a registry may take to answer one request.
REGISTRY_TIMEOUT_S = 30.0


@dataclass(frozen=True, kw_only=True)
class IssuanceAdapters:
    """The long-lived parts of a context: reuse them across requests of one process."""

    registry: RegistryClient
    cache: BlobCache
    policies: PolicySet


def adapters_from_settings(
    settings: Settings, *, registry_timeout: float = REGISTRY_TIMEOUT_S
) -> IssuanceAdapters:
    """Registry client, blob cache (``data_dir/blobs``) and policies of ``settings``.

    Raises:
        ConfigError: the policy directory is missing or holds an invalid policy.
    """
    cache = BlobCache(settings.data_dir / "blobs")
    limits = RegistryLimits(
        max_manifest_bytes=settings.max_manifest_bytes,
        max_config_bytes=settings.max_config_bytes,
    )
    registry = RegistryClient(
        insecure_registries=settings.insecure_registries,
        cache=cache,
        limits=limits,
        timeout=registry_timeout,
    )
    return IssuanceAdapters(
        registry=registry, cache=cache, policies=load_policies(settings.policy_dir)
    )


def build_context(
    settings: Settings,
    session_factory: sessionmaker[Session],
    adapters: IssuanceAdapters,
    *,
    recorder: IssuanceRecorder | None = None,
) -> IssuanceContext:
    """A context with the signer of the key that is active now.

    Raises:
        Conflict: no signing key is active.
        ConfigError: the active key cannot be loaded.
    """
    with session_factory() as session:
        active = active_signer(session)
    return IssuanceContext(
        registry=adapters.registry,
        cache=adapters.cache,
        policies=adapters.policies,
        session_factory=session_factory,
        signer=active.signer,
        keyid=active.keyid,
        builder_id=settings.builder_id,
        recorder=recorder,
        attach_by_default=settings.attach_attestations,
    )
