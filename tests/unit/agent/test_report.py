# SPDX-License-Identifier: Apache-2.0
"""Violation and ContainerReport: round trips and schema validation of examples."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

import agent.report
from agent.report import (
    LAYER_STATUSES,
    ContainerReport,
    ImageRef,
    IntegrityCheck,
    LayerReport,
    Violation,
)
from attestor.digests import Digest, KeyId
from attestor.errors import InvalidInput, TooLarge
from attestor.schemas import load_schema, validate
from attestor.violation_kinds import VIOLATION_KINDS

NOW = datetime(2026, 11, 27, 4, 44, 35, 123456, tzinfo=UTC)
IMG = Digest("sha256:" + "1" * 64)
L0 = Digest("sha256:" + "2" * 64)
D0 = Digest("sha256:" + "3" * 64)


def _violation(**changes: Any) -> Violation:
    fields: dict[str, Any] = {
        "container_id": "web-1",
        "image_digest": IMG,
        "layer_digest": L0,
        "path": "usr/bin/tool",
        "kind": "mode",
        "detail": {"expected": "0755", "actual": "4755"},
        "detected_at": NOW,
    }
    fields.update(changes)
    return Violation.create(**fields)


def _report(**changes: Any) -> ContainerReport:
    fields: dict[str, Any] = {
        "container_id": "web-1",
        "namespace": "k8s.io",
        "image": ImageRef("127.0.0.1:5000/app:1", IMG),
        "layers": (
            LayerReport(0, L0, D0, D0, "att-1", KeyId("k1"), "valid"),
            LayerReport(1, IMG, L0, IMG, None, None, "unattested"),
        ),
        "history": (
            IntegrityCheck(NOW, "layer", L0, "violations", 120, 1, full_rehash=True),
            IntegrityCheck(NOW, "upperdir", None, "error", 0, 0, False, error="gone"),
        ),
        "anomalies": (_violation(),),
        "finalized": True,
        "generated_at": NOW,
    }
    fields.update(changes)
    return ContainerReport(**fields)


def test_violation_round_trip_matches_schema() -> None:
    v = _violation()
    doc = v.to_dict()
    validate(doc, "violation")
    assert doc["detected_at"] == "2026-11-27T04:44:35.123456Z"
    assert doc["kind"] == "mode"
    assert Violation.from_dict(doc) == v
    assert Violation.from_json(v.to_json()) == v


def test_violation_ids_are_fresh_uuids() -> None:
    a, b = _violation(), _violation()
    assert a.id != b.id
    assert len(a.id) == 36


@pytest.mark.parametrize("kind", ["unattested", "bad-signature", "revoked"])
def test_layer_level_violations_have_no_path(kind: str) -> None:
    v = _violation(path=None, kind=kind, detail={"reason": "policy denied: registry"})
    assert Violation.from_dict(v.to_dict()) == v


def test_drift_new_executable_may_have_no_layer() -> None:
    v = _violation(layer_digest=None, path="tmp/evil", kind="drift-new-executable")
    assert Violation.from_json(v.to_json()).layer_digest is None


def test_detail_is_copied_and_capped() -> None:
    detail = {"a": 1}
    v = _violation(detail=detail)
    detail["a"] = 2
    assert v.detail == {"a": 1}
    with pytest.raises(TooLarge):
        _violation(detail={"x": "y" * 20_000})
    with pytest.raises(InvalidInput):
        _violation(detail={"x": float("nan")})


def test_offset_times_are_normalised_to_utc() -> None:
    v = _violation(detected_at=NOW.astimezone(timezone(timedelta(hours=2))))
    assert v.to_dict()["detected_at"] == "2026-11-27T04:44:35.123456Z"
    with pytest.raises(InvalidInput, match="timezone-aware"):
        _violation(detected_at=datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kind", "tampered"),
        ("id", "not-a-uuid"),
        ("id", "123E4567-E89B-12D3-A456-426614174000"),
        ("image_digest", "sha256:abc"),
        ("path", ""),
        ("detected_at", "yesterday"),
        ("detail", []),
        ("extra", 1),
    ],
)
def test_bad_violation_documents_are_refused(field: str, value: object) -> None:
    doc = _violation().to_dict()
    doc[field] = value
    with pytest.raises(InvalidInput):
        Violation.from_dict(doc)


def test_file_kinds_need_a_path() -> None:
    with pytest.raises(InvalidInput, match="needs a path"):
        _violation(path=None, kind="content")


def test_container_report_round_trip_matches_schema() -> None:
    report = _report()
    doc = report.to_dict()
    validate(doc, "container-report")
    assert doc["apiVersion"] == "attestor.dev/v1alpha1"
    assert doc["layers"][1]["attestation_id"] is None
    assert "error" not in doc["history"][0]
    assert ContainerReport.from_dict(doc) == report
    assert ContainerReport.from_json(report.to_json()) == report


def test_minimal_container_report() -> None:
    report = _report(layers=[], history=[], anomalies=[], finalized=False, namespace=None)
    doc = json.loads(report.to_json())
    assert "namespace" not in doc
    assert ContainerReport.from_dict(doc) == report


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(kind="Other"),
        lambda d: d.update(finalized="yes"),
        lambda d: d["layers"][0].update(status="ok"),
        lambda d: d["layers"][0].update(index=-1),
        lambda d: d["history"][0].update(scope="disk"),
        lambda d: d["anomalies"][0].update(kind="bogus"),
        lambda d: d["image"].pop("digest"),
    ],
)
def test_bad_container_reports_are_refused(mutate) -> None:
    doc = _report().to_dict()
    mutate(doc)
    with pytest.raises(InvalidInput):
        ContainerReport.from_dict(doc)


def test_report_over_schema_cap_is_refused_on_output() -> None:
    checks = [IntegrityCheck(NOW, "layer", L0, "clean", 1, 0, False)] * 1001
    with pytest.raises(InvalidInput, match="history"):
        _report(history=checks).to_dict()


def test_not_json_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        Violation.from_json(b"\xff")
    with pytest.raises(InvalidInput):
        ContainerReport.from_json("{")


def test_schema_enums_match_the_code() -> None:
    assert load_schema("violation")["$defs"]["kind"]["enum"] == list(VIOLATION_KINDS)
    assert agent.report.VIOLATION_KINDS is VIOLATION_KINDS  # one list, re-exported
    layer = load_schema("container-report")["$defs"]["layer"]
    assert set(layer["properties"]["status"]["enum"]) == LAYER_STATUSES
