# SPDX-License-Identifier: Apache-2.0
"""The Flask app factory: wires settings, store, job runner, metrics and blueprints."""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Flask, request
from flask_smorest import Api
from werkzeug.exceptions import UnsupportedMediaType

from attestor import __version__
from attestor.api._json_body import StrictJSONProvider
from attestor.api._state import EXTENSION_KEY, AppState
from attestor.api.auth import SECURITY_SCHEME, check_declarations
from attestor.api.blueprints import BLUEPRINT_MODULES
from attestor.api.limits import install_body_limits
from attestor.api.metrics import Metrics
from attestor.api.observability import install_observability
from attestor.api.problems import PROBLEM_MEDIA_TYPE, ProblemSchema, register_error_handlers
from attestor.config import Settings, load_settings
from attestor.errors import InvalidInput
from attestor.jobqueue import JobRunner, utc_now
from attestor.jobs.runner import InlineRunner, RQRunner
from attestor.jobs.worker_state import SharedIssueState, build_issue_state
from attestor.services.policy_import import import_directory
from attestor.store.bootstrap import prepare
from attestor.store.db import make_engine, make_session_factory

__all__ = ["create_app"]

#: Set to True in ``overrides`` when start-up already ran (``attestor serve`` does it once
#: before forking workers, so they don't race on migrations).
PREPARED_KEY = "ATTESTOR_PREPARED"
# The /docs page loads Swagger UI's assets from this CDN, pinned to one release of
# the npm package swagger-ui-dist and checked by Subresource Integrity (our
# templates/swagger_ui.html), so the browser refuses any other bytes. The hashes
# are sha384 of the files of `npm pack swagger-ui-dist@5.35.0`. /openapi.json
# itself is always served locally.
SWAGGER_UI_CDN = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.35.0/"
SWAGGER_UI_ASSETS = {
    "swagger-ui-bundle.js": (
        "sha384-gjRm0bEPMeTmMh5jT2cHccIwCUZSTd8YC+j0d0sXw0MdGEfScduGpSyF3ZSSLkX9"
    ),
    "swagger-ui.css": "sha384-WlYgdmXYOOBWL5apwjDEZwN+U3HmXSSu5R6V5aGxEcf7z+KuRNwBhoxKVN1i3D5I",
    "swagger-ui-standalone-preset.js": (
        "sha384-My2aDM4r2Mbm3ybHcubKm9O9U8FEjvF/O5nGvE9YK5dzqOTbWEKa79RPJ1krdMaF"
    ),
}
_TEMPLATES = str(Path(__file__).with_name("templates"))
# Endpoints that flask-smorest adds for the docs; public by nature.
DOC_ENDPOINTS = frozenset({"api-docs.openapi_json", "api-docs.openapi_swagger_ui"})


class _Api(Api):  # type: ignore[misc]
    # Documents every default error as our problem document.
    ERROR_SCHEMA = ProblemSchema

    def _register_responses(self) -> None:
        # flask-smorest documents its error responses as application/json; ours are
        # problem+json, so register them with that media type.
        self.DEFAULT_RESPONSE_CONTENT_TYPE = PROBLEM_MEDIA_TYPE
        try:
            super()._register_responses()
        finally:
            del self.DEFAULT_RESPONSE_CONTENT_TYPE


