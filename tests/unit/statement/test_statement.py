# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from attestor.digests import chain_ids, sha256_digest
from attestor.errors import InvalidInput
from attestor.statement import (
    BUILD_TYPE,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    ImageInfo,
    ManifestRef,
    ParentRef,
    align_history,
    build_layer_statement,
    statement_bytes,
    validate_statement,
)

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
LAYER = sha256_digest(b"layer blob")
DIFF = sha256_digest(b"layer tar")
MANIFEST_DIGEST = sha256_digest(b"manifest")
IMAGE = ImageInfo(
    name="127.0.0.1:5000/sample/app",
    reference="127.0.0.1:5000/sample/app:1.0",
    manifest_digest=MANIFEST_DIGEST,
    manifest_media_type="application/vnd.oci.image.manifest.v1+json",
    tag="1.0",
)
MREF = ManifestRef(
    sha256=sha256_digest(b"canonical manifest"),
    tree_digest=sha256_digest(b"tree"),
    uri="/v1/manifests/" + sha256_digest(b"canonical manifest"),
)


def _build(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "image": IMAGE,
        "layer_index": 0,
        "layer_digest": LAYER,
        "layer_media_type": "application/vnd.oci.image.layer.v1.tar+gzip",
        "diff_id": DIFF,
        "chain_id": DIFF,
        "history_entry": {"created": "2026-01-01T00:00:00Z", "created_by": "COPY . /", "x": 1},
        "parent": None,
        "manifest_ref": MREF,
        "policy_id": "dev",
        "policy_version": "3",
        "builder_id": "https://attestor.local/builder/test",
        "invocation_id": "0b7c7c1e-4f4e-4a8e-9a55-6f7f2a1c0d01",
        "started_on": T0,
        "finished_on": T0 + timedelta(seconds=2),
    }
    args.update(overrides)
    return build_layer_statement(**args)


def test_statement_has_the_fields_issue_3_asks_for() -> None:
    stmt = _build()
    assert list(stmt) == ["_type", "subject", "predicateType", "predicate"]
    assert stmt["_type"] == STATEMENT_TYPE
    assert stmt["subject"] == [
        {"name": f"127.0.0.1:5000/sample/app@{LAYER}", "digest": {"sha256": LAYER[7:]}}
    ]
    assert stmt["predicateType"] == PREDICATE_TYPE
    build = stmt["predicate"]["buildDefinition"]
    assert build["buildType"] == BUILD_TYPE
    ext = build["externalParameters"]
    assert ext["image"] == {
        "name": IMAGE.name,
        "reference": IMAGE.reference,
        "manifestDigest": MANIFEST_DIGEST,
        "mediaType": IMAGE.manifest_media_type,
        "tag": "1.0",
    }
    assert ext["layer"]["index"] == 0
    assert ext["history"] == {"created": "2026-01-01T00:00:00Z", "created_by": "COPY . /"}
    assert build["internalParameters"] == {"policy": {"id": "dev", "version": "3"}}
    assert build["resolvedDependencies"] == [
        {
            "name": "image-manifest",
            "uri": f"{IMAGE.name}@{MANIFEST_DIGEST}",
            "digest": {"sha256": MANIFEST_DIGEST[7:]},
            "mediaType": IMAGE.manifest_media_type,
        }
    ]
    run = stmt["predicate"]["runDetails"]
    assert run["builder"] == {"id": "https://attestor.local/builder/test"}
    assert run["metadata"] == {
        "invocationId": "0b7c7c1e-4f4e-4a8e-9a55-6f7f2a1c0d01",
        "startedOn": "2026-01-02T03:04:05Z",
        "finishedOn": "2026-01-02T03:04:07Z",
    }
    names = [b["name"] for b in run["byproducts"]]
    assert names == ["diffID", "chainID", "layer-manifest"]
    assert run["byproducts"][2]["annotations"] == {"treeDigest": MREF.tree_digest}
    assert run["byproducts"][2]["digest"] == {"sha256": MREF.sha256[7:]}


def test_parent_link_makes_the_chain() -> None:
    diff_ids = [DIFF, sha256_digest(b"second tar")]
    chain = chain_ids(diff_ids)
    envelope = sha256_digest(b"parent envelope")
    stmt = _build(
        layer_index=1,
        diff_id=diff_ids[1],
        chain_id=chain[1],
        parent=ParentRef(chain_id=chain[0], envelope_sha256=envelope[7:], uri="/v1/attestations/x"),
        image=dataclasses.replace(IMAGE, index_digest=sha256_digest(b"i"), platform="linux/amd64"),
    )
    deps = stmt["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert deps[1] == {
        "name": "parent-layer-attestation",
        "uri": "/v1/attestations/x",
        "digest": {"sha256": envelope[7:]},
        "mediaType": "application/vnd.dsse.envelope.v1+json",
        "annotations": {"chainID": chain[0]},
    }
    # A "sha256:" prefixed envelope hash is accepted as well.
    again = _build(
        layer_index=1,
        chain_id=chain[1],
        parent=ParentRef(chain_id=chain[0], envelope_sha256=envelope),
    )
    assert again["predicate"]["buildDefinition"]["resolvedDependencies"][1]["digest"] == {
        "sha256": envelope[7:]
    }


