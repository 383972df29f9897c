# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from attestor.errors import ConfigError, InvalidInput
from attestor.policy import evaluate, load_policies, parse_policy

REPO = Path(__file__).resolve().parents[3]

GOOD = b"""\
apiVersion: attestor.dev/v1alpha1
kind: Policy
id: team-a
version: "3"
registries:
  - host: "registry.example.com:5000"
    repositories: ["team-a/*"]
    require_signatures: false
"""


def test_parse_records_version_and_file_sha256() -> None:
    policy = parse_policy(GOOD, source="team-a.yaml")
    assert policy.id == "team-a"
    assert policy.version == "3"
    assert policy.sha256 == "sha256:" + hashlib.sha256(GOOD).hexdigest()
    assert policy.source == "team-a.yaml"
    assert policy.unenforced_sections == ()
    (rule,) = policy.registries
    assert rule.host == "registry.example.com:5000"
    assert rule.repositories == ("team-a/*",)
    assert rule.require_signatures is False


def test_defaults_every_repository_and_signatures_required() -> None:
    policy = parse_policy(
        GOOD.replace(b'    repositories: ["team-a/*"]\n', b"").replace(
            b"    require_signatures: false\n", b""
        )
    )
    (rule,) = policy.registries
    assert rule.repositories == ("**",)
    assert rule.require_signatures is True


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ((b"id: team-a", b"id: team-a\nextra: 1"), "Additional properties"),
        ((b"    require_signatures: false", b"    require_signature: false"), "/registries/0"),
        ((b'version: "3"', b"version: 3"), "version"),
        ((b'version: "3"', b"version: 2026-11-27"), "version"),
        ((b"kind: Policy", b"kind: Other"), "kind"),
        ((b"attestor.dev/v1alpha1", b"attestor.dev/v9"), "apiVersion"),
        ((b'"registry.example.com:5000"', b'"https://registry.example.com"'), "host"),
        ((b'"registry.example.com:5000"', b'"*"'), "host"),
        ((b'"registry.example.com:5000"', b'"a.*.example.com"'), "host"),
        ((b'["team-a/*"]', b"[]"), "repositories"),
        ((b'["team-a/*"]', b'["Team/[a]"]'), "repositories"),
        ((b"id: team-a", b"id: Team A"), "id"),
    ],
)
def test_schema_violations_are_invalid_input(change: tuple[bytes, bytes], fragment: str) -> None:
    data = GOOD.replace(*change)
    assert data != GOOD
    with pytest.raises(InvalidInput) as info:
        parse_policy(data, source="p.yaml")
    assert fragment in info.value.message
    assert info.value.message.startswith("p.yaml: ")


def test_missing_registries_and_empty_list_rejected() -> None:
    head = GOOD.split(b"registries:")[0]
    with pytest.raises(InvalidInput, match="registries"):
        parse_policy(head)
    with pytest.raises(InvalidInput, match="registries"):
        parse_policy(head + b"registries: []\n")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"- a\n- b\n",
        b"key: [unclosed",
        b"\xff\xfe\x00garbage",
        b"a: &x [1]\nb: *x\n",
        GOOD + b"---\n" + GOOD,
        b"!!python/object/apply:os.system ['true']",
        b"[" * 300 + b"]" * 300,
    ],
)
def test_malformed_documents_are_invalid_input(data: bytes) -> None:
    with pytest.raises(InvalidInput):
        parse_policy(data)


def test_trailing_newline_in_host_is_rejected() -> None:
    # Python's "$" would accept "localhost\n"; the model uses \Z.
    data = GOOD.replace(b'"registry.example.com:5000"', b'"localhost\\n"')
    with pytest.raises(InvalidInput, match="host"):
        parse_policy(data)


def test_oversize_file_is_rejected() -> None:
    with pytest.raises(InvalidInput, match="limit"):
        parse_policy(GOOD + b"#" * (1024 * 1024))


def test_unenforced_sections_are_recorded() -> None:
    data = GOOD + b"signing_keys:\n  - keyid: abc\nbuilders:\n  - id: https://ci.example/b\n"
    policy = parse_policy(data)
    assert policy.unenforced_sections == ("signing_keys", "builders")


def test_load_directory_sorted_and_ignores_other_files(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_bytes(GOOD)
    (tmp_path / "a.yml").write_bytes(GOOD.replace(b"id: team-a", b"id: alpha"))
    (tmp_path / "README.md").write_text("not a policy")
    (tmp_path / ".hidden.yaml").write_text("garbage: [")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.yaml").write_text("garbage: [")
    policies = load_policies(tmp_path)
    assert policies.ids == ("alpha", "team-a")
    assert policies.source == str(tmp_path)
    assert policies.get("alpha").source == str(tmp_path / "a.yml")


def test_duplicate_ids_rejected(tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_bytes(GOOD)
    (tmp_path / "two.yaml").write_bytes(GOOD.replace(b'"3"', b'"4"'))
    with pytest.raises(ConfigError, match="duplicate policy id 'team-a'"):
        load_policies(tmp_path)


def test_invalid_file_is_config_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_bytes(b"id: [")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_policies(tmp_path)


def test_missing_directory_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read policy directory"):
        load_policies(tmp_path / "absent")


def test_empty_directory_loads_but_refuses_at_use(tmp_path: Path) -> None:
    policies = load_policies(tmp_path)
    assert policies.policies == ()

    class Ref:
        registry = "127.0.0.1:5000"
        repository = "app"

    decision = evaluate(policies, Ref())
    assert not decision.allowed
    assert "no policies are loaded" in decision.reasons[0]
    assert str(tmp_path) in decision.reasons[0]


def test_shipped_policies_load() -> None:
    shipped = load_policies(REPO / "policies")
    assert shipped.ids == ("dev",)
    assert shipped.get("dev").version == "1"
    example = load_policies(REPO / "policies" / "examples")
    assert example.ids == ("production", "team-b-signing-rollout")
    assert example.get("production").unenforced_sections == ()
    assert example.get("team-b-signing-rollout").mode == "audit"
