# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import requests

from attestor.registry import BlobCache, RegistryClient


class CountingSession(requests.Session):
    """A real session that counts what it sends (to prove cache hits do no HTTP)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str]] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.sent.append((str(method), str(url)))
        return super().request(method, url, *args, **kwargs)


@pytest.fixture
def session() -> CountingSession:
    return CountingSession()


@pytest.fixture
def client(registry: Any, tmp_path: Path, session: CountingSession) -> RegistryClient:
    return RegistryClient(
        insecure_registries=frozenset({registry.host}),
        cache=BlobCache(tmp_path / "blobs"),
        timeout=5.0,
        session=session,
    )


@pytest.fixture
def blob_file(registry: Any) -> Any:
    """``blob_file(digest) -> Path`` of the registry's stored data file."""

    def find(digest: str) -> Path:
        hexd = digest.split(":", 1)[1]
        matches = list(Path(registry.workdir).rglob(f"blobs/sha256/{hexd[:2]}/{hexd}/data"))
        assert len(matches) == 1, f"blob {digest} not found under {registry.workdir}"
        return matches[0]

    return find


def sha256_file(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
