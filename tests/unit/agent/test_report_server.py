# SPDX-License-Identifier: Apache-2.0
"""agent.server: parsing of server answers, problem+json mapping, and the client
against a small stdlib HTTP server on 127.0.0.1 (the real server is not ready)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.report import Violation
from agent.server import (
    ClientLimits,
    IssuedImage,
    JobAccepted,
    ServerClient,
    batch_idempotency_key,
    error_from_response,
    loads_strict,
    parse_attestation_page,
    parse_issue_response,
    parse_keys,
    parse_registration,
    parse_violation_receipt,
    violation_sender,
)
from agent.spool import Deliverer, Spool
from attestor import errors
from attestor.digests import Digest, sha256_hex

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
PEM = (
    ec.generate_private_key(ec.SECP256R1())
    .public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
KEY = {"keyid": "k1", "algorithm": "ecdsa-p256", "public_key_pem": PEM, "status": "active"}
ITEM = {
    "id": "att-1",
    "image": {"reference": "r/app@" + D1, "digest": D1},
    "layer": {"index": 0, "digest": D2, "diff_id": D1},
    "status": "valid",
    "keyid": "k1",
    "envelope_url": "/v1/attestations/att-1/envelope",
    "bundle_url": None,
    "manifest": {"sha256": D2, "tree_digest": D1, "url": "/v1/manifests/" + D2},
}


# -- parsing helpers ----------------------------------------------------------


def test_parse_registration_and_keys() -> None:
    reg = parse_registration({"agent_id": "ag-1", "keys": [KEY]})
    assert reg.agent_id == "ag-1"
    assert reg.keys[0].keyid == "k1"
    assert reg.keys[0].to_trusted_key().keyid == "k1"
    assert parse_keys({"keys": []}) == ()
    for bad in ({"keys": [dict(KEY, keyid=5)]}, {"keys": "x"}, [], {"agent_id": "", "keys": []}):
        with pytest.raises(errors.UpstreamError, match="malformed"):
            parse_registration(bad)


def test_parse_attestation_page() -> None:
    page = parse_attestation_page({"items": [ITEM], "next": "c2"})
    assert page.next == "c2"
    (att,) = page.items
    assert (att.id, att.layer.index, att.layer.digest, att.keyid) == ("att-1", 0, D2, "k1")
    assert att.manifest is not None and att.manifest.sha256 == "2" * 64
    assert parse_attestation_page({"items": [], "next": None}).items == ()
    no_manifest = dict(ITEM, manifest=None, keyid=None)
    assert parse_attestation_page({"items": [no_manifest]}).items[0].manifest is None


@pytest.mark.parametrize(
    "change",
    [
        {"layer": {"index": True, "digest": D2, "diff_id": D1}},
        {"layer": {"index": 0, "digest": "sha256:zz", "diff_id": D1}},
        {"manifest": {"sha256": "abc", "tree_digest": D1, "url": "u"}},
        {"id": None},
        {"bundle_url": 3},
    ],
)
def test_malformed_attestations_are_upstream_errors(change: dict[str, Any]) -> None:
    with pytest.raises(errors.UpstreamError, match="malformed"):
        parse_attestation_page({"items": [dict(ITEM, **change)], "next": None})


def test_parse_issue_response() -> None:
    issued = parse_issue_response(
        201, {"image": {"reference": "r/app@" + D1, "digest": D1}, "attestations": [ITEM]}
    )
    assert isinstance(issued, IssuedImage) and issued.attestations[0].id == "att-1"
    queued = parse_issue_response(202, {"job": {"id": "j1", "url": "/v1/jobs/j1"}})
    assert queued == JobAccepted(id="j1", url="/v1/jobs/j1")


def test_parse_violation_receipt() -> None:
    assert parse_violation_receipt({"accepted": 2, "duplicates": 1}).duplicates == 1
    with pytest.raises(errors.UpstreamError):
        parse_violation_receipt({"accepted": "2", "duplicates": 1})


def test_loads_strict_refuses_duplicates_and_nan() -> None:
    assert loads_strict(b'{"a": 1}', "x") == {"a": 1}
    for bad in (b'{"a": 1, "a": 2}', b'{"a": NaN}', b"\xff", b"{"):
        with pytest.raises(errors.UpstreamError):
            loads_strict(bad, "x")


def _problem(type_: str, status: int, detail: str, **extra: Any) -> bytes:
    return json.dumps(
        {"type": type_, "title": "t", "status": status, "detail": detail, **extra}
    ).encode()


@pytest.mark.parametrize(
    ("status", "type_", "cls"),
    [
        (403, "urn:attestor:problem:policy-denied", errors.PolicyDenied),
        (403, "https://attestor.dev/problems/policy-denied", errors.PolicyDenied),
        (403, "urn:attestor:problem:forbidden", errors.Forbidden),
        (502, "urn:attestor:problem:upstream-error", errors.UpstreamError),
        (401, "about:blank", errors.Unauthorized),
        (404, "about:blank", errors.NotFound),
        (409, "urn:attestor:problem:conflict", errors.Conflict),
        (413, "urn:attestor:problem:too-large", errors.TooLarge),
        (422, "urn:attestor:problem:invalid-input", errors.InvalidInput),
        (418, "about:blank", errors.InvalidInput),
        (500, "urn:attestor:problem:invalid-configuration", errors.UpstreamError),
        (500, "about:blank", errors.UpstreamError),
        (503, "urn:attestor:problem:unavailable", errors.Unavailable),
        (429, "about:blank", errors.Unavailable),
    ],
)
def test_problem_types_map_to_error_classes(status: int, type_: str, cls: type) -> None:
    error = error_from_response(status, _problem(type_, status, "the reason"))
    assert type(error) is cls
    assert error.message == "server: the reason"
    assert error.detail["status"] == status


def test_problem_extensions_and_retry_after_are_kept() -> None:
    body = _problem("urn:attestor:problem:policy-denied", 403, "no", reasons=["registry"])
    error = error_from_response(403, body)
    assert error.detail["reasons"] == ["registry"]
    unavailable = error_from_response(503, b"not json", retry_after="17")
    assert isinstance(unavailable, errors.Unavailable)
    assert unavailable.retry_after == 17
    assert unavailable.message == "server: HTTP 503"
    assert error_from_response(503, None, retry_after="Wed, 21 Oct").retry_after == 5  # type: ignore[attr-defined]


def test_batch_key_is_stable_and_order_free() -> None:
    assert batch_idempotency_key(["b", "a"]) == batch_idempotency_key(["a", "b"])
    assert batch_idempotency_key(["a"]) != batch_idempotency_key(["a", "b"])


# -- the client against a stdlib HTTP server ----------------------------------


class FakeServer:
    """Answers by (method, path) from a table; records what it received."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], tuple[int, dict[str, str], bytes]] = {}
        self.received: list[tuple[str, str, dict[str, str], bytes]] = []

    def answer(self, method: str, path: str, status: int, body: Any, **headers: str) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.routes[(method, path)] = (status, headers, data)


