# SPDX-License-Identifier: Apache-2.0
"""The agent's side of revocation: following the server's signed feed and
keeping its :class:`~attestor.revocation.RevocationSet` durable across restarts
(spec: docs/revocation-feed.md, "Agent").
"""

from agent.revocation.feed import FeedFetcher, FeedFollower, PollResult
from agent.revocation.state import STATE_FILE, FeedState, LoadedState, load_state, save_state

__all__ = [
    "STATE_FILE",
    "FeedFetcher",
    "FeedFollower",
    "FeedState",
    "LoadedState",
    "PollResult",
    "load_state",
    "save_state",
]
