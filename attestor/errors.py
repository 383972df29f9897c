# SPDX-License-Identifier: Apache-2.0
"""One rooted error hierarchy, split by who is at fault.

Adapters translate library errors (``raise UpstreamError(...) from e``); callers
never catch ``requests``, ``redis`` or ``sqlalchemy`` exceptions. The errors know
nothing of HTTP: the API maps each class to one problem+json ``type`` and status
in a single table (``attestor.api.problems``).

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

    #: Stable machine-readable name; the API's problem ``type`` ends with it and
    #: the agent maps it back to the class.
    slug: str = "error"

    def __init__(self, message: str, *, detail: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: Extra machine-readable members for the problem document.
        self.detail: dict[str, object] = dict(detail or {})


class ConfigError(Error):
    """The configuration is invalid; the process must not start."""

    slug = "invalid-configuration"


class InvalidInput(Error):
    """The caller sent something malformed or unacceptable."""

    slug = "invalid-input"


class TooLarge(InvalidInput):
    """A body, manifest, config or blob is larger than the configured cap."""

    slug = "too-large"


class Unauthorized(Error):
    """No credentials, or credentials that match nothing."""

    slug = "unauthorized"


class Forbidden(Error):
    """Valid credentials without the right to do this."""

    slug = "forbidden"


class NotFound(Error):
    """The named object does not exist."""

    slug = "not-found"


class Conflict(Error):
    """The request conflicts with the current state (e.g. a revoked key)."""

    slug = "conflict"


class PolicyDenied(Error):
    """A policy refused the request; ``detail['reasons']`` lists why."""

    slug = "policy-denied"


class VerificationError(Error):
    """A signature, digest, certificate or statement did not verify."""

    slug = "verification-failed"


class UpstreamError(Error):
    """A registry, Sigstore service or other upstream failed or lied."""

    slug = "upstream-error"


class GatewayTimeout(UpstreamError):
    """An upstream did not answer in time."""

    slug = "upstream-timeout"


class Unavailable(Error):
    """A dependency we need right now (e.g. Redis) is down; retry later."""

    slug = "unavailable"

    def __init__(
        self,
        message: str,
        *,
        retry_after: int = 5,
        detail: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message, detail=detail)
        self.retry_after = retry_after
