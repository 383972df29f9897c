# SPDX-License-Identifier: Apache-2.0
"""The agent's disk cache of envelopes and manifests (content-addressed, re-verified
on load, bounded, persistent) and its index from layer digest to attestation.
"""

from agent.cache._cache import AttestationCache, CacheLimits, CacheStats, LayerRecord

__all__ = ["AttestationCache", "CacheLimits", "CacheStats", "LayerRecord"]
