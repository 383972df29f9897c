# SPDX-License-Identifier: Apache-2.0
"""One process builds issuance's registry client, policies and signers once.

The API's inline requests and the in-process runner's ``issue`` jobs share
them; before, each built its own (two registry clients, two policy sources,
two keyless signers per server process).
"""

from __future__ import annotations

from flask import Flask

from attestor.api._state import app_state
from attestor.api.attestations import issuance_adapters
from attestor.jobs.runner import InlineRunner


def test_requests_and_in_process_jobs_share_one_issue_state(app: Flask) -> None:
    state = app_state(app)
    assert isinstance(state.runner, InlineRunner)
    assert state.runner.issue_state is state.issue_state
    adapters = issuance_adapters(app)
    assert adapters is state.runner.issue_state.get().adapters
    assert adapters.registry is state.issue_state.get().adapters.registry
    assert issuance_adapters(app) is adapters
