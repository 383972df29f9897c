# SPDX-License-Identifier: Apache-2.0
"""The ``sigstore_stack`` session fixture (the lead may move it to tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.sigstore_stack import SigstoreMock, SigstoreStack


@pytest.fixture(scope="session")
def sigstore_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigstoreStack]:
    """A local Fulcio + CT log + Rekor v1 (@sigstore/mock) on 127.0.0.1, random ports."""
    mock = SigstoreMock(tmp_path_factory.mktemp("sigstore"))
    try:
        mock.start()
    except BaseException:
        mock.stop()
        raise
    assert mock.stack is not None
    try:
        yield mock.stack
    finally:
        mock.stop()
