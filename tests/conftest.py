# SPDX-License-Identifier: Apache-2.0
"""Session fixtures that start real throwaway services (see CONTRIBUTING.md).

Each service starts lazily, the first time a test asks for it, and once per
session; it is stopped by PID at the end. Nothing here imports ``attestor``,
so a half-edited area never breaks collection elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis

from tests.harness.binaries import require_static, unavailable
from tests.harness.images import BuiltImage, ImageBuilder, PushedImage
from tests.harness.sample import sample_layers
from tests.harness.services import Containerd, Postgres, Redis, Registry
from tests.harness.sigstore_stack import SigstoreMock, SigstoreStack

REPO_ROOT = Path(__file__).resolve().parent.parent
# Only the checkout itself: a plain clone has nothing beside it.
ASSET_DIRS = (REPO_ROOT / "tests" / "assets",)

# Where scripts/bootstrap.sh puts a Node 20 when the system's is too old for the
# interop checks; first on PATH so that every `node` the tests run is that one.
_NODE_TOOLS = REPO_ROOT / ".tools" / "node" / "node_modules" / ".bin"
if (_NODE_TOOLS / "node").exists():
    os.environ["PATH"] = f"{_NODE_TOOLS}{os.pathsep}{os.environ.get('PATH', '')}"

# Service name -> seconds to become ready, for the summary at the end.
_STARTUP: dict[str, float] = {}

S = TypeVar("S", Postgres, Redis, Registry, Containerd)


def _serve(name: str, service: S) -> Iterator[S]:
    try:
        service.start()
    except BaseException:
        service.stop()
        raise
    _STARTUP[name] = service.startup_seconds
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A fresh PostgreSQL cluster with an empty ``attestor`` database."""
    yield from _serve("postgres", Postgres())


@pytest.fixture(scope="session")
def postgres_url(postgres: Postgres) -> str:
    """``postgresql+psycopg://attestor@127.0.0.1:PORT/attestor``."""
    return postgres.url


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    """A ``redis-server`` without persistence."""
    yield from _serve("redis", Redis(tmp_path_factory.mktemp("redis")))


@pytest.fixture
def redis_url(redis_server: Redis) -> str:
    """``redis://127.0.0.1:PORT/0``, emptied for each test.

    The session shares one server: a burst worker would otherwise also run
    jobs an earlier test left queued (one once waited 60 s at a registry
    deadline inside another test).
    """
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushdb()
    finally:
        client.close()
    return redis_server.url


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """An OCI registry (docker-registry) with ``.host`` and ``.url``; plain HTTP."""
    yield from _serve("registry", Registry(tmp_path_factory.mktemp("registry")))


@pytest.fixture(scope="session")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    """containerd as root with ``.address``, ``.root``, ``.state``, ``.namespace``, ``.ctr()``."""
    yield from _serve("containerd", Containerd(tmp_path_factory.mktemp("containerd")))


@pytest.fixture(scope="session")
def image_builder(tmp_path_factory: pytest.TempPathFactory) -> ImageBuilder:
    """Builds OCI images offline (umoci) and pushes them (skopeo)."""
    return ImageBuilder(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="session")
def sample_built_image(image_builder: ImageBuilder) -> BuiltImage:
    """The standard sample image as an OCI layout, not pushed (see tests/harness/sample.py)."""
    busybox = require_static("busybox")
    return image_builder.build(sample_layers(busybox), name="sample", cmd=["/bin/sh"])


@pytest.fixture(scope="session")
def sample_image(
    image_builder: ImageBuilder, sample_built_image: BuiltImage, registry: Registry
) -> PushedImage:
    """The standard sample image pushed to ``registry`` as ``sample/app:latest``."""
    return image_builder.push(sample_built_image, registry, "sample/app")


@pytest.fixture(scope="session")
def sigstore_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigstoreStack]:
    """A local Fulcio + CT log + Rekor v1 (@sigstore/mock) on 127.0.0.1, random ports."""
    mock = SigstoreMock(tmp_path_factory.mktemp("sigstore"))
    try:
        mock.start()
    except BaseException:
        mock.stop()
        raise
    assert mock.stack is not None
    try:
        yield mock.stack
    finally:
        mock.stop()


@pytest.fixture(scope="session")
def asset() -> Callable[[str], Path]:
    """Return ``find(relpath) -> Path`` looking in tests/assets/.

    A missing asset skips the test with the paths tried, or fails it under CI=true.
    """

    def find(relpath: str) -> Path:
        for base in ASSET_DIRS:
            candidate = base / relpath
            if candidate.exists():
                return candidate
        tried = ", ".join(str(b / relpath) for b in ASSET_DIRS)
        unavailable(f"asset {relpath!r} not found (tried {tried})")

    return find


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests by what they need, so ``-m 'not containerd'`` works without bookkeeping."""
    for item in items:
        fixtures: Any = getattr(item, "fixturenames", ())
        if "/tests/integration/" in Path(str(item.path)).as_posix():
            item.add_marker(pytest.mark.integration)
        if "containerd" in fixtures:
            item.add_marker(pytest.mark.containerd)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print how long each harness service took to become ready."""
    if _STARTUP:
        times = ", ".join(f"{name} {secs:.2f}s" for name, secs in _STARTUP.items())
        terminalreporter.write_line(f"harness startup: {times}")
