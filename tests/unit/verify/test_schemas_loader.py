# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import jsonschema_rs
import pytest

from attestor import schemas
from attestor.errors import ConfigError, InvalidInput


def test_validate_accepts_with_or_without_suffix():
    doc = {"payloadType": "t", "payload": "", "signatures": [{"sig": "AA=="}]}
    bad = {**doc, "signatures": [{"sig": 3}]}
    for name in ("dsse-envelope", "dsse-envelope.schema.json"):
        assert schemas.validate(doc, name) is None
        # Both spellings reach the real schema: one wrong type is refused at its path.
        with pytest.raises(InvalidInput) as err:
            schemas.validate(bad, name)
        assert err.value.detail["path"] == "$.signatures[0].sig"


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
        schema = schemas.load_schema(name)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == f"https://attestor.dev/schemas/{name}"
        assert jsonschema_rs.meta.is_valid(schema), name
        # Every document format is an object: the loaded validator says so.
        assert schema["type"] == "object"
        assert not schemas._validator(name).is_valid(None), name


def test_non_json_values_are_invalid_input_with_their_path():
    import datetime

    doc = {"payloadType": "t", "payload": "", "signatures": [{"sig": datetime.date(2026, 1, 1)}]}
    with pytest.raises(InvalidInput, match=r"\$\.signatures\[0\]\.sig: not a JSON value"):
        schemas.validate(doc, "dsse-envelope")
    with pytest.raises(InvalidInput, match=r"\$\[1\]"):
        schemas.validate({1: "x"}, "dsse-envelope")


def test_cross_file_refs_resolve_offline():
    # slsa-provenance-v1 $refs in-toto-statement-v1 by relative name.
    with pytest.raises(InvalidInput, match=r"\$\.runDetails\.builder\.id") as err:
        schemas.validate(
            {
                "buildDefinition": {"buildType": "https://x.test/b", "externalParameters": {}},
                "runDetails": {"builder": {"id": 3}},
            },
            "slsa-provenance-v1",
        )
    assert err.value.detail["path"] == "$.runDetails.builder.id"
