# SPDX-License-Identifier: Apache-2.0
"""HTTP client of the attestor server API, as the agent uses it.

Every failure becomes an :mod:`attestor.errors` class: a problem+json answer
maps by its ``type`` (``.../<slug>``, else by status), a network failure or
timeout is :class:`~attestor.errors.Unavailable` (the spool keeps its records
and retries), a malformed or oversized answer is
:class:`~attestor.errors.UpstreamError`. Bodies are read with caps. Nothing
here is trusted: envelopes go to :class:`attestor.verify.Verifier`, and
manifests are checked against the digest they were asked for.
"""

from agent.server._bundle import fetch_bundle
from agent.server._client import ServerClient, report_sender, violation_sender
from agent.server._feed import FeedResponse, fetch_revocation_feed
from agent.server._models import (
    AttestationPage,
    AttestationRef,
    ClientLimits,
    IssuedImage,
    JobAccepted,
    LayerRef,
    ManifestRef,
    Registration,
    ServerKey,
    ViolationReceipt,
)
from agent.server._parse import (
    batch_idempotency_key,
    error_from_response,
    loads_strict,
    parse_attestation,
    parse_attestation_page,
    parse_issue_response,
    parse_keys,
    parse_registration,
    parse_violation_receipt,
)

__all__ = [
    "AttestationPage",
    "AttestationRef",
    "ClientLimits",
    "FeedResponse",
    "IssuedImage",
    "JobAccepted",
    "LayerRef",
    "ManifestRef",
    "Registration",
    "ServerClient",
    "ServerKey",
    "ViolationReceipt",
    "batch_idempotency_key",
    "error_from_response",
    "fetch_bundle",
    "fetch_revocation_feed",
    "loads_strict",
    "parse_attestation",
    "parse_attestation_page",
    "parse_issue_response",
    "parse_keys",
    "parse_registration",
    "parse_violation_receipt",
    "report_sender",
    "violation_sender",
]