@pytest.fixture
def fake() -> Iterator[tuple[FakeServer, str]]:
    state = FakeServer()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            state.received.append((self.command, self.path, dict(self.headers), body))
            path = self.path.split("?")[0]
            status, headers, data = state.routes.get(
                (self.command, path), (404, {}, _problem("about:blank", 404, "no route"))
            )
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k.replace("_", "-"), v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _client(url: str, **kwargs: Any) -> ServerClient:
    return ServerClient(url, "tok-secret", timeout=5, **kwargs)


def test_register_sends_token_and_body(fake: tuple[FakeServer, str]) -> None:
    state, url = fake
    state.answer("POST", "/v1/agents/register", 200, {"agent_id": "ag-1", "keys": [KEY]})
    reg = _client(url).register(hostname="n1", mode="node", version="0.1", namespaces=["k8s.io"])
    assert reg.agent_id == "ag-1"
    _, _, headers, body = state.received[0]
    assert headers["Authorization"] == "Bearer tok-secret"
    assert json.loads(body) == {
        "hostname": "n1", "mode": "node", "version": "0.1", "namespaces": ["k8s.io"],
    }  # fmt: skip


def test_attestations_query_and_envelope(fake: tuple[FakeServer, str]) -> None:
    state, url = fake
    state.answer("GET", "/v1/attestations", 200, {"items": [ITEM], "next": None})
    state.answer("GET", "/v1/attestations/att-1/envelope", 200, b'{"payload": "x"}')
    client = _client(url)
    assert [a.id for a in client.iter_attestations(D2)] == ["att-1"]
    assert (
        state.received[0][1]
        == f"/v1/attestations?layer_digest={D2.replace(':', '%3A')}&status=valid"
    )
    assert client.envelope("att-1") == b'{"payload": "x"}'


def test_manifest_is_hash_checked(fake: tuple[FakeServer, str]) -> None:
    state, url = fake
    good = b'{"entries": []}'
    state.answer("GET", f"/v1/manifests/sha256:{sha256_hex(good)}", 200, good)
    state.answer("GET", f"/v1/manifests/{D1}", 200, good)
    client = _client(url)
    assert client.manifest(sha256_hex(good)) == good
    with pytest.raises(errors.VerificationError, match="hashes to"):
        client.manifest(D1)


