# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from attestor.errors import InvalidInput
from attestor.revocation import (
    AttestationMeta,
    KeyTarget,
    RevocationSet,
    SubjectTarget,
    TimeWindowTarget,
)
from tests.unit.revocation._helpers import ENVELOPE, IMAGE, LAYER, T0, one_of_each, rev

CLEAN = AttestationMeta(
    attestation_id="other",
    layer_digest="sha256:" + "0" * 64,
    image_digest="sha256:" + "1" * 64,
    keyid="c" * 64,
    policy_id="dev",
    policy_version="1",
    issued_at=T0 - timedelta(days=1),
    pae_sha256="2" * 64,
)


def _with(**changes):
    fields = {k: getattr(CLEAN, k) for k in CLEAN.__dataclass_fields__}
    fields.update(changes)
    return AttestationMeta(**fields)


@pytest.fixture(scope="module")
def revset():
    return RevocationSet(one_of_each())


@pytest.mark.parametrize(
    ("changes", "sequence"),
    [
        ({}, None),
        ({"attestation_id": "6f1c2d9e-0000-4000-8000-000000000001"}, 1),
        ({"pae_sha256": ENVELOPE}, 1),
        ({"layer_digest": LAYER}, 2),
        ({"image_digest": IMAGE}, 3),
        ({"keyid": "a" * 64}, 4),
        ({"policy_version": "3"}, 5),
        ({"policy_id": "other", "policy_version": "3"}, None),
        ({"issued_at": T0}, 6),
        ({"issued_at": T0 + timedelta(minutes=59)}, 6),
        ({"issued_at": T0 + timedelta(hours=1)}, None),  # not_after is excluded
        # Key-scoped window (7): only that key, open-ended.
        ({"keyid": "b" * 64, "issued_at": T0 + timedelta(days=3)}, 7),
        ({"keyid": "b" * 64, "issued_at": T0 - timedelta(seconds=1)}, None),
        # Unknown issue time: fails closed on the windows that apply.
        ({"issued_at": None}, 6),
        # Several match: the lowest sequence is reported.
        ({"layer_digest": LAYER, "keyid": "a" * 64, "issued_at": T0}, 2),
        # Unknown fields never match anything but windows.
        ({"keyid": None, "layer_digest": None, "image_digest": None}, None),
    ],
)
def test_match_each_kind(revset, changes, sequence):
    hit = revset.match(_with(**changes))
    assert (hit.sequence if hit else None) == sequence


def test_version_len_iter_and_with_added(revset):
    assert revset.version == 7 and len(revset) == 7
    assert [r.sequence for r in revset] == [1, 2, 3, 4, 5, 6, 7]
    assert RevocationSet().version == 0 and RevocationSet().match(CLEAN) is None
    bigger = revset.with_added([rev(9, SubjectTarget("sha256:" + "0" * 64))])
    assert bigger.version == 9 and revset.version == 7  # immutable
    assert bigger.match(CLEAN).sequence == 9 and revset.match(CLEAN) is None
    # Re-applying a page is idempotent.
    assert len(bigger.with_added(one_of_each())) == 8
    assert 4 in revset and 8 not in revset
    assert revset.is_key_revoked("a" * 64) and not revset.is_key_revoked("b" * 64)


def test_conflicting_revocations_are_refused():
    a = rev(1, KeyTarget("k"))
    with pytest.raises(InvalidInput, match="sequence 1"):
        RevocationSet([a, rev(1, KeyTarget("other"))])
    with pytest.raises(InvalidInput, match="two sequences"):
        RevocationSet([a, rev(2, KeyTarget("k"), id=a.id)])


def test_earliest_revocation_of_a_target_wins_whatever_the_order():
    later = rev(5, SubjectTarget(LAYER), reason="later")
    earlier = rev(2, SubjectTarget(LAYER), reason="earlier")
    assert RevocationSet([later, earlier]).match(_with(layer_digest=LAYER)).reason == "earlier"
    w_global = rev(8, TimeWindowTarget(not_before=T0))
    w_key = rev(3, TimeWindowTarget(not_before=T0, keyid="k"))
    hit = RevocationSet([w_global, w_key]).match(_with(keyid="k", issued_at=T0))
    assert hit.sequence == 3


def test_naive_issued_at_is_refused():
    with pytest.raises(InvalidInput, match="timezone-aware"):
        AttestationMeta(issued_at=datetime(2026, 1, 1))
