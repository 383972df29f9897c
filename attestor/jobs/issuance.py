# SPDX-License-Identifier: Apache-2.0
"""The ``issue`` job: the same issuance service, run by a JobRunner for large images.

The runners bind it to their process's :class:`SharedIssueState`
(:func:`bound_issue_task`), so the registry client, the policies and the
signers are built once per process, not per job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attestor.errors import InvalidInput
from attestor.jobqueue import TaskContext, TaskFn
from attestor.jobs.worker_state import IssueState, SharedIssueState, build_issue_state
from attestor.services.context import build_context
from attestor.services.issuance import IssueRequest, IssueResult, issue_image, result_document

__all__ = ["ISSUE_KIND", "bound_issue_task", "issue_task"]

ISSUE_KIND = "issue"


def issue_task(
    payload: Mapping[str, Any], context: TaskContext, *, state: IssueState | None = None
) -> Mapping[str, Any]:
    """Issue attestations for ``payload["image"]``; the result is the POST response body.

    Args:
        payload: ``{"image": reference, "attach": bool}``.
        context: the job's settings, database and clock.
        state: the process's policies, registry client and signers; without
            it they are built for this job alone.

    Raises:
        InvalidInput: a payload without an image reference, or any error of
            :func:`attestor.services.issuance.issue_image`.
        ConfigError: ``state`` is None and the policies, the credentials file
            or keyless signing cannot be loaded.
    """
    image = payload.get("image")
    if not isinstance(image, str):
        raise InvalidInput("issue job payload needs an image reference")
    if state is None:
        state = build_issue_state(context.settings, context.session_factory)
    # The signer (active key or keyless identity) and the policy set are asked
    # for now, so a rotation or revocation since the last job applies.
    ctx = build_context(
        context.settings,
        context.session_factory,
        state.adapters,
        policies=state.policies.current(),
    )
    context.report_progress({"total": 1, "done": 0})
    result = issue_image(
        ctx, IssueRequest(image=image, attach=bool(payload.get("attach"))), now=context.clock
    )
    # Without a download budget issue_image never defers.
    assert isinstance(result, IssueResult)  # noqa: S101
    context.report_progress({"done": 1})
    return {**result_document(result), "created": result.created}


def bound_issue_task(shared: SharedIssueState) -> TaskFn:
    """:func:`issue_task` with the state of ``shared`` (built at its first job, if not before)."""

    def task(payload: Mapping[str, Any], context: TaskContext) -> Mapping[str, Any]:
        return issue_task(payload, context, state=shared.get())

    return task
