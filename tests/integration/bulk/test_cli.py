# SPDX-License-Identifier: Apache-2.0
"""``attestor verify`` against a real HTTP server (in-process runner, no Redis)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from werkzeug.serving import make_server

from attestor.api import create_app
from attestor.api._state import app_state
from attestor.cli.main import cli
from attestor.config import load_settings
from attestor.jobs.runner import InlineRunner
from attestor.store import tokens as token_store
from tests.unit.bulk._envelopes import WHEN, signed_envelopes


@dataclass
class Server:
    url: str
    token: str
    files: list[Path]
    layers: list[str]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    app = create_app(
        load_settings({"ATTESTOR_DATA_DIR": str(tmp_path / "var")}), clock=lambda: WHEN
    )
    with app_state(app).session_factory.begin() as session:
        token, _ = token_store.create_token(session, role="pipeline", agent_id=None, now=WHEN)
    files, layers = [], []
    for i, (layer, envelope) in enumerate(signed_envelopes(app_state(app).session_factory, 3)):
        path = tmp_path / f"env{i}.json"
        path.write_text(json.dumps(envelope))
        files.append(path)
        layers.append(layer)
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{http.server_port}", token, files, layers)
    finally:
        http.shutdown()
        thread.join(timeout=10)
        runner = app_state(app).runner
        if isinstance(runner, InlineRunner):
            runner.shutdown()
        app_state(app).engine.dispose()


def _run(server: Server, *args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        cli,
        ["verify", "--server", server.url, "--token", server.token, "--poll-interval", "0.05"]
        + [str(a) for a in args],
    )
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_all_verified_exits_0_with_summary(server: Server) -> None:
    code, out, err = _run(server, *server.files)
    assert code == 0, (out, err)
    assert out.strip().splitlines()[-1] == "3 verified, 0 rejected (0 revoked) of 3"
    assert "verifying" in err  # the progress bar goes to stderr


def test_a_rejection_exits_1_and_names_the_file(server: Server) -> None:
    code, out, _ = _run(server, "--artifact-digest", server.layers[1], *server.files)
    assert code == 1
    rejected = [line for line in out.splitlines() if line.startswith("REJECTED")]
    assert [line.split(":")[0] for line in rejected] == [
        f"REJECTED {server.files[0]}",
        f"REJECTED {server.files[2]}",
    ]
    assert out.strip().splitlines()[-1] == "1 verified, 2 rejected (0 revoked) of 3"


def test_bad_input_and_network_errors_are_one_line(server: Server, tmp_path: Path) -> None:
    junk = tmp_path / "junk.json"
    junk.write_text("[1]")
    code, _, err = _run(server, junk)
    assert code == 2
    assert err.strip() == f"attestor: {junk}: expected a JSON object"
    twice = tmp_path / "twice.json"
    twice.write_text('{"payloadType": "t", "payload": "e30=", "payload": "W10=", "signatures": []}')
    code, _, err = _run(server, twice)
    assert code == 2
    assert err.strip() == f"attestor: {twice}: duplicate JSON key 'payload'"
    code, _, err = _run(server, "--artifact-digest", "md5:1", *server.files)
    assert (code, err.count("\n")) == (2, 1)
    bad_token = CliRunner().invoke(
        cli, ["verify", "--server", server.url, "--token", "nope", str(server.files[0])]
    )
    assert bad_token.exit_code == 2
    assert "HTTP 401" in bad_token.stderr
    offline = CliRunner().invoke(
        cli,
        ["verify", "--server", "http://127.0.0.1:9", "--token", "t", str(server.files[0])],
    )
    assert offline.exit_code == 2
    assert offline.stderr.startswith("attestor: cannot reach http://127.0.0.1:9")
