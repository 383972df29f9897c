# SPDX-License-Identifier: Apache-2.0
"""OCI distribution client, image reference parsing and the verified blob cache."""

from attestor.registry._hosts import admitted_by_policies
from attestor.registry.auth import Credentials
from attestor.registry.cache import BlobCache
from attestor.registry.client import RegistryClient
from attestor.registry.credentials import load_registry_credentials
from attestor.registry.models import ImageConfig, LayerDescriptor, RegistryLimits, ResolvedImage
from attestor.registry.reference import ImageReference, parse_reference

__all__ = [
    "BlobCache",
    "Credentials",
    "ImageConfig",
    "ImageReference",
    "LayerDescriptor",
    "RegistryClient",
    "RegistryLimits",
    "ResolvedImage",
    "admitted_by_policies",
    "load_registry_credentials",
    "parse_reference",
]
