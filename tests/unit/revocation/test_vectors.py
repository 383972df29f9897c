# SPDX-License-Identifier: Apache-2.0
"""The published test vectors (tests/assets/revocation-feed-vectors, TEST-ONLY keys)
still hold, and docs/revocation-feed.md quotes them verbatim."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from securesystemslib.signer import CryptoSigner, SSlibKey

from attestor import errors
from attestor.revocation import Revocation
from attestor.revocation.model import parse_time
from attestor.revocation_feed import build_feed_page, feed_etag, sign_feed_page, verify_feed_page
from attestor.verify import TrustedKey

DIR = "revocation-feed-vectors"
DOC = Path(__file__).resolve().parents[3] / "docs" / "revocation-feed.md"


@pytest.fixture(scope="module")
def vectors(asset):
    return json.loads(asset(f"{DIR}/vectors.json").read_text())


@pytest.fixture(scope="module")
def keys(asset, vectors):
    return {
        name: TrustedKey.from_pem(asset(f"{DIR}/{info['public_pem_file']}").read_bytes())
        for name, info in vectors["keys"].items()
    }


def _verify(envelope, keys, v):
    return verify_feed_page(
        json.dumps(envelope).encode(),
        list(keys.values()),
        expected_since=v["expected_since"],
        now=parse_time(v["now"], "now"),
        max_age=timedelta(seconds=v["max_age"]),
    )


def test_keyids_match_the_published_keys(vectors, keys):
    for name, info in vectors["keys"].items():
        assert keys[name].keyid == info["keyid"]


def test_valid_vectors(asset, vectors, keys):
    revocations = [Revocation.from_dict(d) for d in vectors["revocations"]]
    for vector in vectors["valid"]:
        b = vector["build"]
        now = parse_time(b["now"], "now")
        payload = build_feed_page(
            revocations, since=b["since"], limit=b["limit"], now=now,
            server_id=b["server_id"], latest=b["latest"],
        )  # fmt: skip
        assert payload == vector["payload"].encode(), vector["name"]
        key = keys[vector["key"]]
        assert vector["etag"] == feed_etag(
            server_id=b["server_id"], since=b["since"], latest=b["latest"], limit=b["limit"],
            keyid=key.keyid, issued_at=now,
        )  # fmt: skip
        page = _verify(vector["envelope"], keys, vector["verify"])
        got = {
            "next": page.next,
            "latest": page.latest,
            "complete": page.complete,
            "sequences": [r.sequence for r in page.revocations],
            "signed_by": page.signed_by,
        }
        assert got == vector["expect"], vector["name"]
        if vector["key"].endswith("ed25519"):
            # Ed25519 is deterministic: our signer reproduces the envelope byte for byte.
            pem = asset(f"{DIR}/{vector['key']}.key.pem").read_bytes()
            private = serialization.load_pem_private_key(pem, None)
            signer = CryptoSigner(private, SSlibKey.from_crypto(private.public_key()))
            assert sign_feed_page(payload, signer, key.keyid).to_dict() == vector["envelope"]


def test_invalid_vectors(vectors, keys):
    for vector in vectors["invalid"]:
        error = getattr(errors, vector["error"])
        with pytest.raises(error, match=vector["match"]):
            _verify(vector["envelope"], keys, vector["verify"])


def test_the_spec_quotes_the_vectors(vectors):
    text = DOC.read_text()
    blocks = dict(re.findall(r"<!-- vector: ([\w.-]+) -->\n```json\n(.*?)\n```", text, re.S))
    valid = {v["name"]: v for v in vectors["valid"]}
    assert set(blocks) >= {"first-page.payload", "first-page.envelope", "keys"}
    for label, block in blocks.items():
        if label == "keys":
            assert json.loads(block) == vectors["keys"]
            continue
        name, part = label.rsplit(".", 1)
        expected = valid[name][part]
        if part == "payload":
            assert json.loads(block) == json.loads(expected)
        else:
            assert json.loads(block) == expected
