# SPDX-License-Identifier: Apache-2.0
"""One rooted error hierarchy, split by who is at fault.

Adapters translate library errors (``raise UpstreamError(...) from e``); callers
never catch ``requests``, ``redis`` or ``sqlalchemy`` exceptions. The API maps
each class to one problem+json ``type`` and status in a single place
(``attestor.api.problems``).

Messages carry the failing values, never secrets.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "Conflict",
    "Error",
    "Forbidden",
    "GatewayTimeout",
    "InvalidInput",
    "NotFound",
    "PolicyDenied",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
    "UpstreamError",
    "VerificationError",
]


class Error(Exception):
    """Root of every error this project raises on purpose."""

    #: Stable problem ``type`` suffix; the API prefixes it with the project URI.
    slug: str = "error"
    #: HTTP status used when the error crosses the API boundary.
    status: int = 500

    def __init__(self, message: str, *, detail: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: Extra machine-readable members for the problem document.
        self.detail: dict[str, object] = dict(detail or {})


class ConfigError(Error):
    """The configuration is invalid; the process must not start."""

    slug = "invalid-configuration"
    status = 500


class InvalidInput(Error):
    """The caller sent something malformed or unacceptable."""

    slug = "invalid-input"
    status = 400


class TooLarge(InvalidInput):
    """A body, manifest, config or blob is larger than the configured cap."""

    slug = "too-large"
    status = 413


class Unauthorized(Error):
    """No credentials, or credentials that match nothing (HTTP 401)."""

    slug = "unauthorized"
    status = 401


class Forbidden(Error):
    """Valid credentials without the right to do this (HTTP 403)."""

    slug = "forbidden"
    status = 403


class NotFound(Error):
    """The named object does not exist."""

    slug = "not-found"
    status = 404


class Conflict(Error):
    """The request conflicts with the current state (e.g. a revoked key)."""

    slug = "conflict"
    status = 409


class PolicyDenied(Error):
    """A policy refused the request; ``detail['reasons']`` lists why."""

    slug = "policy-denied"
    status = 403


class VerificationError(Error):
    """A signature, digest, certificate or statement did not verify."""

    slug = "verification-failed"
    status = 422


class UpstreamError(Error):
    """A registry, Sigstore service or other upstream failed or lied."""

    slug = "upstream-error"
    status = 502


class GatewayTimeout(UpstreamError):
    """An upstream did not answer in time (HTTP 504)."""

    slug = "upstream-timeout"
    status = 504


class Unavailable(Error):
    """A dependency we need right now (e.g. Redis) is down; retry later."""

    slug = "unavailable"
    status = 503

    def __init__(
        self,
        message: str,
        *,
        retry_after: int = 5,
        detail: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message, detail=detail)
        self.retry_after = retry_after
