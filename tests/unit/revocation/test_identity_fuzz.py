# SPDX-License-Identifier: Apache-2.0
"""Hypothesis: whatever is done to the unsigned parts of a revoked envelope (keyids,
extra, dropped or reordered signatures, JSON layout, base64 alphabet), it keeps its
identity and the verifier reports it revoked, or refuses it outright."""

from __future__ import annotations

import base64
import json

from hypothesis import given, settings
from hypothesis import strategies as st
from securesystemslib.signer import CryptoSigner

from attestor.dsse import IN_TOTO_PAYLOAD_TYPE, Envelope, Signature, parse_envelope
from attestor.errors import InvalidInput, VerificationError
from attestor.revocation import AttestationTarget, RevocationSet
from attestor.signing.dsse import sign_envelope
from attestor.verify import Verifier
from tests.unit.revocation._helpers import LAYER, layer_statement, rev, trusted

SIGNER = CryptoSigner.generate_ecdsa()
PAYLOAD = layer_statement()
REAL = sign_envelope(PAYLOAD, SIGNER, keyid=SIGNER.public_key.keyid).signatures[0]
IDENTITY = Envelope(IN_TOTO_PAYLOAD_TYPE, PAYLOAD, (REAL,)).pae_sha256()
VERIFIER = Verifier(
    keys=[trusted(SIGNER)],
    revocations=RevocationSet([rev(1, AttestationTarget("att-1", IDENTITY), reason="gone")]),
)

keyids = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
junk = st.builds(Signature, keyid=keyids, sig=st.binary(min_size=1, max_size=96))


def _b64(raw: bytes, url_safe: bool) -> str:
    if url_safe:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return base64.b64encode(raw).decode()


@settings(max_examples=150, deadline=None)
@given(
    others=st.lists(junk, max_size=8),
    position=st.integers(min_value=0, max_value=8),
    real_keyid=keyids,
    url_safe=st.booleans(),
    indent=st.one_of(st.none(), st.integers(min_value=0, max_value=4)),
    reverse_members=st.booleans(),
)
def test_revoked_whatever_the_unsigned_parts(
    others, position, real_keyid, url_safe, indent, reverse_members
):
    signatures = list(others)
    signatures.insert(min(position, len(signatures)), Signature(real_keyid, REAL.sig))
    members = {
        "payloadType": IN_TOTO_PAYLOAD_TYPE,
        "payload": _b64(PAYLOAD, url_safe),
        "signatures": [{"keyid": s.keyid, "sig": _b64(s.sig, url_safe)} for s in signatures],
    }
    if reverse_members:
        members = dict(reversed(members.items()))
    data = json.dumps(members, indent=indent, ensure_ascii=bool(indent)).encode()
    assert parse_envelope(data).pae_sha256() == IDENTITY
    try:
        VERIFIER.verify_envelope(data, artifact_digest=LAYER)
    except VerificationError as e:
        assert e.message == "revoked: gone", e.message
        assert e.detail["pae_sha256"] == IDENTITY
    except InvalidInput as e:  # pragma: no cover - every copy above is well-formed
        raise AssertionError(f"a well-formed copy was refused: {e.message}") from None
    else:
        raise AssertionError("a copy of a revoked envelope verified as not revoked")
