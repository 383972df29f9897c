# SPDX-License-Identifier: Apache-2.0
"""The task registry: job kind -> function(payload, context) -> result mapping.

Tasks are thin: they take ids and digests from a JSON payload, call the core
and store results through the context. A job kind runs only if it is in ``TASKS``.
The runners use :func:`process_tasks`: the same tasks, with the ``issue`` job
bound to the state its process builds once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attestor.jobqueue import TaskContext, TaskFn
from attestor.jobs.issuance import ISSUE_KIND, bound_issue_task, issue_task
from attestor.jobs.reverify_task import reverify_task
from attestor.jobs.verification import verify_task
from attestor.jobs.worker_state import SharedIssueState

__all__ = ["TASKS", "echo", "process_tasks"]


def echo(payload: Mapping[str, Any], context: TaskContext) -> Mapping[str, Any]:
    """Return the payload: a job with no side effect, which checks a runner end to end."""
    context.report_progress({"total": 1, "done": 1})
    return {"echo": dict(payload)}


TASKS: dict[str, TaskFn] = {
    "echo": echo,
    ISSUE_KIND: issue_task,
    "verify": verify_task,
    "reverify": reverify_task,
}


def process_tasks(issue: SharedIssueState) -> dict[str, TaskFn]:
    """``TASKS`` with the ``issue`` job using ``issue`` instead of a state of its own."""
    return {**TASKS, ISSUE_KIND: bound_issue_task(issue)}
