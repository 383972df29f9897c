# SPDX-License-Identifier: Apache-2.0
"""Parse policy documents (YAML or JSON) into the frozen model.

``parse_policy`` is pure: bytes in, a ``Policy`` or ``InvalidInput`` out,
with every error located by a JSON pointer in ``detail["errors"]``. The only
I/O here is ``load_policies`` reading the files of the policy directory,
once at start; evaluation does none.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from attestor.errors import ConfigError, InvalidInput
from attestor.policy._build import build_policy
from attestor.policy._document import MAX_POLICY_BYTES, error, invalid, read_document
from attestor.policy._schema_check import POLICY_SCHEMA, schema_errors
from attestor.policy.model import Policy, PolicySet

__all__ = ["MAX_POLICY_BYTES", "POLICY_SCHEMA", "load_policies", "parse_policy"]

_SUFFIXES = (".yaml", ".yml", ".json")


def parse_policy(data: bytes, *, source: str = "<bytes>") -> Policy:
    """Parse and validate one policy document.

    Args:
        data: The document's exact bytes (YAML, or JSON when the first
            non-blank character is ``{``); hashed for audit.
        source: A name for messages, e.g. the file path.

    Returns:
        The frozen policy, with ``sha256`` of ``data`` and ``source`` set.

    Raises:
        InvalidInput: if the bytes are too large, not UTF-8 YAML/JSON, use
            aliases or repeated keys, do not meet
            ``schemas/policy.schema.json``, or fail a semantic check (a CEL
            rule or subject regex that does not compile, a threshold over the
            number of authorities, a bad PEM, a repeated name). The message
            names the first error; ``detail["errors"]`` lists
            ``{"pointer", "message"}`` for each.
        ConfigError: if the schema itself is missing or invalid.
    """
    document = read_document(data, source=source)
    try:
        errors = schema_errors(document)
    except RecursionError:  # read_document bounds the depth; kept fail-closed
        errors = [error("", "policy is nested too deeply")]
    if errors:
        raise invalid(source, errors)
    policy, errors = build_policy(
        document, source=source, sha256="sha256:" + hashlib.sha256(data).hexdigest()
    )
    if policy is None:
        raise invalid(source, errors or [error("", "policy could not be built")])
    return policy


def load_policies(directory: Path) -> PolicySet:
    """Load every ``*.yaml`` / ``*.yml`` / ``*.json`` file directly in ``directory``.

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
