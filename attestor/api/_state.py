# SPDX-License-Identifier: Apache-2.0
"""The adapters one app instance wires together, kept in ``app.extensions``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from flask import Flask, current_app
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from attestor.api.metrics import Metrics
from attestor.config import Settings
from attestor.jobqueue import JobRunner
from attestor.jobs.worker_state import SharedIssueState
from attestor.services.revocation import FeedStateCache
from attestor.services.token_cache import TokenCache

__all__ = ["AppState", "app_state"]

EXTENSION_KEY = "attestor"


@dataclass(frozen=True, kw_only=True)
class AppState:
    """Settings and adapters of one app; views read them through ``app_state()``."""

    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    runner: JobRunner
    metrics: Metrics
    clock: Callable[[], datetime]
    #: The registry client, policies and signers of issuance, one set per
    #: process: the API's inline requests and the in-process runner's jobs share it.
    issue_state: SharedIssueState
    #: Authenticated tokens of this process (bounded staleness, see its module).
    token_cache: TokenCache = field(default_factory=TokenCache)
    #: The revocation feed's state, reused only to answer 304.
    feed_state_cache: FeedStateCache = field(default_factory=FeedStateCache)


def app_state(app: Flask | None = None) -> AppState:
    """The state of ``app`` (default: the current app)."""
    target = app if app is not None else current_app
    state = target.extensions[EXTENSION_KEY]
    assert isinstance(state, AppState)  # noqa: S101 - set only by create_app
    return state
