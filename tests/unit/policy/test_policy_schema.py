# SPDX-License-Identifier: Apache-2.0
"""Document validation: every error with its JSON pointer; semantic checks; shipped files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from attestor import schemas
from attestor.errors import InvalidInput
from attestor.policy import parse_policy
from tests.unit.policy._build import document, key_authority, keyless_authority, public_pem

REPO = Path(__file__).resolve().parents[3]
BAD_PEM = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"


def _errors(doc: Any) -> list[dict[str, str]]:
    data = doc if isinstance(doc, bytes) else yaml.safe_dump(doc).encode()
    with pytest.raises(InvalidInput) as info:
        parse_policy(data, source="p.yaml")
    errors = info.value.detail["errors"]
    assert isinstance(errors, list) and errors
    first = errors[0]
    assert info.value.message.startswith(f"p.yaml: {first['pointer'] or '/'}: {first['message']}")
    assert info.value.detail["source"] == "p.yaml"
    return errors


def test_every_schema_error_is_listed_with_its_pointer() -> None:
    doc = document(
        mode="loud",
        signatures={"threshold": 0, "authorities": [{"name": "Bad Name", "key": {}}]},
        max_age="3 days",
        extra=1,
    )
    pointers = [e["pointer"] for e in _errors(doc)]
    assert pointers == [
        "",
        "/max_age",
        "/mode",
        "/signatures/authorities/0/key",
        "/signatures/authorities/0/name",
        "/signatures/threshold",
    ]


@pytest.mark.parametrize(
    ("sections", "pointer", "fragment"),
    [
        ({"registries": [{"host": "r.example.com"}]}, "", "either 'scope' or 'registries'"),
        (
            {
                "signatures": {
                    "authorities": [
                        {
                            "name": "a",
                            "key": {"keyid": "k"},
                            "keyless": {"issuer": "i", "subject": "s"},
                        }
                    ]
                }
            },
            "/signatures/authorities/0",
            "exactly one of 'key' or 'keyless'",
        ),
        (
            {"signatures": {"authorities": [{"name": "a", "keyless": {"issuer": "i"}}]}},
            "/signatures/authorities/0/keyless",
            "exactly one of 'subject' or 'subject_regex'",
        ),
        ({"forbidden_base_layers": ["sha256:abc"]}, "/forbidden_base_layers/0", "does not match"),
        (
            {"attestations": [{"name": "x", "predicate_type": "t", "authorities": []}]},
            "/attestations/0/authorities",
            "",
        ),
        (
            {"signatures": {"authorities": [{"name": "k", "key": {"signer_uri": "not a uri"}}]}},
            "/signatures/authorities/0/key/signer_uri",
            "does not match",
        ),
    ],
)
def test_schema_errors(sections: dict[str, Any], pointer: str, fragment: str) -> None:
    (error, *_) = [e for e in _errors(document(**sections)) if e["pointer"] == pointer]
    assert fragment in error["message"]


@pytest.mark.parametrize(
    ("sections", "pointer", "fragment"),
    [
        (
            {
                "signatures": {
                    "threshold": 3,
                    "authorities": [key_authority("a", "k1"), key_authority("b", "k2")],
                }
            },
            "/signatures/threshold",
            "threshold 3 is more than the 2 authorities",
        ),
        (
            {"signatures": {"authorities": [key_authority("a", "k1"), key_authority("a", "k2")]}},
            "/signatures/authorities/1/name",
            "authority name 'a' is used twice",
        ),
        (
            {"signatures": {"authorities": [key_authority("a", "k1"), key_authority("b", "k1")]}},
            "/signatures/authorities/0",
            "two authorities name the same key",
        ),
        (
            {"signatures": {"authorities": [keyless_authority("a", "(unclosed", regex=True)]}},
            "/signatures/authorities/0/keyless/subject_regex",
            "subject_regex does not compile",
        ),
        (
            {"signatures": {"authorities": [keyless_authority("a", r"\pL{1000}", regex=True)]}},
            "/signatures/authorities/0/keyless/subject_regex",
            "subject_regex does not compile: pattern too large",
        ),
        (
            {
                "signatures": {
                    "authorities": [
                        {
                            "name": "a",
                            "key": {"public_key_pem": BAD_PEM},
                        }
                    ]
                }
            },
            "/signatures/authorities/0/key/public_key_pem",
            "not a usable public key",
        ),
        (
            {"rules": [{"name": "a", "expression": "true"}, {"name": "a", "expression": "true"}]},
            "/rules/1/name",
            "rule name 'a' is used twice",
        ),
        (
            {"rules": [{"name": "a", "expression": "image.x =="}]},
            "/rules/0/expression",
            "rule 'a': does not compile",
        ),
        (
            {
                "attestations": [
                    {
                        "name": "x",
                        "predicate_type": "https://example/t",
                        "authorities": [key_authority("a", "k")],
                        "conditions": {"builder_id": ["b"]},
                    }
                ]
            },
            "/attestations/0/conditions/builder_id",
            "applies to SLSA provenance",
        ),
        (
            {
                "attestations": [
                    {
                        "name": "x",
                        "predicate_type": "https://example/t",
                        "authorities": [key_authority("a", "k")],
                        "conditions": {"fields": [{"path": "$..x", "values": [1]}]},
                    }
                ]
            },
            "/attestations/0/conditions/fields/0/path",
            "unsupported syntax at character 1",
        ),
        ({"max_age": "0d"}, "/max_age", "does not match"),
    ],
)
def test_semantic_errors(sections: dict[str, Any], pointer: str, fragment: str) -> None:
    errors = _errors(document(**sections))
    assert [e["pointer"] for e in errors] == [pointer]
    assert fragment in errors[0]["message"]


def test_several_semantic_errors_reported_together() -> None:
    doc = document(
        signatures={"threshold": 2, "authorities": [keyless_authority("a", "(", regex=True)]},
        rules=[{"name": "r", "expression": "1 +"}],
    )
    assert [e["pointer"] for e in _errors(doc)] == [
        "/signatures/authorities/0/keyless/subject_regex",
        "/signatures/threshold",
        "/rules/0/expression",
    ]


def test_pem_and_keyid_must_agree() -> None:
    pem, keyid = public_pem()
    ok = document(
        signatures={"authorities": [{"name": "a", "key": {"public_key_pem": pem, "keyid": keyid}}]}
    )
    assert parse_policy(yaml.safe_dump(ok).encode()).signatures is not None
    bad = document(
        signatures={"authorities": [{"name": "a", "key": {"public_key_pem": pem, "keyid": "x"}}]}
    )
    (error,) = _errors(bad)
    assert error["pointer"] == "/signatures/authorities/0/key/keyid"


def test_json_documents_are_accepted_strictly() -> None:
    doc = document(mode="warn")
    policy = parse_policy(json.dumps(doc).encode(), source="p.json")
    assert (policy.id, policy.mode) == ("p", "warn")
    repeated = b'{"mode": "warn", ' + json.dumps(doc).encode()[1:]
    (error,) = _errors(repeated)
    assert "duplicate JSON key 'mode'" in error["message"]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"id: a\nid: b\n", "repeated key 'id'"),
        (b"a: &x [1]\nb: *x\n", "aliases are not allowed"),
        (b"id: 2026-01-01\n", "not a JSON value"),
        (b"{1: 2}\n", "not JSON"),
        (b"? [1]\n: 2\n", "not valid YAML"),
        (b"x: .nan\n", "not a finite number"),
        (b"\xff", "not UTF-8"),
        (b"[" * 40 + b"]" * 40, "nested deeper than 32 levels"),
    ],
)
def test_document_level_errors(data: bytes, fragment: str) -> None:
    (error, *_) = _errors(data)
    assert fragment in error["message"], error


def test_shipped_policies_meet_the_schema() -> None:
    files = sorted((REPO / "policies").rglob("*.yaml"))
    assert {f.name for f in files} >= {"dev.yaml", "strict.yaml", "audit.yaml"}
    for path in files:
        data = path.read_bytes()
        schemas.validate(yaml.safe_load(data), "policy")
        policy = parse_policy(data, source=str(path))
        assert policy.unenforced_sections == ()
    strict = parse_policy((REPO / "policies/examples/strict.yaml").read_bytes())
    assert strict.signatures is not None and strict.signatures.threshold == 2
    assert [a.name for a in strict.signatures.authorities] == [
        "release-key",
        "release-kms",
        "release-workflow",
    ]
    assert [a.name for a in strict.attestations] == ["provenance"]
    assert [r.name for r in strict.rules] == ["non-root", "no-debug-env"]
    assert strict.max_age is not None and strict.max_age.days == 90


def test_public_key_kinds() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa, x25519

    def pem_of(key: object) -> str:
        return (
            key.public_key()
            .public_bytes(  # type: ignore[attr-defined]
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    rsa_doc = document(
        signatures={
            "authorities": [
                {
                    "name": "a",
                    "key": {"public_key_pem": pem_of(rsa.generate_private_key(65537, 2048))},
                }
            ]
        }
    )
    assert parse_policy(yaml.safe_dump(rsa_doc).encode()).signatures is not None
    x_doc = document(
        signatures={
            "authorities": [
                {"name": "a", "key": {"public_key_pem": pem_of(x25519.X25519PrivateKey.generate())}}
            ]
        }
    )
    (error,) = _errors(x_doc)
    assert error["pointer"] == "/signatures/authorities/0/key/public_key_pem"
    assert "not a usable public key: unsupported key" in error["message"]


@pytest.mark.parametrize(
    ("member", "pointer"),
    [
        ('"description": "\\ud800"', "/description"),
        ('"\\udfff": 1', ""),
        ('"scope": [{"registry": "a", "repositories": ["\\ud800x"]}]', "/scope/0/repositories/0"),
    ],
)
def test_lone_surrogates_are_refused(member: str, pointer: str) -> None:
    # "\ud800" is valid JSON but decodes to a str that UTF-8 (the schema
    # validator, RE2) cannot take; it once escaped as UnicodeEncodeError.
    head = '{"apiVersion": "attestor.dev/v1alpha1", "kind": "Policy", "id": "p", "version": "1"'
    scope = ', "scope": [{"registry": "a"}]' if "scope" not in member else ""
    (error,) = _errors(f"{head}{scope}, {member}}}".encode())
    assert error["pointer"] == pointer
    assert "lone surrogate" in error["message"]