@pytest.mark.parametrize(
    "overrides",
    [
        {"layer_index": 1},  # no parent above layer 0
        {"parent": ParentRef(DIFF, LAYER[7:])},  # a parent for layer 0
        {"layer_digest": "sha256:abc"},
        {"diff_id": LAYER[7:]},
        {"started_on": datetime(2026, 1, 1)},  # naive
        {"builder_id": "not a uri"},
        {"policy_id": ""},
        {"manifest_ref": ManifestRef("sha256:" + "0" * 64, "md5:00", "/x")},
    ],
)
def test_bad_inputs_are_rejected(overrides: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        _build(**overrides)


def test_times_are_utc_with_z() -> None:
    plus2 = timezone(timedelta(hours=2))
    stmt = _build(started_on=datetime(2026, 1, 2, 5, 4, 5, 123456, tzinfo=plus2))
    assert stmt["predicate"]["runDetails"]["metadata"]["startedOn"] == "2026-01-02T03:04:05Z"


def test_statement_bytes_are_deterministic_and_keep_ints() -> None:
    stmt = _build()
    data = statement_bytes(stmt)
    assert data == statement_bytes(copy.deepcopy(stmt))
    assert b" " not in data.replace(b"COPY . /", b"")
    assert b'"index":0' in data
    assert json.loads(data) == stmt
    with pytest.raises(InvalidInput):
        statement_bytes({"x": float("nan")})


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda s: s.update(extra=1), "top-level field (cosign is strict)"),
        (lambda s: s.update(_type="https://in-toto.io/Statement/v0.1"), "_type"),
        (lambda s: s.update(subject=[]), "subject"),
        (lambda s: s["subject"][0]["digest"].update(sha256="ABC"), "subject digest"),
        (lambda s: s["predicate"].update(buildDefinition={}), "buildDefinition"),
        (
            lambda s: s["predicate"]["buildDefinition"]["externalParameters"].update(x=1),
            "unknown external parameter",
        ),
        (
            lambda s: s["predicate"]["buildDefinition"]["externalParameters"]["layer"].update(
                index="1"
            ),
            "string layer index",
        ),
        (
            lambda s: s["predicate"]["runDetails"]["metadata"].update(startedOn="yesterday"),
            "timestamp",
        ),
        (lambda s: s["predicate"]["runDetails"]["byproducts"].pop(), "byproducts"),
        (lambda s: s["predicate"]["buildDefinition"]["internalParameters"].clear(), "policy"),
    ],
)
def test_schemas_reject_garbage(mutate: Callable[[dict[str, Any]], None], where: str) -> None:
    stmt = _build()
    validate_statement(stmt)
    mutate(stmt)
    with pytest.raises(InvalidInput):
        validate_statement(stmt)


def test_foreign_build_types_get_the_generic_checks_only() -> None:
    foreign = {"anything": [1, 2]}
    stmt = _build()
    stmt["predicate"]["buildDefinition"] = {
        "buildType": "https://example.com/other/v1",
        "externalParameters": foreign,
    }
    assert validate_statement(stmt) is None
    # The same parameters under our build type meet our stricter rules...
    ours = copy.deepcopy(stmt)
    ours["predicate"]["buildDefinition"]["buildType"] = BUILD_TYPE
    with pytest.raises(InvalidInput):
        validate_statement(ours)
    # ...and the generic SLSA rules still hold for the foreign type.
    stmt["predicate"]["runDetails"]["builder"]["id"] = 3
    with pytest.raises(InvalidInput) as err:
        validate_statement(stmt)
    assert err.value.detail["path"] == "$.runDetails.builder.id"


def test_slsa_fixture_predicate_validates(asset: Callable[[str], Path]) -> None:
    # A real SLSA v1 predicate (slsa-github-generator) passes the generic schema;
    # its statement is in-toto v0.1, which we do not emit.
    import base64

    from attestor.schemas import validate

    bundle = json.loads(
        asset("fixtures/provenance/container-based-builder.slsa-v1.sigstore.json").read_text()
    )
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    assert statement["predicateType"] == PREDICATE_TYPE
    predicate = statement["predicate"]
    assert predicate["buildDefinition"]["buildType"] == (
        "https://slsa.dev/container-based-build/v0.1?draft"
    )
    assert validate(predicate, "slsa-provenance-v1") is None
    # The schema does read this predicate: without its builder it is refused.
    del predicate["runDetails"]["builder"]
    with pytest.raises(InvalidInput) as err:
        validate(predicate, "slsa-provenance-v1")
    assert err.value.detail["path"] == "$.runDetails"


def test_align_history_skips_empty_layers(asset: Callable[[str], Path]) -> None:
    config = json.loads(asset("fixtures/oci/image-config.json").read_text())
    aligned = align_history(config)
    assert len(aligned) == len(config["rootfs"]["diff_ids"]) == 12
    assert aligned[0] == {"created": "0001-01-01T00:00:00Z"}
    assert aligned[11] == {
        "created": "2025-02-25T21:57:29.579251262Z",
        "created_by": "COPY /app/app /app # buildkit",
        "comment": "buildkit.dockerfile.v0",
    }
    assert all("ENTRYPOINT" not in str(h) for h in aligned)


def test_align_history_refuses_to_guess() -> None:
    config = {"rootfs": {"diff_ids": [DIFF, DIFF]}, "history": [{"created_by": "a"}]}
    assert align_history(config) == [None, None]
    assert align_history({"rootfs": {"diff_ids": [DIFF]}}) == [None]
    assert align_history({}) == []
    config = {
        "rootfs": {"diff_ids": [DIFF]},
        "history": [
            {"created_by": "ENV", "empty_layer": True},
            {"created_by": "RUN x", "empty_layer": False},
        ],
    }
    assert align_history(config) == [{"created_by": "RUN x"}]
