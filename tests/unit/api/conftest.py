# SPDX-License-Identifier: Apache-2.0
"""Shared API fixtures: an app on a temp SQLite database, its client, a token per role."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from attestor.api import create_app
from attestor.api._state import app_state
from attestor.config import Settings, load_settings
from attestor.jobs.runner import InlineRunner
from attestor.store import tokens as token_store

NOW = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)


def fixed_clock() -> datetime:
    return NOW


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings({"ATTESTOR_DATA_DIR": str(tmp_path / "var")})


@pytest.fixture
def make_app(settings: Settings) -> Iterator[Callable[..., Flask]]:
    apps: list[Flask] = []

    def make(**changes: Any) -> Flask:
        app = create_app(
            replace(settings, **changes), overrides={"TESTING": True}, clock=fixed_clock
        )
        apps.append(app)
        return app

    yield make
    for app in apps:
        state = app_state(app)
        if isinstance(state.runner, InlineRunner):
            state.runner.shutdown()
        state.engine.dispose()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def create_token(app: Flask, role: str, agent_id: str | None = None) -> tuple[str, str]:
    with app_state(app).session_factory.begin() as session:
        plaintext, row = token_store.create_token(session, role=role, agent_id=agent_id, now=NOW)
    return plaintext, row.id


@pytest.fixture
def role_tokens(app: Flask) -> dict[str, str]:
    """Plaintext bearer token per role (``agent`` is bound to agent id ``node-1``)."""
    return {
        "admin": create_token(app, "admin")[0],
        "pipeline": create_token(app, "pipeline")[0],
        "agent": create_token(app, "agent", "node-1")[0],
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
