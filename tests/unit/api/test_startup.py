# SPDX-License-Identifier: Apache-2.0
"""Start-up: directories, migrations, the signing key, idempotence."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flask import Flask

from attestor.api._state import app_state
from attestor.signing.keys import generate_key_file
from attestor.store import signing_keys


def test_configured_file_key_becomes_the_active_key(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    uri, info = generate_key_file(tmp_path / "operator-keys", "ed25519")
    app = make_app(signing_key=uri)
    with app_state(app).session_factory() as s:
        active = signing_keys.active_key(s)
    assert active is not None
    assert active.keyid == info.keyid
    assert active.algorithm == "ed25519"
    assert active.signer_uri == uri
    assert active.public_key_pem == info.public_key_pem
    # No default key was generated next to it.
    assert list(app_state(app).settings.keys_dir.iterdir()) == []


def test_restart_keeps_the_generated_key(make_app: Callable[..., Flask]) -> None:
    first = make_app()
    second = make_app()
    with app_state(first).session_factory() as s:
        keys_first = signing_keys.list_keys(s)
    with app_state(second).session_factory() as s:
        keys_second = signing_keys.list_keys(s)
    assert len(keys_first) == 1
    assert keys_first == keys_second


def test_settings_repr_hides_urls(app: Flask) -> None:
    assert "database_url" not in repr(app_state(app).settings)
