# SPDX-License-Identifier: Apache-2.0
"""Policy files into the database: ``attestor policy apply`` and the start-up import.

Both apply like ``kubectl apply``: all files are validated first and stored
in one transaction, so one invalid file stores nothing; unchanged documents
change nothing; policies without a file are left alone.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from attestor.errors import ConfigError, InvalidInput
from attestor.services.policies import MAX_DOCUMENT_BYTES, Applied, apply, validate_document

__all__ = [
    "IMPORT_ACTOR",
    "MAX_POLICY_FILES",
    "POLICY_SUFFIXES",
    "check_files",
    "import_directory",
    "import_files",
    "read_policy_files",
]

POLICY_SUFFIXES = (".yaml", ".yml", ".json")
#: Files one import reads at most (a directory of policies, not of anything).
MAX_POLICY_FILES = 1000
#: Who the start-up import is in the audit log.
IMPORT_ACTOR = "startup:ATTESTOR_POLICY_DIR"


def read_policy_files(path: Path) -> list[tuple[str, bytes]]:
    """``(name, bytes)`` of one file, or of the policy files directly in a directory.

    In a directory only ``*.yaml``, ``*.yml`` and ``*.json`` not starting with
    a dot are read (subdirectories, e.g. ``examples/``, are not).

    Raises:
        ConfigError: the path cannot be read, holds too many files, or a file is too large.
    """
    try:
        if path.is_dir():
            files = sorted(
                p
                for p in path.iterdir()
                if p.suffix in POLICY_SUFFIXES and not p.name.startswith(".") and p.is_file()
            )
        else:
            files = [path]
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from e
    if len(files) > MAX_POLICY_FILES:
        raise ConfigError(f"{path} holds {len(files)} policy files, limit {MAX_POLICY_FILES}")
    out: list[tuple[str, bytes]] = []
    for file in files:
        try:
            with file.open("rb") as f:
                data = f.read(MAX_DOCUMENT_BYTES + 1)
        except OSError as e:
            raise ConfigError(f"cannot read policy file {file}: {e.strerror}") from e
        if len(data) > MAX_DOCUMENT_BYTES:
            raise ConfigError(f"{file}: larger than {MAX_DOCUMENT_BYTES} bytes")
        out.append((str(file), data))
    return out


def check_files(files: list[tuple[str, bytes]]) -> None:
    """Validate every file, without the database: a start stops here on a bad one.

    Raises:
        ConfigError: a file is invalid, or two files declare one id.
    """
    seen: dict[str, str] = {}
    for name, data in files:
        try:
            policy = validate_document(data, source=name)
        except InvalidInput as e:
            raise ConfigError(f"invalid policy: {e.message}", detail=e.detail) from e
        if policy.id in seen:
            raise ConfigError(f"policy id {policy.id!r} is in both {seen[policy.id]} and {name}")
        seen[policy.id] = name


def import_files(
    session: Session, files: list[tuple[str, bytes]], *, actor: str, now: datetime
) -> list[tuple[str, Applied]]:
    """Apply every file in one transaction; nothing is stored unless all are valid.

    Raises:
        ConfigError: a file is invalid, or two files declare one id.
        Conflict: a file reuses a label with other content.
    """
    check_files(files)
    return [(name, apply(session, data, actor=actor, now=now, source=name)) for name, data in files]


def import_directory(
    session_factory: sessionmaker[Session], directory: Path, *, now: datetime
) -> list[tuple[str, Applied]]:
    """The start-up import: apply the policy files of ``directory``, like ``kubectl apply``.

    Run once per start, before serving. Unchanged files change nothing; changed
    ones become new versions; policies that have no file are left alone (delete
    them through the API or ``attestor policy``). A file therefore wins over an
    API change of the same policy at the next start: keep them in step, or
    leave the directory empty once policies are managed centrally.

    Raises:
        ConfigError: the directory is unreadable or a file is invalid (nothing
            is stored then).
        Conflict: a file reuses a stored label with other content.
    """
    files = read_policy_files(directory)
    with session_factory.begin() as session:
        return import_files(session, files, actor=IMPORT_ACTOR, now=now)
