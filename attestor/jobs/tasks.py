# SPDX-License-Identifier: Apache-2.0
"""The task registry: job kind -> function(payload, context) -> result mapping.

Tasks are thin: they take ids and digests from a JSON payload, call the core
and store results through the context. A job kind runs only if it is in ``TASKS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attestor.jobqueue import TaskContext, TaskFn
from attestor.jobs.issuance import issue_task
from attestor.jobs.reverify_task import reverify_task
from attestor.jobs.verification import verify_task

__all__ = ["TASKS", "echo"]


def echo(payload: Mapping[str, Any], context: TaskContext) -> Mapping[str, Any]:
    """Return the payload: a job with no side effect, which checks a runner end to end."""
    context.report_progress({"total": 1, "done": 1})
    return {"echo": dict(payload)}


TASKS: dict[str, TaskFn] = {
    "echo": echo,
    "issue": issue_task,
    "verify": verify_task,
    "reverify": reverify_task,
}
