# SPDX-License-Identifier: Apache-2.0
"""An issuing app (temp SQLite + data dir, dev policy) against the harness registry."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from attestor.api import create_app
from attestor.api._state import app_state
from attestor.config import load_settings
from attestor.jobs.runner import InlineRunner
from attestor.registry import RegistryClient
from attestor.store import tokens as token_store
from attestor.store.models import AttestationModel, FileManifestModel, ImageModel
from tests.conftest import REPO_ROOT
from tests.integration.issuance._images import client_for

_names = itertools.count()


@dataclass
class Server:
    app: Flask
    client: FlaskClient
    admin: dict[str, str]
    pipeline: dict[str, str]
    agent: dict[str, str]

    def counts(self) -> tuple[int, int, int]:
        with app_state(self.app).session_factory() as s:
            return tuple(  # type: ignore[return-value]
                int(s.scalar(select(func.count()).select_from(m)) or 0)
                for m in (ImageModel, AttestationModel, FileManifestModel)
            )

    def issue(self, image: str, token: dict[str, str] | None = None) -> Any:
        return self.client.post(
            "/v1/attestations", json={"image": image}, headers=token or self.pipeline
        )

    def get(self, url: str, token: dict[str, str] | None = None) -> Any:
        return self.client.get(url, headers=token or self.pipeline)

    def active_key(self) -> dict[str, Any]:
        keys = self.get("/v1/keys").get_json()["keys"]
        return next(k for k in keys if k["status"] == "active")


def _bearer(app: Flask, role: str) -> dict[str, str]:
    agent_id = "node-1" if role == "agent" else None
    with app_state(app).session_factory.begin() as session:
        plaintext, _ = token_store.create_token(
            session, role=role, agent_id=agent_id, now=app_state(app).clock()
        )
    return {"Authorization": f"Bearer {plaintext}"}


@pytest.fixture
def make_server(tmp_path: Path, registry: Any) -> Iterator[Callable[..., Server]]:
    apps: list[Flask] = []

    def make(*, env: dict[str, str] | None = None, config: dict[str, Any] | None = None) -> Server:
        root = tmp_path / f"srv{len(apps)}"
        policies = root / "policies"
        policies.mkdir(parents=True)
        shutil.copy(REPO_ROOT / "policies" / "dev.yaml", policies / "dev.yaml")
        settings = load_settings(
            {
                "ATTESTOR_DATA_DIR": str(root / "var"),
                "ATTESTOR_INSECURE_REGISTRIES": registry.host,
                "ATTESTOR_POLICY_DIR": str(policies),
                **(env or {}),
            }
        )
        app = create_app(settings, overrides={"TESTING": True, **(config or {})})
        apps.append(app)
        return Server(
            app=app,
            client=app.test_client(),
            admin=_bearer(app, "admin"),
            pipeline=_bearer(app, "pipeline"),
            agent=_bearer(app, "agent"),
        )

    yield make
    for app in apps:
        state = app_state(app)
        if isinstance(state.runner, InlineRunner):
            state.runner.shutdown()
        state.engine.dispose()


@pytest.fixture
def server(make_server: Callable[..., Server]) -> Server:
    return make_server()


@pytest.fixture
def pusher(registry: Any, tmp_path: Path) -> RegistryClient:
    return client_for(registry.host, tmp_path / "push-cache")


@pytest.fixture
def unique_name(registry: Any) -> Callable[[str], str]:
    def make(prefix: str) -> str:
        return f"{registry.host}/issuance/{prefix}{next(_names)}"

    return make


@pytest.fixture
def blob_file(registry: Any) -> Callable[[str], Path]:
    """``blob_file(digest)``: the registry's data file of a blob (to corrupt or delete)."""

    def find(digest: str) -> Path:
        hexd = digest.split(":", 1)[1]
        matches = list(Path(registry.workdir).rglob(f"blobs/sha256/{hexd[:2]}/{hexd}/data"))
        assert len(matches) == 1, f"blob {digest} not found under {registry.workdir}"
        return matches[0]

    return find