def test_issue_refusal_carries_the_server_reason(fake: tuple[FakeServer, str]) -> None:
    state, url = fake
    body = _problem("urn:attestor:problem:policy-denied", 403, "registry r not admitted")
    state.answer("POST", "/v1/attestations", 403, body, Content_Type="application/problem+json")
    with pytest.raises(errors.PolicyDenied, match="registry r not admitted") as info:
        _client(url).request_attestation("r/app@" + D1)
    assert info.value.detail["server_detail"] == "registry r not admitted"


def test_oversized_answer_is_refused(fake: tuple[FakeServer, str]) -> None:
    state, url = fake
    state.answer("GET", "/v1/attestations/a/envelope", 200, b"x" * 2000)
    client = _client(url, limits=ClientLimits(max_envelope_bytes=1000))
    with pytest.raises(errors.UpstreamError, match="over 1000 bytes"):
        client.envelope("a")


def test_redirects_are_not_followed(fake: tuple[FakeServer, str]) -> None:
    state, url = fake
    state.answer("GET", "/v1/keys", 302, b"", Location="http://elsewhere.invalid/")
    with pytest.raises(errors.UpstreamError, match="redirected"):
        _client(url).keys()


def test_unreachable_server_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the request: refused
    with pytest.raises(errors.Unavailable, match="unreachable"):
        _client(f"http://127.0.0.1:{port}").keys()


def test_plain_http_only_to_loopback() -> None:
    with pytest.raises(errors.ConfigError, match="plain http"):
        _client("http://attestor.example:8080")
    _client("http://attestor.example:8080", unsafe_allow_plain_http=True)
    _client("https://attestor.example")
    with pytest.raises(errors.ConfigError):
        _client("ftp://x")


def test_spooled_violations_reach_the_server_after_an_outage(
    fake: tuple[FakeServer, str], tmp_path: Path
) -> None:
    state, url = fake
    now = datetime(2026, 11, 27, tzinfo=UTC)
    violations = [
        Violation.create(
            container_id="c1",
            image_digest=Digest(D1),
            layer_digest=Digest(D2),
            path=f"bin/f{i}",
            kind="content",
            detected_at=now,
        )  # fmt: skip
        for i in range(3)
    ]
    with Spool.open(tmp_path) as spool:
        for v in violations:
            spool.put(v.to_dict())
        spool.put({"not": "a violation"})  # refused locally, set aside
        deliverer = Deliverer(spool, violation_sender(_client(url)))
        state.answer("POST", "/v1/violations", 503, b"", Retry_After="1")
        result = deliverer.drain(0.0)
        assert isinstance(result.error, errors.Unavailable) and len(spool) == 4
        # The bad record already made the deliverer go one by one, in order.
        first_try = json.loads(state.received[-1][3])["violations"]
        assert [v["id"] for v in first_try] == [violations[0].id]
        state.answer("POST", "/v1/violations", 200, {"accepted": 1, "duplicates": 0})
        result = deliverer.drain(result.retry_at or 0.0)
        assert (result.delivered, result.rejected, len(spool)) == (3, 1, 0)
    singles = state.received[1:]
    assert [json.loads(r[3])["violations"][0]["id"] for r in singles] == [v.id for v in violations]
    assert [r[2]["Idempotency-Key"] for r in singles] == [
        batch_idempotency_key([v.id]) for v in violations
    ]


def test_a_clean_batch_is_one_post_with_the_batch_key(
    fake: tuple[FakeServer, str], tmp_path: Path
) -> None:
    state, url = fake
    state.answer("POST", "/v1/violations", 200, {"accepted": 2, "duplicates": 0})
    now = datetime(2026, 11, 27, tzinfo=UTC)
    violations = [
        Violation.create(
            container_id="c1",
            image_digest=Digest(D1),
            layer_digest=None,
            path=None,
            kind="unattested",
            detected_at=now,
            detail={"reason": "policy"},
        )  # fmt: skip
        for _ in range(2)
    ]
    receipt = _client(url).post_violations(violations)
    assert (receipt.accepted, receipt.duplicates) == (2, 0)
    (post,) = state.received
    assert post[2]["Content-Type"] == "application/json"
    assert post[2]["Idempotency-Key"] == batch_idempotency_key(v.id for v in violations)
    assert [Violation.from_dict(v) for v in json.loads(post[3])["violations"]] == violations
