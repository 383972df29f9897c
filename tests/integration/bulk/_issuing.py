# SPDX-License-Identifier: Apache-2.0
"""An issuing app (temp SQLite, dev policy) against the harness registry."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from flask import Flask

from attestor.api import create_app
from attestor.api._state import app_state
from attestor.config import load_settings
from attestor.store import tokens as token_store
from tests.conftest import REPO_ROOT


def issuing_app(root: Path, registry: Any, env: dict[str, str] | None = None) -> Flask:
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
    return create_app(settings, overrides={"TESTING": True})


def bearer(app: Flask, role: str) -> dict[str, str]:
    with app_state(app).session_factory.begin() as session:
        plaintext, _ = token_store.create_token(
            session, role=role, agent_id=None, now=app_state(app).clock()
        )
    return {"Authorization": f"Bearer {plaintext}"}