def create_app(
    settings: Settings | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    runner: JobRunner | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> Flask:
    """Build the app. Nothing runs at import time.

    Args:
        settings: Defaults to ``load_settings(os.environ)``.
        overrides: Flask config values applied last (e.g. ``{"TESTING": True}``).
        runner: Job runner; defaults to ``RQRunner`` when ``redis_url`` is set,
            else ``InlineRunner``.
        clock: Source of "now" for everything the app stores.

    Raises:
        ConfigError: Invalid settings or unusable data directory.
        Unavailable: The database cannot be reached or migrated.
    """
    settings = settings if settings is not None else load_settings(os.environ)
    # templates/: our swagger_ui.html replaces flask-smorest's (pinned, with SRI).
    app = Flask("attestor", static_folder=None, template_folder=_TEMPLATES)
    app.jinja_env.globals["sri"] = SWAGGER_UI_ASSETS
    app.json = StrictJSONProvider(app)
    app.config.update(
        API_TITLE="attestor",
        API_VERSION=__version__,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL=SWAGGER_UI_CDN,
    )
    app.config.update(overrides or {})

    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)
    if not app.config.get(PREPARED_KEY):
        prepare(settings, engine, now=clock())
        # The policy files into the database, like kubectl apply (attestor serve
        # does it once in its master instead).
        import_directory(factory, settings.policy_dir, now=clock())
    issue_state = SharedIssueState(
        settings, build=functools.partial(build_issue_state, session_factory=factory)
    )
    default_runner = runner is None
    if runner is None:
        runner = (
            RQRunner(settings.redis_url)
            if settings.redis_url
            else InlineRunner(settings, factory, clock=clock, issue_state=issue_state)
        )
    app.extensions[EXTENSION_KEY] = AppState(
        settings=settings,
        engine=engine,
        session_factory=factory,
        runner=runner,
        metrics=Metrics(),
        clock=clock,
        issue_state=issue_state,
    )

    install_observability(app)
    install_body_limits(app)
    app.before_request(_refuse_unusable_request)
    api = _Api(
        app, spec_kwargs={"info": {"description": "Layer attestations for container images."}}
    )
    _document_components(api)
    for module_name in BLUEPRINT_MODULES:
        api.register_blueprint(importlib.import_module(module_name).blp)
    # After Api(): these replace flask-smorest's own JSON error handler.
    register_error_handlers(app)
    check_declarations(app, exempt=DOC_ENDPOINTS)
    if not app.testing:
        _start_background_duties(app, default_runner=default_runner)
    return app


def _start_background_duties(app: Flask, *, default_runner: bool) -> None:
    """Load policies now (a bad policy stops the start), then schedule re-verification.

    With Redis, ``attestor worker`` runs the periodic sweep through rq's
    scheduler; without it each server process runs a timer thread (the job
    table lets one sweep a period through) and the runner's heartbeat thread,
    which also fails jobs that a dead process left unfinished.

    Raises:
        ConfigError: a policy file is invalid.
    """
    from attestor.api.attestations import issuance_adapters
    from attestor.jobs.reverify import SweepTimer, enqueue_policy_sweeps

    state = app.extensions[EXTENSION_KEY]
    policies = issuance_adapters(app).policies
    enqueue_policy_sweeps(state.session_factory, state.runner, policies, now=state.clock())
    if default_runner and isinstance(state.runner, InlineRunner):
        state.runner.start()
        SweepTimer(state.session_factory, state.runner, clock=state.clock).start()


def _refuse_unusable_request() -> None:
    # PostgreSQL text cannot hold NUL: an id or filter with one was a 500 at the first
    # query. No id, digest or filter we accept contains one.
    if "\x00" in request.path or any(
        "\x00" in key or "\x00" in value for key, value in request.args.items(multi=True)
    ):
        raise InvalidInput("the URL must not contain NUL")
    # webargs skips a body that is not declared JSON and parses {} instead: a text/plain
    # POST to a view whose fields all have defaults (keys/rotate) would act on defaults
    # the caller never sent. Every body our blueprints accept is JSON.
    if request.blueprint and request.content_length and not request.is_json:
        raise UnsupportedMediaType("request bodies must be application/json")


def _document_components(api: Any) -> None:
    api.spec.components.security_scheme(
        SECURITY_SCHEME, {"type": "http", "scheme": "bearer", "description": "attestor token"}
    )
    problem_ref = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    api.spec.components.response(
        "Unauthorized",
        {"description": "Missing, unknown or revoked token.", "content": problem_ref},
    )
    api.spec.components.response(
        "Forbidden", {"description": "The token's role may not do this.", "content": problem_ref}
    )
