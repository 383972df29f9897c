# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import pytest

from attestor import schemas
from attestor.errors import ConfigError, InvalidInput


def test_validate_accepts_with_or_without_suffix():
    doc = {"payloadType": "t", "payload": "", "signatures": [{"sig": "AA=="}]}
    schemas.validate(doc, "dsse-envelope")
    schemas.validate(doc, "dsse-envelope.schema.json")


def test_validate_reports_json_path():
    doc = {"payloadType": "t", "payload": "", "signatures": [{"sig": "AA=="}, {"sig": 3}]}
    with pytest.raises(InvalidInput, match=r"\$\.signatures\[1\]\.sig") as err:
        schemas.validate(doc, "dsse-envelope")
    assert err.value.detail["path"] == "$.signatures[1].sig"


def test_missing_and_unsafe_schema_names():
    with pytest.raises(ConfigError, match="not found"):
        schemas.validate({}, "no-such-schema")
    with pytest.raises(ConfigError, match="bad schema name"):
        schemas.validate({}, "../pyproject.toml")


def test_every_shipped_schema_is_a_valid_schema():
    names = sorted(p.name for p in schemas.schema_dir().glob("*.schema.json"))
    assert "dsse-envelope.schema.json" in names
    for name in names:
        schemas.load_schema(name)
        schemas._validator(name)  # the meta-schema check runs here


def test_non_json_values_are_invalid_input_with_their_path():
    import datetime

    doc = {"payloadType": "t", "payload": "", "signatures": [{"sig": datetime.date(2026, 1, 1)}]}
    with pytest.raises(InvalidInput, match=r"\$\.signatures\[0\]\.sig: not a JSON value"):
        schemas.validate(doc, "dsse-envelope")
    with pytest.raises(InvalidInput, match=r"\$\[1\]"):
        schemas.validate({1: "x"}, "dsse-envelope")


def test_cross_file_refs_resolve_offline():
    # slsa-provenance-v1 $refs in-toto-statement-v1 by relative name.
    if not (schemas.schema_dir() / "slsa-provenance-v1.schema.json").is_file():
        pytest.skip("slsa-provenance-v1 schema not written yet")
    with pytest.raises(InvalidInput, match=r"\$\.runDetails\.builder\.id"):
        schemas.validate(
            {
                "buildDefinition": {"buildType": "https://x.test/b", "externalParameters": {}},
                "runDetails": {"builder": {"id": 3}},
            },
            "slsa-provenance-v1",
        )
