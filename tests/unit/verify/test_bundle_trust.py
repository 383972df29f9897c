# SPDX-License-Identifier: Apache-2.0
"""Offline trust roots: embedded public-good roots, custom roots, ClientTrustConfig."""

from __future__ import annotations

import json

import pytest

from attestor.errors import InvalidInput
from attestor.sigstore_internals import embedded_trust_file, trusted_root_model
from attestor.verify.trust import load_client_trust_config, load_trusted_root, public_good


def _embedded(name) -> bytes:
    return embedded_trust_file("staging", name)


@pytest.mark.parametrize("instance", ["production", "staging"])
def test_public_good_roots_load_offline(instance, monkeypatch) -> None:
    # Any network use would need a proxy or DNS; make both fail loudly.
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    trust = public_good(instance)
    assert trust.source == instance
    assert trust.trusted_root.get_fulcio_certs()
    assert trusted_root_model(trust.trusted_root).tlogs


def test_production_and_staging_differ() -> None:
    prod = trusted_root_model(public_good("production").trusted_root).tlogs
    staging = trusted_root_model(public_good("staging").trusted_root).tlogs
    assert {t.log_id.key_id for t in prod}.isdisjoint({t.log_id.key_id for t in staging})


def test_unknown_instance_rejected() -> None:
    with pytest.raises(InvalidInput, match="unknown"):
        public_good("nightly")  # type: ignore[arg-type]


def test_custom_root_from_bytes_and_path(tmp_path) -> None:
    data = _embedded("trusted_root.json")
    assert load_trusted_root(data).source == "custom"
    path = tmp_path / "root.json"
    path.write_bytes(data)
    assert load_trusted_root(path).name == "root.json"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.__setitem__("mediaType", "application/x-nope"), "mediaType|unsupported"),
        (lambda d: d["tlogs"][0]["publicKey"]["validFor"].pop("start"), "start"),
        (lambda d: d.__setitem__("surprise", True), "surprise|Extra"),
        (lambda d: d["tlogs"][0]["publicKey"].__setitem__("keyDetails", "NOPE"), "keyDetails"),
    ],
)
def test_malformed_custom_root_rejected(mutate, reason) -> None:
    doc = json.loads(_embedded("trusted_root.json"))
    mutate(doc)
    with pytest.raises(InvalidInput, match=reason):
        load_trusted_root(json.dumps(doc).encode())


def test_unreadable_root_rejected(tmp_path) -> None:
    with pytest.raises(InvalidInput, match="cannot read"):
        load_trusted_root(tmp_path / "missing.json")
    with pytest.raises(InvalidInput):
        load_trusted_root(b"{not json")


def test_client_trust_config() -> None:
    config = {
        "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
        "trustedRoot": json.loads(_embedded("trusted_root.json")),
        "signingConfig": json.loads(_embedded("signing_config.v0.2.json")),
    }
    trust = load_client_trust_config(json.dumps(config).encode())
    assert trust.client_trust_config is not None
    assert trusted_root_model(trust.trusted_root).tlogs
    config["signingConfig"]["rekorTlogUrls"] = []
    with pytest.raises(InvalidInput, match="Rekor"):
        load_client_trust_config(json.dumps(config).encode())
    config["mediaType"] = "application/vnd.dev.sigstore.clienttrustconfig.v9+json"
    with pytest.raises(InvalidInput):
        load_client_trust_config(json.dumps(config).encode())
