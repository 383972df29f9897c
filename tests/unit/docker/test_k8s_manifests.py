# SPDX-License-Identifier: Apache-2.0
"""Validate every Kubernetes manifest offline against the API's JSON schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

K8S = Path(__file__).resolve().parents[3] / "docker" / "k8s"
#: Oldest and newest versions we claim to support (native sidecars need 1.29).
VERSIONS = ("1.30.0", "1.37.0")


def _documents() -> list[tuple[str, int, dict[str, Any]]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        for index, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc is not None:
                out.append((path.name, index, doc))
    return out


DOCS = _documents()


def _by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, _, doc in DOCS if doc["kind"] == kind]


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"] if doc["kind"] == "Pod" else doc["spec"]["template"]["spec"]


def test_every_file_has_spdx_header_and_documents() -> None:
    files = sorted(K8S.glob("*.yaml"))
    assert files
    for path in files:
        assert path.read_text().startswith("# SPDX-License-Identifier: Apache-2.0\n"), path


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("name", "index", "doc"), DOCS, ids=[f"{n}#{i}" for n, i, _ in DOCS])
def test_manifest_is_valid_kubernetes(
    name: str, index: int, doc: dict[str, Any], version: str
) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


def test_strict_validation_catches_a_typo() -> None:
    # Proves the test above can fail: an unknown field is rejected.
    doc = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "x"},
        "automount": False,
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, VERSIONS[0], strict=True)


def test_expected_objects_exist() -> None:
    kinds = {(doc["kind"], doc["metadata"]["name"]) for _, _, doc in DOCS}
    for expected in [
        ("Namespace", "attestor"),
        ("Namespace", "attestor-agent"),
        ("Deployment", "attestor-server"),
        ("Service", "attestor-server"),
        ("Deployment", "attestor-worker"),
        ("DaemonSet", "attestor-agent"),
        ("Pod", "example-app"),
        ("ConfigMap", "attestor-config"),
        ("ConfigMap", "attestor-policies"),
        ("Secret", "attestor-secrets"),
        ("ServiceAccount", "attestor-agent"),
        ("NetworkPolicy", "default-deny-ingress"),
    ]:
        assert expected in kinds


def test_service_selects_the_server_pods() -> None:
    (service,) = _by_kind("Service")
    (server,) = [d for d in _by_kind("Deployment") if d["metadata"]["name"] == "attestor-server"]
    labels = server["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    container_ports = {p["name"] for p in _pod_spec(server)["containers"][0]["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= container_ports


def test_server_and_worker_are_restricted() -> None:
    for deployment in _by_kind("Deployment"):
        spec = _pod_spec(deployment)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        assert spec["automountServiceAccountToken"] is False
        for container in spec["containers"]:
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["readOnlyRootFilesystem"] is True
            assert ctx["capabilities"]["drop"] == ["ALL"]
            assert "add" not in ctx["capabilities"]


@pytest.mark.parametrize("kind", ["DaemonSet", "Pod"])
def test_agent_host_access_is_read_only_and_minimal(kind: str) -> None:
    (doc,) = _by_kind(kind)
    spec = _pod_spec(doc)
    (agent,) = [
        c for c in spec.get("initContainers", []) + spec["containers"] if "agent" in c["image"]
    ]
    host_volumes = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    assert set(host_volumes.values()) == {"/run/containerd", "/var/lib/containerd"} | (
        {"/var/lib/attestor-agent"} if kind == "DaemonSet" else set()
    )
    for mount in agent["volumeMounts"]:
        if host_volumes.get(mount["name"], "").endswith("containerd"):
            assert mount.get("readOnly") is True, mount
    ctx = agent["securityContext"]
    assert ctx["privileged"] is False
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"], "add": ["DAC_READ_SEARCH", "SYS_ADMIN"]}
    assert not spec.get("hostNetwork") and not spec.get("hostPID")
    assert spec["automountServiceAccountToken"] is False


def test_no_rbac_grants() -> None:
    # Least privilege: nothing calls the Kubernetes API (see rbac.yaml).
    granting = {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}
    assert not [doc for _, _, doc in DOCS if doc["kind"] in granting]
    for account in _by_kind("ServiceAccount"):
        assert account["automountServiceAccountToken"] is False


def test_policy_configmap_is_a_valid_policy() -> None:
    from attestor.policy import parse_policy

    (config,) = [d for d in _by_kind("ConfigMap") if d["metadata"]["name"] == "attestor-policies"]
    for name, body in config["data"].items():
        assert name.endswith(".yaml")
        assert parse_policy(body.encode(), source=name).id


def test_server_serves_https_only_with_the_mounted_tls_secret() -> None:
    from attestor.cli.serve import command

    (server,) = [d for d in _by_kind("Deployment") if d["metadata"]["name"] == "attestor-server"]
    (container,) = _pod_spec(server)["containers"]
    ctx = command.make_context("serve", container["args"][1:])
    assert container["args"][0] == "serve"
    (port,) = container["ports"]
    assert ctx.params["port"] == port["containerPort"] == 8443
    volumes = {v["name"]: v for v in _pod_spec(server)["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    for key in ("certfile", "keyfile"):
        mount = mounts[ctx.params[key].parent.as_posix()]
        assert mount["readOnly"] is True
        assert volumes[mount["name"]]["secret"]["secretName"] == "attestor-server-tls"
    assert {ctx.params["certfile"].name, ctx.params["keyfile"].name} == {"tls.crt", "tls.key"}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["scheme"] == "HTTPS"
        assert container[probe]["httpGet"]["port"] == port["name"]
    (service,) = _by_kind("Service")
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        (8443, port["name"])
    ]
    policies = {d["metadata"]["name"]: d for d in _by_kind("NetworkPolicy")}
    api = policies["attestor-server-api"]
    assert [p["port"] for rule in api["spec"]["ingress"] for p in rule["ports"]] == [8443]


@pytest.mark.parametrize("kind", ["DaemonSet", "Pod"])
def test_agent_calls_the_server_over_https_with_the_mounted_ca(kind: str) -> None:
    from agent.cli import main

    (doc,) = _by_kind(kind)
    spec = _pod_spec(doc)
    (agent,) = [
        c for c in spec.get("initContainers", []) + spec["containers"] if "agent" in c["image"]
    ]
    args = [a.replace("$(POD_UID)", "0f0e0d0c-pod") for a in agent["args"]]
    ctx = main.commands["run"].make_context("run", args[1:])
    assert ctx.params["server"] == "https://attestor-server.attestor.svc:8443"
    assert ctx.params["unsafe_allow_plain_http"] is False
    ca = ctx.params["ca_bundle"]
    (mount,) = [m for m in agent["volumeMounts"] if m["mountPath"] == ca.parent.as_posix()]
    assert mount["readOnly"] is True
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    name = volume["configMap"]["name"]
    (config,) = [d for d in _by_kind("ConfigMap") if d["metadata"]["name"] == name]
    assert config["metadata"]["namespace"] == doc["metadata"]["namespace"]
    assert ca.name in config["data"]


def test_key_files_are_external_and_the_signing_key_is_mounted_everywhere() -> None:
    # Replicas have scratch data dirs: the API must not write keys there, and
    # every pod that signs mounts the key Secret at the path the URI names.
    config = next(d for d in _by_kind("ConfigMap") if d["metadata"]["name"] == "attestor-config")
    assert config["data"]["ATTESTOR_KEY_FILES"] == "external"
    key_uri = config["data"]["ATTESTOR_SIGNING_KEY"]
    assert key_uri.startswith("file:///etc/attestor/keys/")
    for name in ("attestor-server", "attestor-worker"):
        spec = _pod_spec(next(d for d in _by_kind("Deployment") if d["metadata"]["name"] == name))
        volumes = {v["name"]: v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
        mounts = {m["mountPath"]: m for c in spec["containers"] for m in c.get("volumeMounts", [])}
        mount = mounts["/etc/attestor/keys"]
        assert volumes[mount["name"]] == "attestor-signing-key", name
        # Keys added to the Secret for a rotation reach running pods only without subPath.
        assert "subPath" not in mount, name
