# SPDX-License-Identifier: Apache-2.0
"""Image references: ``host[:port]/path[:tag][@sha256:hex]``.

The grammar is docker/distribution's ``reference`` package (reference.go),
with two deliberate restrictions:

* **The registry host is always explicit.** Docker's implicit ``docker.io`` /
  ``library/`` defaults are not applied: ``busybox`` and ``library/busybox`` are
  rejected, so a policy decision is never made on a host the caller did not
  write. Docker Hub must be named by its API host (``registry-1.docker.io``).
  Like Docker, the first component counts as a host only if it contains ``.``
  or ``:``, is ``localhost``, or is a bracketed IPv6 address.
* **Only sha256 digests** are accepted; that is all we verify.

The host is lowercased (DNS names are case-insensitive) so that comparisons
with ``insecure_registries`` and policies are exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from attestor.digests import Digest, parse_digest
from attestor.errors import InvalidInput

__all__ = ["ImageReference", "parse_reference"]

# reference.go: domainComponent, optional port; IPv6 in brackets.
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])"
_DOMAIN_RE = re.compile(rf"^{_HOST}(?::[0-9]{{1,5}})?$")
# reference.go: pathComponent = alphanumeric (separator alphanumeric)*
_PATH_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_PORT_RE = re.compile(r":([0-9]{1,5})$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# reference.go: NameTotalLengthMax
_NAME_MAX = 255
_INPUT_MAX = 1024


@dataclass(frozen=True)
class ImageReference:
    """A parsed image reference. Build it with :func:`parse_reference`."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        """``registry/repository`` without tag or digest."""
        return f"{self.registry}/{self.repository}"

    def by_digest(self, digest: str) -> ImageReference:
        """The same repository pinned to ``digest`` (the tag is dropped).

        Raises:
            InvalidInput: if ``digest`` is not ``sha256:<64 hex>``.
        """
        parse_digest(digest)
        return ImageReference(self.registry, self.repository, None, Digest(digest))

    def __str__(self) -> str:
        out = self.name
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out


def _bad(value: str, why: str) -> InvalidInput:
    return InvalidInput(f"invalid image reference {value[:120]!r}: {why}")


def parse_reference(value: str) -> ImageReference:
    """Parse ``host[:port]/path[:tag][@sha256:hex]``.

    Raises:
        InvalidInput: if ``value`` does not match the grammar, names no registry
            host, or uses a digest algorithm other than sha256.
    """
    if not isinstance(value, str) or not value:
        raise InvalidInput("image reference must be a non-empty string")
    if len(value) > _INPUT_MAX or not value.isascii() or value != value.strip():
        raise _bad(value, "too long, not ASCII or has surrounding whitespace")
    rest, sep, digest = value.partition("@")
    if sep:
        try:
            parse_digest(digest)
        except InvalidInput:
            raise _bad(value, "digest must be sha256:<64 lowercase hex>") from None
    host, slash, path = rest.partition("/")
    if not slash:
        raise _bad(value, "no registry host; write e.g. 127.0.0.1:5000/repo:tag")
    if not (
        "." in host or ":" in host or host == "localhost" or host.startswith("[")
    ) or not _DOMAIN_RE.match(host):
        raise _bad(value, f"{host!r} is not a registry host (no implicit docker.io)")
    port = _PORT_RE.search(host)
    if port is not None and not 0 < int(port.group(1)) < 65536:
        raise _bad(value, f"port {port.group(1)} out of range")
    tag: str | None = None
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path, _, tag = path.rpartition(":")
        if not _TAG_RE.match(tag):
            raise _bad(value, f"invalid tag {tag[:130]!r}")
    components = path.split("/")
    if not all(_PATH_COMPONENT_RE.match(c) for c in components):
        raise _bad(value, "repository path must be lowercase [a-z0-9] components separated by /")
    if len(host) + 1 + len(path) > _NAME_MAX:
        raise _bad(value, f"name longer than {_NAME_MAX} characters")
    return ImageReference(host.lower(), path, tag, digest if sep else None)
