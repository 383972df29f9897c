# SPDX-License-Identifier: Apache-2.0
"""Revocation: the model, matching against attestations, and the signed agent feed.

Pure core (no I/O). The server stores revocations and serves the feed; agents
verify feed pages and keep a :class:`RevocationSet`; the
:class:`attestor.verify.Verifier` rejects revoked attestations. Spec:
``docs/revocation-feed.md``.
"""

from attestor.revocation.feed import (
    FEED_PAYLOAD_TYPE,
    FeedLimits,
    FeedPage,
    build_feed_page,
    feed_epoch,
    feed_etag,
    parse_feed_page,
    sign_feed_page,
    verify_feed_page,
)
from attestor.revocation.match import AttestationMeta, RevocationSet
from attestor.revocation.model import (
    KINDS,
    AttestationTarget,
    ImageTarget,
    KeyTarget,
    PolicyVersionTarget,
    Revocation,
    SubjectTarget,
    Target,
    TimeWindowTarget,
    parse_target,
)

__all__ = [
    "FEED_PAYLOAD_TYPE",
    "KINDS",
    "AttestationMeta",
    "AttestationTarget",
    "FeedLimits",
    "FeedPage",
    "ImageTarget",
    "KeyTarget",
    "PolicyVersionTarget",
    "Revocation",
    "RevocationSet",
    "SubjectTarget",
    "Target",
    "TimeWindowTarget",
    "build_feed_page",
    "feed_epoch",
    "feed_etag",
    "parse_feed_page",
    "parse_target",
    "sign_feed_page",
    "verify_feed_page",
]
