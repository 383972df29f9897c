# SPDX-License-Identifier: Apache-2.0
"""An app on a temp SQLite database with the in-process runner, and tokens."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from attestor.api import create_app
from attestor.api._state import EXTENSION_KEY, app_state
from attestor.config import load_settings
from attestor.jobs.runner import InlineRunner
from attestor.store import tokens as token_store
from tests.unit.bulk._envelopes import WHEN


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app(
        load_settings({"ATTESTOR_DATA_DIR": str(tmp_path / "var")}),
        overrides={"TESTING": True},
        clock=lambda: WHEN,
    )
    yield app
    state = app_state(app)
    if isinstance(state.runner, InlineRunner):
        state.runner.shutdown()
    state.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def make_token(app: Flask, role: str) -> dict[str, str]:
    with app_state(app).session_factory.begin() as session:
        agent_id = "node-1" if role == "agent" else None
        plaintext, _ = token_store.create_token(session, role=role, agent_id=agent_id, now=WHEN)
    return {"Authorization": f"Bearer {plaintext}"}


@pytest.fixture
def pipeline(app: Flask) -> dict[str, str]:
    return make_token(app, "pipeline")


def with_settings(app: Flask, **changes: object) -> None:
    """Swap some settings of a built app (as if set through ATTESTOR_* variables)."""
    state = app_state(app)
    settings = dataclasses.replace(state.settings, **changes)  # type: ignore[arg-type]
    app.extensions[EXTENSION_KEY] = dataclasses.replace(state, settings=settings)
