# SPDX-License-Identifier: Apache-2.0
"""Content-addressed blob cache under ``<root>/sha256/<hex>``.

A blob enters the cache only after its sha256 and size were verified while it
streamed to a temporary file in the same directory; ``os.replace`` then makes
it visible atomically, so a reader never sees a partial or unverified blob.

On a hit only the size is checked, not the hash: the cache directory is as
trusted as the signing keys next to it (threat model: the server's disk is
not attacker-writable), and re-hashing a 1 GiB layer on every use would cost a
second per request. :meth:`BlobCache.verify` re-hashes on demand.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from attestor.digests import parse_digest
from attestor.errors import TooLarge, VerificationError

__all__ = ["BlobCache"]

_CHUNK = 1 << 20


class BlobCache:
    """Verified blobs, one file per sha256 digest."""

    def __init__(self, root: Path) -> None:
        self._root = Path(root)
        self._dir = self._root / "sha256"

    @property
    def root(self) -> Path:
        """The cache directory."""
        return self._root

    def _path(self, digest: str) -> Path:
        return self._dir / parse_digest(digest)

    def path_for(self, digest: str, *, expected_size: int | None = None) -> Path | None:
        """The cached file for ``digest``, or None if absent or of the wrong size.

        Raises:
            InvalidInput: if ``digest`` is not ``sha256:<64 hex>``.
        """
        path = self._path(digest)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        if expected_size is not None and size != expected_size:
            return None
        return path

    def store(
        self,
        digest: str,
        chunks: Iterable[bytes],
        *,
        max_size: int,
        expected_size: int | None = None,
    ) -> Path:
        """Write ``chunks`` as blob ``digest``, verifying sha256 and size on the way.

        Raises:
            InvalidInput: if ``digest`` is not ``sha256:<64 hex>``.
            TooLarge: if the stream exceeds ``max_size``.
            VerificationError: if the size or sha256 of the stream differs from
                ``expected_size`` / ``digest``; nothing is stored.
        """
        final = self._path(digest)
        self._dir.mkdir(parents=True, exist_ok=True)
        limit = max_size if expected_size is None else min(max_size, expected_size)
        hasher = hashlib.sha256()
        written = 0
        fd, tmp_name = tempfile.mkstemp(dir=self._dir, prefix=".partial-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    written += len(chunk)
                    if written > limit:
                        if written > max_size:
                            raise TooLarge(
                                f"blob {digest} exceeds the {max_size}-byte cap",
                                detail={"digest": digest, "limit": max_size},
                            )
                        raise VerificationError(
                            f"blob {digest} is larger than its descriptor size {expected_size}"
                        )
                    hasher.update(chunk)
                    out.write(chunk)
            if expected_size is not None and written != expected_size:
                raise VerificationError(
                    f"blob {digest} has {written} bytes, its descriptor says {expected_size}"
                )
            actual = "sha256:" + hasher.hexdigest()
            if actual != digest:
                raise VerificationError(
                    f"blob content hashes to {actual}, expected {digest}",
                    detail={"expected": digest, "actual": actual},
                )
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return final

    def verify(self, digest: str) -> bool:
        """Re-hash the cached blob; True if present and intact.

        Raises:
            InvalidInput: if ``digest`` is not ``sha256:<64 hex>``.
        """
        path = self.path_for(digest)
        if path is None:
            return False
        hasher = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                hasher.update(chunk)
        return "sha256:" + hasher.hexdigest() == digest
