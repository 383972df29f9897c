# SPDX-License-Identifier: Apache-2.0
"""The periodic re-verification sweep refuses to start without its job queue."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from attestor.errors import ConfigError
from attestor.jobs.reverify import periodic_sweep_entry


def test_periodic_sweep_without_redis_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name == "REDIS_URL" or name.startswith("ATTESTOR_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ATTESTOR_DATA_DIR", str(tmp_path))
    with pytest.raises(ConfigError) as info:
        periodic_sweep_entry(60)
    assert type(info.value) is ConfigError
    assert info.value.message == "the periodic sweep runs on rq, which needs REDIS_URL"
