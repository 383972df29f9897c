# SPDX-License-Identifier: Apache-2.0
"""``/v1/revocations``: every kind flips exactly its attestations; the signed feed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from attestor.api._state import app_state
from attestor.errors import VerificationError
from attestor.jobqueue import submit
from attestor.jobs.runner import InlineRunner
from attestor.revocation import RevocationSet
from attestor.revocation_feed import verify_feed_page
from attestor.store import jobs as job_store
from attestor.store import revocations as revocation_store
from attestor.store.models import RevocationModel
from attestor.verify import TrustedKey
from tests.unit.api._revocation_rows import (
    IMG_A,
    IMG_B,
    L1,
    L3,
    T1,
    T2,
    T3,
    World,
    add_attestation,
    add_image,
    seed_world,
    statuses,
)
from tests.unit.api.conftest import NOW, bearer


@pytest.fixture
def world(app: Flask) -> World:
    state = app_state(app)
    return seed_world(state.session_factory, state.settings.keys_dir)


def _wait(app: Flask) -> None:
    runner = app_state(app).runner
    assert isinstance(runner, InlineRunner)
    runner.wait(timeout=30)


def revoke(client: FlaskClient, token: str, target: dict[str, Any], reason: str = "test") -> Any:
    return client.post(
        "/v1/revocations", json={"target": target, "reason": reason}, headers=bearer(token)
    )


def _iso(moment: Any) -> str:
    return moment.isoformat().replace("+00:00", "Z")


CASES = [
    ("attestation", None, {"a2"}),
    ("subject", {"kind": "subject", "digest": L1}, {"a1", "a3"}),
    ("image", {"kind": "image", "digest": IMG_B}, {"a3", "a4"}),
    ("key", None, {"a4"}),
    ("policy_version", {"kind": "policy_version", "policy_id": "dev", "policy_version": "2"},
     {"a2"}),
    ("time_window", {"kind": "time_window", "not_before": _iso(T2), "not_after": _iso(T3)},
     {"a2", "a4"}),
    ("time_window_key", None, {"a2"}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "target", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_kind_flips_exactly_its_attestations(
    app: Flask,
    client: FlaskClient,
    role_tokens: dict[str, str],
    world: World,
    name: str,
    target: dict[str, Any] | None,
    expected: set[str],
) -> None:
    if name == "attestation":
        target = {"kind": "attestation", "attestation_id": world.ids["a2"]}
    elif name == "key":
        target = {"kind": "key", "keyid": world.key2}
    elif name == "time_window_key":
        target = {
            "kind": "time_window",
            "not_before": _iso(T2),
            "not_after": _iso(T3),
            "keyid": world.key,
        }
    assert target is not None
    response = revoke(client, role_tokens["admin"], target, reason=f"revoke {name}")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["affected"] == len(expected)
    assert body["sequence"] == 1
    assert body["reason"] == f"revoke {name}"
    assert body["actor"].startswith("token:")
    got = statuses(app_state(app).session_factory, world)
    assert {n for n, s in got.items() if s == "revoked"} == expected
    if name == "attestation":
        assert body["target"] == {
            "kind": "attestation",
            "attestation_id": world.ids["a2"],
            "pae_sha256": world.pae_sha256["a2"],
        }
    # Every read reports the status the revocation set.
    for n, ident in world.ids.items():
        shown = client.get(f"/v1/attestations/{ident}", headers=bearer(role_tokens["pipeline"]))
        assert shown.status_code == 200
        assert shown.get_json()["status"] == ("revoked" if n in expected else "valid")
    _wait(app)


def test_key_revocation_revokes_the_key_row_and_sweeps(
    app: Flask, client: FlaskClient, role_tokens: dict[str, str], world: World
) -> None:
    response = revoke(client, role_tokens["admin"], {"kind": "key", "keyid": world.key2})
    assert response.status_code == 201
    job_id = response.get_json()["reverify_job"]
    assert job_id
    _wait(app)
    keys = client.get("/v1/keys", headers=bearer(role_tokens["agent"])).get_json()["keys"]
    assert {k["keyid"]: k["status"] for k in keys}[world.key2] == "revoked"
    with app_state(app).session_factory() as session:
        job = job_store.get_job(session, job_id)
    assert job.status == "finished", job.error
    assert job.result == {"scope": "key", "checked": 0, "revoked": 0}


def test_attestation_target_errors(
    client: FlaskClient, role_tokens: dict[str, str], world: World
) -> None:
    unknown = {"kind": "attestation", "attestation_id": "00000000-0000-4000-8000-00000000000f"}
    assert revoke(client, role_tokens["admin"], unknown).status_code == 404
    wrong = {
        "kind": "attestation",
        "attestation_id": world.ids["a1"],
        "envelope_sha256": "0" * 64,
    }
    assert revoke(client, role_tokens["admin"], wrong).status_code == 400
    assert revoke(client, role_tokens["admin"], {"kind": "nope"}).status_code == 400
    no_reason = client.post(
        "/v1/revocations",
        json={"target": {"kind": "subject", "digest": L1}},
        headers=bearer(role_tokens["admin"]),
    )
    assert no_reason.status_code == 422
    extra = {"kind": "subject", "digest": L1, "x": 1}
    assert revoke(client, role_tokens["admin"], extra).status_code == 400
    empty_window = {"kind": "time_window"}
    assert revoke(client, role_tokens["admin"], empty_window).status_code == 400
    # Nothing was recorded by the failed attempts, and no sequence was used up.
    listed = client.get("/v1/revocations", headers=bearer(role_tokens["admin"])).get_json()
    assert listed == {"items": [], "next": None}


@pytest.mark.parametrize(
    "names",
    [("envelope_sha256",), ("pae_sha256",), ("attestation_id", "envelope_sha256", "pae_sha256")],
)
def test_an_attestation_is_named_by_any_of_its_digests_and_stored_by_identity(
    client: FlaskClient, role_tokens: dict[str, str], world: World, names: tuple[str, ...]
) -> None:
    known = {
        "attestation_id": world.ids["a3"],
        "envelope_sha256": world.envelope_sha256["a3"],
        "pae_sha256": world.pae_sha256["a3"],
    }
    target = {"kind": "attestation", **{n: known[n] for n in names}}
    response = revoke(client, role_tokens["admin"], target)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["target"] == {
        "kind": "attestation",
        "attestation_id": world.ids["a3"],
        "pae_sha256": world.pae_sha256["a3"],
    }
    assert response.get_json()["affected"] == 1


def test_attestation_names_that_disagree_or_are_unknown_are_refused(
    client: FlaskClient, role_tokens: dict[str, str], world: World
) -> None:
    admin = role_tokens["admin"]
    mixed = {
        "kind": "attestation",
        "attestation_id": world.ids["a1"],
        "pae_sha256": world.pae_sha256["a2"],
    }
    assert revoke(client, admin, mixed).status_code == 400
    by_other_envelope = {
        "kind": "attestation",
        "envelope_sha256": world.envelope_sha256["a1"],
        "pae_sha256": world.pae_sha256["a2"],
    }
    assert revoke(client, admin, by_other_envelope).status_code == 400
    assert revoke(client, admin, {"kind": "attestation", "pae_sha256": "0" * 64}).status_code == 404
    assert revoke(client, admin, {"kind": "attestation"}).status_code == 400
    assert revoke(client, admin, {"kind": "attestation", "pae_sha256": 7}).status_code == 400
    unknown = {"kind": "attestation", "attestation_id": world.ids["a1"], "sha": "x"}
    assert revoke(client, admin, unknown).status_code == 400
    listed = client.get("/v1/revocations", headers=bearer(admin)).get_json()
    assert listed == {"items": [], "next": None}


def test_list_get_and_paging(client: FlaskClient, role_tokens: dict[str, str]) -> None:
    admin = role_tokens["admin"]
    made = [
        revoke(client, admin, {"kind": "subject", "digest": L1}).get_json(),
        revoke(client, admin, {"kind": "image", "digest": IMG_A}).get_json(),
        revoke(client, admin, {"kind": "subject", "digest": IMG_B}).get_json(),
    ]
    assert [m["sequence"] for m in made] == [1, 2, 3]
    page = client.get("/v1/revocations?limit=2", headers=bearer(admin)).get_json()
    assert [r["sequence"] for r in page["items"]] == [1, 2]
    rest = client.get(f"/v1/revocations?limit=2&cursor={page['next']}", headers=bearer(admin))
    assert [r["sequence"] for r in rest.get_json()["items"]] == [3]
    assert rest.get_json()["next"] is None
    subjects = client.get("/v1/revocations?kind=subject", headers=bearer(admin)).get_json()
    assert [r["sequence"] for r in subjects["items"]] == [1, 3]
    one = client.get(f"/v1/revocations/{made[1]['id']}", headers=bearer(admin))
    assert one.status_code == 200
    assert one.get_json() == {k: v for k, v in made[1].items() if k in one.get_json()}
    missing = client.get(
        "/v1/revocations/00000000-0000-4000-8000-000000000000", headers=bearer(admin)
    )
    assert missing.status_code == 404
    bad = client.get("/v1/revocations?cursor=!!", headers=bearer(admin))
    assert bad.status_code == 400


def _trusted(client: FlaskClient, token: str) -> list[TrustedKey]:
    keys = client.get("/v1/keys", headers=bearer(token)).get_json()["keys"]
    return [TrustedKey.from_pem(k["public_key_pem"], keyid=k["keyid"]) for k in keys]


def test_feed_signed_paged_etag_and_conflict(
    client: FlaskClient, role_tokens: dict[str, str]
) -> None:
    agent = bearer(role_tokens["agent"])
    keys = _trusted(client, role_tokens["agent"])
    empty = client.get("/v1/revocations/feed", headers=agent)
    assert empty.status_code == 200
    assert empty.mimetype == "application/json"
    assert empty.headers["Cache-Control"] == "no-cache"
    page = verify_feed_page(
        empty.data, keys, expected_since=0, now=NOW, max_age=timedelta(minutes=15)
    )
    assert (page.since, page.next, page.latest, page.complete) == (0, 0, 0, True)
    feed_id = page.feed_id

    for digest in (L1, IMG_A, IMG_B):
        assert (
            revoke(client, role_tokens["admin"], {"kind": "subject", "digest": digest}).status_code
            == 201
        )
    first = client.get("/v1/revocations/feed?since=0&limit=2", headers=agent)
    assert first.status_code == 200
    etag = first.headers["ETag"]
    assert etag.startswith('"rf2-')
    p1 = verify_feed_page(
        first.data, keys, expected_since=0, now=NOW, max_age=timedelta(minutes=15),
        expected_feed_id=feed_id,
    )  # fmt: skip
    assert [r.sequence for r in p1.revocations] == [1, 2]
    assert (p1.next, p1.latest, p1.complete) == (2, 3, False)
    assert p1.issued_at <= NOW < p1.issued_at + timedelta(minutes=5)
    second = client.get(f"/v1/revocations/feed?since={p1.next}&limit=2", headers=agent)
    p2 = verify_feed_page(
        second.data, keys, expected_since=2, now=NOW, max_age=timedelta(minutes=15),
        known_latest=p1.latest,
    )  # fmt: skip
    assert [r.sequence for r in p2.revocations] == [3]
    assert p2.complete
    revset = RevocationSet().with_added(p1.revocations).with_added(p2.revocations)
    assert revset.version == 3

    # Same ETag: 304 without a body; a repeat 200 serves the identical signed bytes.
    again = client.get("/v1/revocations/feed?limit=2", headers={**agent, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.data == b""
    assert again.headers["ETag"] == etag
    assert client.get("/v1/revocations/feed?limit=2", headers=agent).data == first.data
    # Another limit is another page.
    assert client.get("/v1/revocations/feed?limit=3", headers=agent).headers["ETag"] != etag

    # A new revocation changes the ETag: the old one no longer matches.
    assert (
        revoke(client, role_tokens["admin"], {"kind": "image", "digest": IMG_B}).status_code == 201
    )
    fresh = client.get("/v1/revocations/feed?limit=2", headers={**agent, "If-None-Match": etag})
    assert fresh.status_code == 200
    assert fresh.headers["ETag"] != etag
    latest = verify_feed_page(
        fresh.data, keys, expected_since=0, now=NOW, max_age=timedelta(minutes=15)
    )
    assert latest.latest == 4

    ahead = client.get("/v1/revocations/feed?since=5", headers=agent)
    assert ahead.status_code == 409
    assert ahead.mimetype == "application/problem+json"
    # The admin may read the feed too (to debug an agent).
    admin = client.get("/v1/revocations/feed", headers=bearer(role_tokens["admin"]))
    assert admin.status_code == 200


def test_feed_page_does_not_verify_with_another_key(
    client: FlaskClient, role_tokens: dict[str, str]
) -> None:
    from securesystemslib.signer import CryptoSigner

    body = client.get("/v1/revocations/feed", headers=bearer(role_tokens["agent"])).data
    other = CryptoSigner.generate_ecdsa()
    key = TrustedKey(
        keyid=other.public_key.keyid, public_key=other.public_key._crypto_key(), algorithm="t"
    )
    with pytest.raises(VerificationError):
        verify_feed_page(body, [key], expected_since=0, now=NOW, max_age=timedelta(minutes=15))


def test_feed_after_the_active_key_is_revoked_needs_a_new_key(
    client: FlaskClient, role_tokens: dict[str, str], world: World
) -> None:
    admin = bearer(role_tokens["admin"])
    assert (
        revoke(client, role_tokens["admin"], {"kind": "key", "keyid": world.key}).status_code == 201
    )
    assert client.get("/v1/revocations/feed", headers=admin).status_code == 409
    assert client.post("/v1/keys/rotate", json={}, headers=admin).status_code == 201
    keys = _trusted(client, role_tokens["agent"])
    body = client.get("/v1/revocations/feed", headers=admin).data
    page = verify_feed_page(
        body, keys, expected_since=0, now=NOW, max_age=timedelta(minutes=15),
        revocations=RevocationSet(),
    )  # fmt: skip
    assert page.revocations[0].target.to_dict() == {"kind": "key", "keyid": world.key}
    # An agent that applied the revocation refuses pages signed by the revoked key.
    revset = RevocationSet(page.revocations)
    assert revset.is_key_revoked(world.key)


def test_revocation_set_matches_after_a_revoke(
    app: Flask, client: FlaskClient, role_tokens: dict[str, str], world: World
) -> None:
    from attestor.revocation import AttestationMeta

    factory = app_state(app).session_factory
    with factory() as session:
        revset = revocation_store.current_revocation_set(session)
        assert revset.match(AttestationMeta(image_digest=IMG_A)) is None
    revoke(client, role_tokens["admin"], {"kind": "image", "digest": IMG_A}, reason="bad image")
    with factory() as session:
        hit = revocation_store.current_revocation_set(session).match(
            AttestationMeta(image_digest=IMG_A)
        )
        assert hit is not None and hit.reason == "bad image"
        again = revocation_store.current_revocation_set(session)
        assert again is revocation_store.current_revocation_set(session)  # cached by version


def test_sweep_updates_statuses(
    app: Flask, client: FlaskClient, role_tokens: dict[str, str], world: World
) -> None:
    state = app_state(app)
    factory = state.session_factory
    revoke(client, role_tokens["admin"], {"kind": "image", "digest": IMG_A})
    _wait(app)
    with factory.begin() as session:
        # Issued concurrently with the revocation (it missed the status flip).
        image_a = session.execute(
            revocation_store.select(revocation_store.ImageModel.id).where(  # type: ignore[attr-defined]
                revocation_store.ImageModel.manifest_digest == IMG_A  # type: ignore[attr-defined]
            )
        ).scalar_one()
        late, _ = add_attestation(
            session, image_id=image_a, image_digest=IMG_A, index=7, layer=L1, keyid=world.key,
            policy=("dev", "1"), created=T3,
        )  # fmt: skip
        # A stored envelope whose signature no longer verifies (tampered at rest).
        image_c = add_image(session, "sha256:" + "c" * 64)
        good, _ = add_attestation(
            session, image_id=image_c, image_digest="sha256:" + "c" * 64, index=0, layer=L1,
            keyid=world.key, policy=("dev", "1"), created=T1,
        )  # fmt: skip
        from attestor.store.models import AttestationModel

        row = session.get(AttestationModel, good)
        assert row is not None
        row.envelope = row.envelope.replace(b'"sig":"', b'"sig":"AAAA', 1)
        # Issued under an older version of a loaded policy that no longer admits it.
        image_d = add_image(session, "sha256:" + "9" * 64, registry="evil.example")
        stale, _ = add_attestation(
            session, image_id=image_d, image_digest="sha256:" + "9" * 64, index=0, layer=L1,
            keyid=world.key, policy=("dev", "0"), created=T1, registry="evil.example",
        )  # fmt: skip
    job = submit(factory, state.runner, kind="reverify", payload={"scope": "all"}, now=NOW)
    _wait(app)
    with factory() as session:
        done = job_store.get_job(session, job.id)
        assert done.status == "finished", done.error
        assert done.result is not None and done.result["revoked"] == 3
        from attestor.store.models import AttestationModel

        assert {
            i: session.get(AttestationModel, i).status  # type: ignore[union-attr]
            for i in (late, good, stale)
        } == {late: "revoked", good: "revoked", stale: "revoked"}
        rows, _ = revocation_store.list_revocations(session)
    reasons = {r.target.to_dict().get("attestation_id"): r for r in rows}
    assert reasons[good].actor == "system:reverify"
    assert reasons[good].reason.startswith("re-verification failed")
    assert "no longer admits" in reasons[stale].reason
    assert late not in reasons  # covered by the image revocation: status only
    got = statuses(factory, world)
    assert got == {"a1": "revoked", "a2": "revoked", "a3": "valid", "a4": "valid"}
    assert T1 < T3


def test_sweep_rejects_a_bad_scope(app: Flask) -> None:
    state = app_state(app)
    job = submit(
        state.session_factory, state.runner, kind="reverify", payload={"scope": "x"}, now=NOW
    )
    _wait(app)
    with state.session_factory() as session:
        done = job_store.get_job(session, job.id)
    assert done.status == "failed"
    assert "scope" in (done.error or "")


@pytest.mark.parametrize("query", ["since=-1", "since=abc", "limit=0", "limit=10001", "since=1e3"])
def test_feed_rejects_bad_query(
    client: FlaskClient, role_tokens: dict[str, str], query: str
) -> None:
    response = client.get(f"/v1/revocations/feed?{query}", headers=bearer(role_tokens["agent"]))
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"


def test_apply_revocations_at_issue_time(
    app: Flask, client: FlaskClient, role_tokens: dict[str, str], world: World
) -> None:
    from attestor.services import revocation as service
    from attestor.store.models import AttestationModel

    factory = app_state(app).session_factory
    revoke(client, role_tokens["admin"], {"kind": "subject", "digest": L3}, reason="bad layer")
    with factory.begin() as session:
        image_id = add_image(session, "sha256:" + "7" * 64)
        hit, _ = add_attestation(
            session, image_id=image_id, image_digest="sha256:" + "7" * 64, index=0, layer=L3,
            keyid=world.key, policy=("dev", "1"), created=T3,
        )  # fmt: skip
        clean, _ = add_attestation(
            session, image_id=image_id, image_digest="sha256:" + "7" * 64, index=1, layer=L1,
            keyid=world.key, policy=("dev", "1"), created=T3,
        )  # fmt: skip
        assert service.apply_revocations(session, image_id=image_id) == 1
    with factory() as session:
        assert session.get(AttestationModel, hit).status == "revoked"  # type: ignore[union-attr]
        assert session.get(AttestationModel, clean).status == "valid"  # type: ignore[union-attr]


def test_on_key_revoked_records_once(app: Flask, world: World) -> None:
    from attestor.services import keys as key_service
    from attestor.services import revocation as service

    factory = app_state(app).session_factory
    with factory.begin() as session:
        key_service.revoke_key(session, world.key2, reason="lost", now=NOW)
        first = service.on_key_revoked(session, world.key2, reason="lost", actor="token:x", now=NOW)
        again = service.on_key_revoked(session, world.key2, reason="lost", actor="token:x", now=NOW)
    assert first == again
    assert first.target.to_dict() == {"kind": "key", "keyid": world.key2}
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(RevocationModel)) == 1


def test_policy_sweeps_only_for_changed_versions(app: Flask, world: World) -> None:
    from attestor.jobs.reverify import enqueue_policy_sweeps
    from attestor.policy import load_policies

    state = app_state(app)
    # policies/dev.yaml is version "1"; a2 was issued under dev "2"; prod is not loaded.
    jobs = enqueue_policy_sweeps(
        state.session_factory, state.runner, load_policies(state.settings.policy_dir), now=NOW
    )
    assert len(jobs) == 1
    _wait(app)
    with state.session_factory() as session:
        job = job_store.get_job(session, jobs[0])
    assert job.payload == {"scope": "policy", "policy_id": "dev"}
    assert job.status == "finished", job.error
    # Loopback images still meet dev version 1: checked, nothing revoked.
    assert job.result == {"scope": "policy", "checked": 3, "revoked": 0}


def test_sweep_timer_submits_periodically(app: Flask) -> None:
    from attestor.jobs.reverify import SweepTimer

    state = app_state(app)
    ticks = iter(range(10_000))
    # One period of the clock passes per check: the once-a-period gate lets each one through
    # once the previous sweep finished.
    timer = SweepTimer(
        state.session_factory,
        state.runner,
        clock=lambda: NOW + timedelta(seconds=next(ticks)),
        interval=timedelta(seconds=0.05),
    )
    timer.start()
    try:
        for _ in range(100):
            if len(timer.submitted) >= 2:
                break
            import time

            time.sleep(0.02)
    finally:
        timer.stop()
    assert len(timer.submitted) >= 2
    _wait(app)
    with state.session_factory() as session:
        assert job_store.get_job(session, timer.submitted[0]).status == "finished"
