# SPDX-License-Identifier: Apache-2.0
"""Sanity checks for the Dockerfiles and compose file (no Docker engine here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
DOCKER = REPO / "docker"
DOCKERFILES = ("Dockerfile.server", "Dockerfile.worker", "Dockerfile.agent")
_PINNED = re.compile(r"^[a-z0-9./-]+:\d+\.\d+\.\d+[a-z0-9.-]*@sha256:[0-9a-f]{64}$")


def _instructions(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with comments dropped and continuations joined."""
    text = (DOCKER / name).read_text()
    logical: list[str] = []
    current = ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    assert not current, f"{name}: dangling line continuation"
    out = []
    for entry in logical:
        keyword, _, args = entry.strip().partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


@pytest.mark.parametrize("name", DOCKERFILES)
def test_spdx_header(name: str) -> None:
    assert (DOCKER / name).read_text().startswith("# SPDX-License-Identifier: Apache-2.0\n")


@pytest.mark.parametrize("name", DOCKERFILES)
def test_base_images_pinned_by_version_and_digest(name: str) -> None:
    froms = [args.split()[0] for kw, args in _instructions(name) if kw == "FROM"]
    assert len(froms) == 2, "multi-stage: a build stage and a runtime stage"
    for image in froms:
        assert _PINNED.match(image), image
    assert len(set(froms)) == 1, "build and runtime stages use the same base"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_installs_the_project_with_pip(name: str) -> None:
    runs = [args for kw, args in _instructions(name) if kw == "RUN"]
    assert any(re.search(r"pip install \.$", r) for r in runs)
    copies = [args for kw, args in _instructions(name) if kw == "COPY"]
    assert any(c.startswith("--from=build /opt/attestor") for c in copies)


@pytest.mark.parametrize("name", DOCKERFILES)
def test_no_add_of_urls_and_no_remote_fetches(name: str) -> None:
    for keyword, args in _instructions(name):
        assert keyword != "ADD", "use COPY; ADD fetches URLs and unpacks archives"
        if keyword == "RUN":
            assert not re.search(r"\b(curl|wget)\b", args), args


@pytest.mark.parametrize(
    ("name", "user"),
    [
        ("Dockerfile.server", "10001:10001"),
        ("Dockerfile.worker", "10001:10001"),
        ("Dockerfile.agent", "0:0"),
    ],
)
def test_user_is_explicit(name: str, user: str) -> None:
    users = [args for kw, args in _instructions(name) if kw == "USER"]
    assert users == [user]


def test_server_has_healthcheck_on_healthz() -> None:
    checks = [args for kw, args in _instructions("Dockerfile.server") if kw == "HEALTHCHECK"]
    assert len(checks) == 1
    assert "/healthz" in checks[0]


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("Dockerfile.server", "attestor"),
        ("Dockerfile.worker", "attestor"),
        ("Dockerfile.agent", "attestor-agent"),
    ],
)
def test_entrypoint_is_the_console_script(name: str, command: str) -> None:
    entry = [args for kw, args in _instructions(name) if kw == "ENTRYPOINT"]
    assert entry == [f'["{command}"]']


def test_copied_paths_exist() -> None:
    for name in DOCKERFILES:
        for keyword, args in _instructions(name):
            if keyword == "COPY" and not args.startswith("--from"):
                *sources, _dest = args.split()
                for source in sources:
                    assert (REPO / source).exists() or source in {"README.md", "LICENSE"}, source


def test_compose_is_consistent() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"server", "worker", "redis", "postgres"}
    for name, dockerfile in [("server", "Dockerfile.server"), ("worker", "Dockerfile.worker")]:
        build = services[name]["build"]
        assert (DOCKER / build["context"] / build["dockerfile"]).resolve() == DOCKER / dockerfile
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgresql+psycopg://")
        assert "@postgres:5432/" in env["DATABASE_URL"]
        assert env["REDIS_URL"].startswith("redis://redis:6379/")
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DOCKER / source).is_dir(), source
            else:
                assert source in compose["volumes"], source
        for dependency in services[name]["depends_on"]:
            assert dependency in services
    assert services["server"]["ports"] == ["127.0.0.1:8080:8080"]
    for name in ("redis", "postgres"):
        image = services[name]["image"]
        assert re.match(r"^[a-z]+:\d+\.\d+(\.\d+)?-bookworm$", image), image
        assert "healthcheck" in services[name]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerignore_admits_only_what_is_copied(name: str) -> None:
    lines = [
        line.strip()
        for line in (DOCKER / f"{name}.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "deny by default: ./var holds the development signing key"
    admitted = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert not admitted & {"var", ".venv", ".git", "tests"}
    for keyword, args in _instructions(name):
        if keyword == "COPY" and not args.startswith("--from"):
            *sources, _dest = args.split()
            assert set(sources) <= admitted, sources
