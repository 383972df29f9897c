# SPDX-License-Identifier: Apache-2.0
"""A setuid binary hidden behind a NUL-led checksum: containerd unpacks it, we refuse.

The layer (``tests/assets/tar-corpus/backdoor-nul-checksum.tar``) puts a
setuid ``usr/bin/backdoor`` and an ``etc/ld.so.preload`` after a header whose
checksum field starts with a NUL byte. Go's ``archive/tar`` trims the NUL and
containerd unpacks both files; CPython's ``tarfile`` (which Python-based
scanners use) takes that header for the end of the archive and never sees
them, while the diffID still matches because the rest is hashed unparsed.
No one manifest can describe both readings, so the server must refuse the
image with a reason naming the ambiguity, and store nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from attestor.api._state import app_state
from tests.harness.binaries import require_root
from tests.harness.images import ImageBuilder
from tests.harness.services import Containerd
from tests.integration.issuance.conftest import Server
from tests.integration.manifest._go_reading import corpus_generator, layout_of
from tests.integration.manifest.test_snapshot_equality import SNAPSHOTTER, layer_dir

PROBLEM = "application/problem+json"


def _issue_outcome(server: Server, image: str) -> tuple[int, dict[str, Any]]:
    """Status and body of the issuance, following a deferred job to its end."""
    response = server.issue(image)
    body = response.get_json()
    if response.status_code != 202:
        return response.status_code, body
    app_state(server.app).runner.wait(timeout=120)  # type: ignore[attr-defined]
    job = server.get(body["job"]["url"]).get_json()
    return 202, job


def test_backdoor_behind_nul_checksum_is_refused(
    server: Server,
    containerd: Containerd,
    registry: Any,
    image_builder: ImageBuilder,
    asset: Any,
    tmp_path: Path,
) -> None:
    require_root()
    corpus = corpus_generator()
    layer = asset("tar-corpus/backdoor-nul-checksum.tar").read_bytes()
    pushed = image_builder.push(layout_of(tmp_path / "oci", [layer]), registry, "tar/backdoor")

    # containerd pulls the image from the registry and unpacks the hidden files.
    containerd.ctr("images", "pull", "--plain-http", "--snapshotter", SNAPSHOTTER, pushed.by_tag)
    with layer_dir(containerd, pushed.image.diff_ids[0]) as directory:
        backdoor = os.lstat(directory / "usr/bin/backdoor")
        assert backdoor.st_mode & 0o7777 == 0o4755 and backdoor.st_uid == 0
        assert (directory / "usr/bin/backdoor").read_bytes() == corpus.BACKDOOR
        assert (directory / "etc/ld.so.preload").read_bytes() == corpus.PRELOAD

    counts = server.counts()
    status, body = _issue_outcome(server, pushed.by_digest)
    if status == 202:  # issued as a background job
        assert body["status"] == "failed", body
        assert not (body.get("result") or {}).get("attestations"), body
        reason = body["error"] or ""
    else:
        assert status == 400, body
        assert body["type"] == "urn:attestor:problem:invalid-input", body
        reason = body["detail"]
    assert "ambiguous checksum field" in reason, reason
    assert "CPython's tarfile reads 0 (a bad checksum: the end of the archive)" in reason, reason
    assert server.counts() == counts  # nothing stored
