# SPDX-License-Identifier: Apache-2.0
"""The task registry: job kind -> function(payload, context) -> result mapping.

Tasks are thin: they take ids and digests from a JSON payload, call the core
and store results through the context. A job kind runs only if it is in ``TASKS``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from attestor.config import Settings
from attestor.jobs.reverify import reverify_task
from attestor.jobs.verification import verify_task
from attestor.services.issuance_job import issue_task

__all__ = ["TASKS", "TaskContext", "TaskFn", "echo"]


@dataclass(frozen=True, kw_only=True)
class TaskContext:
    """What a task may use: settings, database sessions, the clock, progress."""

    job_id: str
    settings: Settings
    session_factory: sessionmaker[Session]
    clock: Callable[[], datetime]
    #: Merge counters such as ``{"done": 3}`` into the job's progress.
    report_progress: Callable[[Mapping[str, Any]], None]


TaskFn = Callable[[Mapping[str, Any], TaskContext], Mapping[str, Any] | None]


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
