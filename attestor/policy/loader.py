# SPDX-License-Identifier: Apache-2.0
"""Parse policy files (YAML) into the frozen model, validating the schema first.

The only I/O here is reading the files of the policy directory, once at start;
evaluation (``attestor.policy.evaluate``) does none.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from attestor import schemas
from attestor.errors import ConfigError, InvalidInput
from attestor.policy.model import UNENFORCED_SECTIONS, Policy, PolicySet, RegistryRule

__all__ = ["MAX_POLICY_BYTES", "POLICY_SCHEMA", "load_policies", "parse_policy"]

#: ``schemas/policy.schema.json``: every policy file must meet it.
POLICY_SCHEMA = "policy"
#: A policy is a short list of rules; anything bigger is a mistake or an attack.
MAX_POLICY_BYTES = 1024 * 1024
_SUFFIXES = (".yaml", ".yml")


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors/aliases.

    Aliases let a few bytes describe an exponentially large tree ("billion
    laughs"); schema validation would then walk all of it. Policies never
    need them.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases are not allowed in policies"
            )
        return super().compose_node(parent, index)


def parse_policy(data: bytes, *, source: str = "<bytes>") -> Policy:
    """Parse and validate one policy document.

    Args:
        data: The file's exact bytes (hashed for audit).
        source: A name for messages, e.g. the file path.

    Returns:
        The frozen policy, with ``sha256`` of ``data`` and ``source`` set.

    Raises:
        InvalidInput: if the bytes are too large, not YAML, use aliases, or do
            not meet ``schemas/policy.schema.json``.
        ConfigError: if that schema itself is missing or invalid.
    """
    if len(data) > MAX_POLICY_BYTES:
        raise InvalidInput(f"{source}: policy is {len(data)} bytes, limit {MAX_POLICY_BYTES}")
    try:
        document = yaml.load(data, Loader=_NoAliasLoader)  # noqa: S506 - SafeLoader subclass
    # ValueError/OverflowError: PyYAML's timestamp constructor on e.g.
    # "2026-13-40"; RecursionError: absurdly deep nesting.
    except (yaml.YAMLError, ValueError, OverflowError, RecursionError) as e:
        raise InvalidInput(f"{source}: not valid YAML: {str(e)[:200]}") from e
    try:
        schemas.validate(document, POLICY_SCHEMA)
    except InvalidInput as e:
        raise InvalidInput(f"{source}: {e.message}", detail={**e.detail, "source": source}) from e
    except RecursionError as e:
        raise InvalidInput(f"{source}: policy is nested too deeply") from e
    if not isinstance(document, Mapping):  # the schema requires an object
        raise InvalidInput(f"{source}: a policy must be a mapping")
    rules = tuple(
        RegistryRule(
            host=rule["host"],
            repositories=tuple(rule.get("repositories", ("**",))),
            require_signatures=rule.get("require_signatures", True),
        )
        for rule in document["registries"]
    )
    return Policy(
        id=document["id"],
        version=document["version"],
        registries=rules,
        description=document.get("description", ""),
        unenforced_sections=tuple(s for s in UNENFORCED_SECTIONS if s in document),
        source=source,
        sha256="sha256:" + hashlib.sha256(data).hexdigest(),
    )


def load_policies(directory: Path) -> PolicySet:
    """Load every ``*.yaml`` / ``*.yml`` file directly in ``directory``.

    Subdirectories and other files are ignored, so examples can live in
    ``policies/examples/`` without being in force. An empty directory gives an
    empty set, which refuses every image with a clear reason when used.

    Raises:
        ConfigError: if the directory is missing or unreadable, a file is
            invalid, or two files declare the same policy id.
    """
    try:
        files = sorted(
            p
            for p in directory.iterdir()
            if p.suffix in _SUFFIXES and not p.name.startswith(".") and p.is_file()
        )
    except OSError as e:
        raise ConfigError(f"cannot read policy directory {directory}: {e.strerror}") from e
    policies: list[Policy] = []
    for path in files:
        try:
            with path.open("rb") as f:
                data = f.read(MAX_POLICY_BYTES + 1)
        except OSError as e:
            raise ConfigError(f"cannot read policy file {path}: {e.strerror}") from e
        try:
            policies.append(parse_policy(data, source=str(path)))
        except InvalidInput as e:
            raise ConfigError(f"invalid policy: {e.message}", detail=e.detail) from e
    return PolicySet(tuple(policies), source=str(directory))
