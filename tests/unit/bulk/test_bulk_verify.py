# SPDX-License-Identifier: Apache-2.0
"""Bulk verification in-process: request shape, dedup, results, revocation, cache keys."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from attestor.api._state import app_state
from attestor.dsse import parse_envelope
from attestor.errors import InvalidInput, TooLarge
from attestor.jobs.runner import InlineRunner
from attestor.services import bulk_verify
from attestor.services.bulk_verify import BulkItem, BulkLimits, Outcome
from attestor.services.keys import revoke_key
from attestor.services.revocation import create_revocation
from attestor.store import jobs as job_store
from attestor.store import verifications as results_store
from attestor.store.models import AttestationModel, FileManifestModel, ImageModel
from tests.unit.bulk._envelopes import WHEN, digest, signed_envelopes
from tests.unit.bulk.conftest import make_token, with_settings


def _wait(app: Flask) -> None:
    runner = app_state(app).runner
    assert isinstance(runner, InlineRunner)
    runner.wait(timeout=30)


def _run(client: FlaskClient, app: Flask, headers: dict[str, str], items: list[Any]) -> Any:
    response = client.post("/v1/verifications", json={"items": items}, headers=headers)
    assert response.status_code == 202, response.get_data(as_text=True)
    job = response.get_json()["job"]
    assert job["url"] == f"/v1/jobs/{job['id']}"
    _wait(app)
    status = client.get(job["url"], headers=headers).get_json()
    results = client.get(f"{job['url']}/results?limit=1000", headers=headers).get_json()
    return status, results["items"]


def test_verifies_dedups_and_reports_in_submission_order(
    app: Flask, client: FlaskClient, pipeline: dict[str, str]
) -> None:
    with_settings(app, bulk_chunk_size=2)
    envs = signed_envelopes(app_state(app).session_factory, 3)
    items: list[Any] = [{"envelope": e, "artifact_digest": layer} for layer, e in envs]
    items.append({"envelope": envs[0][1], "artifact_digest": digest("other artifact")})
    items.append(dict(items[1]))  # a duplicate: verified once, reported twice
    tampered = json.loads(json.dumps(envs[2][1]))
    tampered["signatures"][0]["sig"] = "A" + tampered["signatures"][0]["sig"][1:]
    items.append({"envelope": tampered, "artifact_digest": envs[2][0]})
    items.append({"envelope": {"payload": 1}, "artifact_digest": envs[2][0]})

    status, results = _run(client, app, pipeline, items)

    assert status["status"] == "finished", status
    assert status["progress"] == {"total": 7, "done": 7, "verified": 4, "rejected": 3}
    assert status["result"]["results_url"] == f"/v1/jobs/{status['id']}/results"
    assert status["results_url"] == f"/v1/jobs/{status['id']}/results"
    assert [r["index"] for r in results] == list(range(7))
    assert [r["status"] for r in results] == ["verified"] * 3 + ["rejected", "verified"] + [
        "rejected"
    ] * 2
    assert "no subject has sha256" in results[3]["reason"]
    assert results[5]["reason"] and results[6]["reason"]
    assert not any(r["revoked"] for r in results)
    with app_state(app).session_factory() as session:
        job = job_store.get_job(session, status["id"])
    # The distinct items travel with the chunks; the row keeps counts only.
    assert job.payload == {"items": 7, "distinct": 6, "chunks": 3}


def test_an_in_process_bulk_job_is_owned_from_its_creation(app: Flask) -> None:
    # Owned before the runner claims it: a crash in between leaves a job the
    # reaper can fail, not one queued forever.
    runner = app_state(app).runner
    assert isinstance(runner, InlineRunner)
    envs = signed_envelopes(app_state(app).session_factory, 1)
    items = bulk_verify.parse_request(
        {"items": [{"envelope": envs[0][1], "artifact_digest": envs[0][0]}]},
        limits=BulkLimits(),
    )

    class Unclaimed:  # the runner's owner, but never enqueues
        owner = runner.owner

        def dispatch(self, job_id: str, chunks: Sequence[Sequence[Mapping[str, Any]]]) -> None:
            pass

    row = bulk_verify.submit(
        app_state(app).session_factory, Unclaimed(), items, limits=BulkLimits(), now=WHEN
    )
    with app_state(app).session_factory() as session:
        stored = job_store.get_job(session, row.id)
    assert (stored.status, stored.owner, stored.heartbeat_at) == ("queued", runner.owner, WHEN)


def test_results_page_by_index(app: Flask, client: FlaskClient, pipeline: dict[str, str]) -> None:
    envs = signed_envelopes(app_state(app).session_factory, 5)
    items = [{"envelope": e, "artifact_digest": layer} for layer, e in envs]
    status, _ = _run(client, app, pipeline, items)
    page = client.get(f"/v1/jobs/{status['id']}/results?offset=2&limit=2", headers=pipeline)
    body = page.get_json()
    assert [r["index"] for r in body["items"]] == [2, 3]
    assert body["next"] == f"/v1/jobs/{status['id']}/results?offset=4&limit=2"
    other = make_token(app, "pipeline")
    assert client.get(f"/v1/jobs/{status['id']}/results", headers=other).status_code == 404
    admin = make_token(app, "admin")
    assert client.get(f"/v1/jobs/{status['id']}/results", headers=admin).status_code == 200


def _store_attestation(app: Flask, envelope: Mapping[str, Any], layer: str) -> str:
    raw = json.dumps(envelope, separators=(",", ":")).encode()
    with app_state(app).session_factory.begin() as session:
        keyid = envelope["signatures"][0]["keyid"]
        session.add(
            ImageModel(
                id="img-1",
                registry_host="127.0.0.1:5000",
                repository="app",
                tag="1",
                manifest_digest=digest("manifest"),
                media_type="application/vnd.oci.image.manifest.v1+json",
                requested_reference="127.0.0.1:5000/app:1",
                created_at=WHEN,
            )
        )
        session.add(
            FileManifestModel(
                sha256="f" * 64, tree_digest=digest("t"), body=b"{}", entry_count=0, created_at=WHEN
            )
        )
        session.flush()
        session.add(
            AttestationModel(
                id="att-1",
                image_id="img-1",
                layer_index=0,
                layer_digest=layer,
                layer_media_type="application/vnd.oci.image.layer.v1.tar+gzip",
                diff_id=layer,
                chain_id=layer,
                parent_id=None,
                envelope=raw,
                envelope_sha256=hashlib.sha256(raw).hexdigest(),
                pae_sha256=parse_envelope(raw).pae_sha256(),
                keyid=keyid,
                policy_id="dev",
                policy_version="1",
                manifest_sha256="f" * 64,
                tree_digest=digest("t"),
                invocation_id="inv-1",
                status="valid",
                created_at=WHEN,
            )
        )
    return str(keyid)


def test_our_attestation_policy_and_key_revocation(
    app: Flask, client: FlaskClient, pipeline: dict[str, str]
) -> None:
    (layer, ours), (layer2, foreign) = signed_envelopes(app_state(app).session_factory, 2)
    keyid = _store_attestation(app, ours, layer)
    items = [
        {"envelope": ours, "artifact_digest": layer},
        {"envelope": ours, "artifact_digest": layer, "policy": "dev"},
        {"envelope": ours, "artifact_digest": layer, "policy": "prod"},
        {"envelope": foreign, "artifact_digest": layer2, "policy": "dev"},
    ]
    _, results = _run(client, app, pipeline, items)
    assert [r["status"] for r in results] == ["verified", "verified", "rejected", "rejected"]
    assert [r["attestation_id"] for r in results] == ["att-1", "att-1", "att-1", None]
    assert "'dev', not 'prod'" in results[2]["reason"]

    with app_state(app).session_factory.begin() as session:
        revoke_key(session, keyid, reason="leaked", now=WHEN)
    _, results = _run(
        client, app, pipeline, items[:1] + [{"envelope": foreign, "artifact_digest": layer2}]
    )
    assert [r["status"] for r in results] == ["rejected", "rejected"]
    assert [r["revoked"] for r in results] == [True, True]
    assert results[0]["reason"] == "attestation att-1 is revoked"
    assert "revoked key" in results[1]["reason"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 400),
        ({"items": []}, 400),
        ({"items": [], "extra": 1}, 400),
        ({"items": [{"artifact_digest": "sha256:" + "a" * 64}]}, 400),
        ({"items": [{"envelope": {}, "bundle": {}, "artifact_digest": "sha256:" + "a" * 64}]}, 400),
        ({"items": [{"envelope": {}, "artifact_digest": "sha256:abc"}]}, 400),
        ({"items": [{"envelope": [], "artifact_digest": "sha256:" + "a" * 64}]}, 400),
        ({"items": [{"envelope": {}, "artifact_digest": "sha256:" + "a" * 64, "x": 1}]}, 400),
        ({"items": [{"envelope": {}, "artifact_digest": "sha256:" + "a" * 64}] * 4}, 413),
    ],
)
def test_bad_shape_is_refused_and_nothing_stored(
    app: Flask, client: FlaskClient, pipeline: dict[str, str], body: Any, status: int
) -> None:
    with_settings(app, max_bulk_items=3)
    response = client.post("/v1/verifications", json=body, headers=pipeline)
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    with app_state(app).session_factory() as session:
        assert job_store.count_jobs(session, statuses=job_store.JOB_STATUSES) == 0


def test_agent_may_not_submit(app: Flask, client: FlaskClient) -> None:
    response = client.post(
        "/v1/verifications", json={"items": []}, headers=make_token(app, "agent")
    )
    assert response.status_code == 403


def test_plan_chunks_groups_equal_items() -> None:
    a = BulkItem(kind="envelope", document={"a": 1}, artifact_digest=digest("x"))
    b = BulkItem(kind="envelope", document={"a": 2}, artifact_digest=digest("x"))
    chunks = bulk_verify.plan_chunks([a, b, a, b, a], chunk_size=1)
    assert [[u["indexes"] for u in c] for c in chunks] == [[[0, 2, 4]], [[1, 3]]]
    same_but_reordered = BulkItem(kind="envelope", document={"a": 1}, artifact_digest=digest("x"))
    assert same_but_reordered.content_key == a.content_key


def test_content_key_ignores_member_order_and_takes_any_json_value() -> None:
    def key(document: dict[str, object]) -> str:
        return BulkItem(kind="envelope", document=document, artifact_digest=digest("x")).content_key

    nested = {"a": 1, "b": {"c": [1, 2], "d": "é"}}
    assert key(nested) == key({"b": {"d": "é", "c": [1, 2]}, "a": 1})
    # Values orjson cannot write (json reads them from a request) still get a key.
    odd = [{"n": 2**70}, {"n": 2**70 + 1}, {"s": "\ud800"}, {"s": "\udfff"}, {"n": 1}, {"s": "x"}]
    assert len({key(d) for d in odd}) == len(odd)
    assert key({"n": 2**70, "m": 1}) == key({"m": 1, "n": 2**70})


def test_parse_request_limits() -> None:
    item = {"bundle": {}, "artifact_digest": digest("x"), "policy": "dev"}
    parsed = bulk_verify.parse_request({"items": [item]}, limits=BulkLimits(max_items=1))
    assert parsed == [
        BulkItem(kind="bundle", document={}, artifact_digest=digest("x"), policy="dev")
    ]
    with pytest.raises(TooLarge):
        bulk_verify.parse_request({"items": [item, item]}, limits=BulkLimits(max_items=1))
    with pytest.raises(InvalidInput, match=r"items\[0\].policy"):
        bulk_verify.parse_request({"items": [{**item, "policy": ""}]}, limits=BulkLimits())


class _DictCache:
    def __init__(self) -> None:
        self.data: dict[str, Outcome] = {}

    def get_many(self, keys: Sequence[str]) -> dict[str, Outcome]:
        return {k: self.data[k] for k in keys if k in self.data}

    def put_many(self, outcomes: Mapping[str, Outcome], *, ttl_s: int) -> None:
        self.data.update(outcomes)


def test_cache_key_changes_with_key_status_and_revocation_version(app: Flask) -> None:
    factory = app_state(app).session_factory
    [(layer, envelope)] = signed_envelopes(factory, 1)
    unit = {
        "key": "k",
        "indexes": [0, 1],
        "item": {
            "kind": "envelope",
            "document": envelope,
            "artifact_digest": layer,
            "policy": None,
        },
    }
    cache = _DictCache()
    with factory() as session:
        snap = bulk_verify.load_snapshot(session)
    rows = bulk_verify.verify_units([unit], snap, lookup=lambda s: {}, cache=cache, cache_ttl_s=1)
    assert [(r.index, r.status) for r in rows] == [(0, "verified"), (1, "verified")]
    assert list(cache.data) == [f"k:{snap.fingerprint}"]
    # A cached verdict is reused as is (no second verification).
    cache.data[f"k:{snap.fingerprint}"] = Outcome(status="rejected", reason="cached")
    again = bulk_verify.verify_units([unit], snap, lookup=lambda s: {}, cache=cache, cache_ttl_s=1)
    assert {r.reason for r in again} == {"cached"}
    # A new revocation (of another subject) moves the version, so the key.
    with factory.begin() as session:
        create_revocation(
            session,
            target={"kind": "subject", "digest": digest("unrelated")},
            reason="r",
            actor="t",
            now=WHEN,
        )
    with factory() as session:
        revoked_other = bulk_verify.load_snapshot(session)
    assert revoked_other.fingerprint != snap.fingerprint
    rows = bulk_verify.verify_units(
        [unit], revoked_other, lookup=lambda s: {}, cache=cache, cache_ttl_s=1
    )
    assert {(r.status, r.revoked) for r in rows} == {("verified", False)}
    keyid = envelope["signatures"][0]["keyid"]
    with factory.begin() as session:
        revoke_key(session, keyid, reason="leaked", now=WHEN)
    with factory() as session:
        after = bulk_verify.load_snapshot(session)
    assert after.fingerprint != revoked_other.fingerprint
    rows = bulk_verify.verify_units([unit], after, lookup=lambda s: {}, cache=cache, cache_ttl_s=1)
    assert {(r.status, r.revoked) for r in rows} == {("rejected", True)}


def test_subject_revocation_rejects_foreign_and_own_envelopes(
    app: Flask, client: FlaskClient, pipeline: dict[str, str]
) -> None:
    (layer, ours), (layer2, foreign) = signed_envelopes(app_state(app).session_factory, 2)
    _store_attestation(app, ours, layer)
    with app_state(app).session_factory.begin() as session:
        for target in (layer, layer2):
            create_revocation(
                session,
                target={"kind": "subject", "digest": target},
                reason="bad layer",
                actor="t",
                now=WHEN,
            )
    items = [
        {"envelope": ours, "artifact_digest": layer},
        {"envelope": foreign, "artifact_digest": layer2},
    ]
    _, results = _run(client, app, pipeline, items)
    assert [(r["status"], r["revoked"]) for r in results] == [("rejected", True)] * 2
    assert [r["attestation_id"] for r in results] == ["att-1", None]


def test_record_results_is_idempotent(app: Flask, pipeline: dict[str, str]) -> None:
    factory = app_state(app).session_factory
    with factory.begin() as session:
        job = job_store.create_job(session, kind="verify", payload={}, now=WHEN)
    rows = [
        results_store.ResultRow(
            index=i, status="verified", reason=None, revoked=False, attestation_id=None
        )
        for i in range(3)
    ]
    for _ in range(2):
        with factory.begin() as session:
            results_store.record_results(session, job.id, rows)
    with factory() as session:
        assert results_store.tally(session, job.id) == results_store.Tally(
            done=3, verified=3, rejected=0
        )
        assert results_store.list_results(session, job.id, offset=0, limit=10) == rows
    with pytest.raises(InvalidInput):
        results_store.ResultRow(
            index=0, status="maybe", reason=None, revoked=False, attestation_id=None
        )
