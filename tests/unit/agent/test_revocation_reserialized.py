# SPDX-License-Identifier: Apache-2.0
"""The agent's feed-fed revocation set revokes an attestation however its envelope
is re-serialized (keyid changed, junk signature, reordered signatures), also after
a restart from the persisted state; a state file of the older format is re-read."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from securesystemslib.signer import CryptoSigner

from agent.revocation import STATE_FILE, FeedFollower, load_state
from agent.server import ServerClient
from attestor.dsse import IN_TOTO_PAYLOAD_TYPE, Envelope, Signature
from attestor.errors import VerificationError
from attestor.revocation import AttestationTarget
from attestor.signing.dsse import sign_envelope
from attestor.verify import Verifier
from tests.unit.agent._feed_server import Clock, FeedServer, rev, serve, trusted
from tests.unit.revocation._helpers import LAYER, layer_statement

SERVER = CryptoSigner.generate_ecdsa()
#: The key our attestations are signed with (the server's issuing key).
ISSUER = CryptoSigner.generate_ecdsa()
BYSTANDER = CryptoSigner.generate_ecdsa()
MAX_AGE = timedelta(minutes=15)

PAYLOAD = layer_statement()
OURS = sign_envelope(PAYLOAD, ISSUER, keyid=ISSUER.public_key.keyid).signatures[0]
COSIG = sign_envelope(PAYLOAD, BYSTANDER, keyid=BYSTANDER.public_key.keyid).signatures[0]
STORED = Envelope(IN_TOTO_PAYLOAD_TYPE, PAYLOAD, (OURS, COSIG))
COPIES = {
    "as stored": STORED,
    "keyid changed": Envelope(IN_TOTO_PAYLOAD_TYPE, PAYLOAD, (replace(OURS, keyid="forged"),)),
    "junk signature appended": Envelope(
        IN_TOTO_PAYLOAD_TYPE, PAYLOAD, (OURS, COSIG, Signature("junk", b"\x02" * 64))
    ),
    "signatures reordered": Envelope(IN_TOTO_PAYLOAD_TYPE, PAYLOAD, (COSIG, OURS)),
}
ATTESTATION_ID = "6f1c2d9e-0000-4000-8000-0000000000c1"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def feed(clock: Clock) -> Iterator[FeedServer]:
    # What the server puts in the feed for POST /v1/revocations of this attestation.
    target = AttestationTarget(ATTESTATION_ID, STORED.pae_sha256())
    with serve(FeedServer(SERVER, clock, revocations=[rev(1), rev(2, target)])) as f:
        yield f


def _follower(feed: FeedServer, state_dir: Path, clock: Clock) -> FeedFollower:
    client = ServerClient(feed.url, "t0ken", timeout=5)
    return FeedFollower(client, [trusted(SERVER)], state_dir, max_age=MAX_AGE, clock=clock)


def _assert_all_copies_revoked(follower: FeedFollower) -> None:
    verifier = Verifier(keys=[trusted(ISSUER)], revocations=follower.revset)
    for name, copy in COPIES.items():
        assert name == "as stored" or hashlib.sha256(copy.to_json()).hexdigest() != (
            hashlib.sha256(STORED.to_json()).hexdigest()
        )
        with pytest.raises(VerificationError, match=r"^revoked: test 2$") as err:
            verifier.verify_envelope(copy.to_json(), artifact_digest=LAYER)
        assert err.value.detail["revocation"]["id"] == "rev-2", name


def test_copies_of_a_revoked_envelope_are_revoked_from_the_feed(feed, tmp_path, clock):
    follower = _follower(feed, tmp_path, clock)
    # Before the feed: each copy verifies (they are real, validly signed copies).
    plain = Verifier(keys=[trusted(ISSUER)], revocations=follower.revset)
    for copy in COPIES.values():
        assert plain.verify_envelope(copy.to_json(), artifact_digest=LAYER).keys == (
            ISSUER.public_key.keyid,
        )
    result = follower.poll()
    assert result.anomaly is None and result.revset.version == 2
    _assert_all_copies_revoked(follower)
    # After a restart the persisted set still names the attestation the same way.
    _assert_all_copies_revoked(_follower(feed, tmp_path, clock))


def test_a_state_file_of_the_older_format_is_set_aside_and_read_again(feed, tmp_path, clock):
    # What an agent before this format wrote: an attestation target by envelope hash.
    doc = {
        "feed_id": "srv-1", "cursor": 2, "latest": 2, "etag": None, "issued_at": None,
        "offset": 0, "retained": [],
        "revocations": [
            {**rev(1).to_dict()},
            {**rev(2).to_dict(), "target": {
                "kind": "attestation", "attestation_id": ATTESTATION_ID,
                "envelope_sha256": hashlib.sha256(STORED.to_json()).hexdigest()}},
        ],
    }  # fmt: skip
    body = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    outer = {"format": 1, "sha256": hashlib.sha256(body).hexdigest(), "state": doc}
    (tmp_path / STATE_FILE).write_text(json.dumps(outer))

    loaded = load_state(tmp_path)
    assert loaded.state.cursor == 0 and len(loaded.state.revset()) == 0
    assert loaded.problem is not None and "format 1 of an older agent" in loaded.problem
    assert (tmp_path / f"{STATE_FILE}.corrupt").exists()
    # The feed is read again from cursor 0 and the attestation is revoked by identity.
    follower = _follower(feed, tmp_path, clock)
    assert follower.state.cursor == 0
    assert follower.poll().revset.version == 2
    _assert_all_copies_revoked(follower)
