# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import pytest
from flask import Flask, g

from attestor.api.auth import Principal, ensure_agent_scope, require_roles
from attestor.errors import Forbidden


def test_agent_tokens_are_bound_to_their_agent(app: Flask) -> None:
    with app.test_request_context():
        g.principal = Principal(token_id="t", role="agent", agent_id="node-1")
        ensure_agent_scope("node-1")
        with pytest.raises(Forbidden, match="node-1"):
            ensure_agent_scope("node-2")
        g.principal = Principal(token_id="t", role="admin", agent_id=None)
        ensure_agent_scope("node-2")


def test_require_roles_rejects_unknown_roles() -> None:
    with pytest.raises(ValueError, match="roles"):
        require_roles("root")
    with pytest.raises(ValueError, match="roles"):
        require_roles()
