# SPDX-License-Identifier: Apache-2.0
"""The ``issue`` job: the same issuance service, run by a JobRunner for large images."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attestor.errors import InvalidInput
from attestor.jobqueue import TaskContext
from attestor.services.context import adapters_from_settings, build_context
from attestor.services.issuance import IssueRequest, IssueResult, issue_image, result_document

__all__ = ["ISSUE_KIND", "issue_task"]

ISSUE_KIND = "issue"


def issue_task(payload: Mapping[str, Any], context: TaskContext) -> Mapping[str, Any]:
    """Issue attestations for ``payload["image"]``; the result is the POST response body.

    Raises:
        InvalidInput: a payload without an image reference, or any error of
            :func:`attestor.services.issuance.issue_image`.
    """
    image = payload.get("image")
    if not isinstance(image, str):
        raise InvalidInput("issue job payload needs an image reference")
    adapters = adapters_from_settings(context.settings)
    ctx = build_context(context.settings, context.session_factory, adapters)
    context.report_progress({"total": 1, "done": 0})
    result = issue_image(
        ctx, IssueRequest(image=image, attach=bool(payload.get("attach"))), now=context.clock
    )
    # Without a download budget issue_image never defers.
    assert isinstance(result, IssueResult)  # noqa: S101
    context.report_progress({"done": 1})
    return {**result_document(result), "created": result.created}
