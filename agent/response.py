# SPDX-License-Identifier: Apache-2.0
"""What the agent does to a container with a violation: alert, pause or kill.

``alert`` (the default) only reports. ``pause`` freezes the task
(``Tasks.Pause``) so an operator can inspect it; ``kill`` sends SIGKILL to
every process of the task (``Tasks.Kill``). Either acts through containerd,
never by signalling PIDs from the host.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Literal, Protocol

from agent.containerd.types import Task, TaskStatus
from attestor.errors import Error, NotFound

__all__ = ["RESPONSE_MODES", "ResponseMode", "ResponseOutcome", "TaskControl", "respond"]

ResponseMode = Literal["alert", "pause", "kill"]
RESPONSE_MODES: tuple[ResponseMode, ...] = ("alert", "pause", "kill")


class TaskControl(Protocol):
    """The Tasks calls a response needs (a :class:`~agent.containerd.ContainerdClient`)."""

    def get_task(self, container_id: str) -> Task: ...

    def pause(self, container_id: str) -> None: ...

    def kill(self, container_id: str, signal: int = ..., *, all_processes: bool = ...) -> None: ...


@dataclass(frozen=True)
class ResponseOutcome:
    """What was done; ``acted`` is False when nothing needed doing or it failed."""

    container_id: str
    mode: ResponseMode
    acted: bool
    message: str
    #: containerd refused or failed the call: the task may still run.
    failed: bool = False


def respond(control: TaskControl, container_id: str, mode: ResponseMode) -> ResponseOutcome:
    """Apply ``mode`` to the container's task; never raises.

    Args:
        control: the containerd client of the container's namespace.
        container_id: the container with a violation.
        mode: ``alert``, ``pause`` or ``kill``.
    """
    if mode == "alert":
        return ResponseOutcome(container_id, mode, False, "alert only")
    try:
        task = control.get_task(container_id)
        if task.status in (TaskStatus.STOPPED, TaskStatus.UNKNOWN):
            return ResponseOutcome(container_id, mode, False, f"task is {task.status.name}")
        if mode == "pause":
            if task.status in (TaskStatus.PAUSED, TaskStatus.PAUSING):
                return ResponseOutcome(container_id, mode, False, "already paused")
            control.pause(container_id)
            return ResponseOutcome(container_id, mode, True, "paused")
        control.kill(container_id, signal.SIGKILL, all_processes=True)
        return ResponseOutcome(container_id, mode, True, "killed (SIGKILL)")
    except NotFound:
        return ResponseOutcome(container_id, mode, False, "container has no task")
    except Error as e:
        return ResponseOutcome(
            container_id, mode, False, f"{mode} failed: {e.message}", failed=True
        )
