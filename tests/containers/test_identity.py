"""Container identity from cgroup paths, as each runtime and driver writes them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from probes.containers import ContainerCatalog, ContainerIdentity, from_cgroup

ID = "4ac847c002e3f1f20a1515012637b871d7371f2711b5aff56598990fd1f6808e"
POD = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"


def v1(path: str) -> list[str]:
    """cgroup v1 (hybrid) lines: every controller, name=systemd and the v2 line."""
    return [f"12:memory:{path}", f"1:name=systemd:{path}", f"0::{path}"]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (v1(f"/libpod_parent/libpod-{ID}"), ContainerIdentity(ID, "podman")),
        ([f"0::/machine.slice/libpod-{ID}.scope/container"], ContainerIdentity(ID, "podman")),
        (
            [f"0::/machine.slice/machine-libpod_pod_{ID[::-1]}.slice/libpod-{ID}.scope"],
            ContainerIdentity(ID, "podman", pod=ID[::-1]),
        ),
        (v1(f"/docker/{ID}"), ContainerIdentity(ID, "docker")),
        ([f"0::/system.slice/docker-{ID}.scope"], ContainerIdentity(ID, "docker")),
        (
            [
                "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod"
                f"{POD.replace('-', '_')}.slice/cri-containerd-{ID}.scope"
            ],
            ContainerIdentity(ID, "containerd", pod_uid=POD, qos="besteffort"),
        ),
        (
            [
                f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{POD}.slice/crio-{ID}.scope"
            ],
            ContainerIdentity(ID, "cri-o", pod_uid=POD, qos="burstable"),
        ),
        (
            v1(f"/kubepods/pod{POD}/{ID}"),
            ContainerIdentity(ID, "cri", pod_uid=POD, qos="guaranteed"),
        ),
        (
            ["0::/machine.slice/systemd-nspawn@web\\x2d1.service/payload"],
            ContainerIdentity("web-1", "systemd-nspawn", name="web-1"),
        ),
        (
            ["0::/machine.slice/machine-db.scope"],
            ContainerIdentity("db", "systemd-nspawn", name="db"),
        ),
        (v1("/user.slice/user-0.slice/session-3.scope"), None),
        ([f"0::/libpod_parent/libpod-conmon-{ID}"], None),  # podman's monitor, a host process
        ([f"0::/machine.slice/libpod-conmon-{ID}.scope"], None),
        (["0::/"], None),
    ],
)
def test_from_cgroup(lines: list[str], expected: ContainerIdentity | None) -> None:
    assert from_cgroup(lines) == expected


def test_names_from_state_files(tmp_path: Path) -> None:
    """containerd's OCI bundle annotations and docker's config.v2.json name a container."""
    tasks = tmp_path / "tasks" / "k8s.io" / ID
    tasks.mkdir(parents=True)
    notes = {
        "io.kubernetes.cri.container-name": "web",
        "io.kubernetes.cri.image-name": "registry.example/web:1",
        "io.kubernetes.cri.sandbox-name": "web-5d9",
        "io.kubernetes.cri.sandbox-namespace": "shop",
    }
    (tasks / "config.json").write_text(json.dumps({"annotations": notes}))
    docker = tmp_path / "docker" / ID
    docker.mkdir(parents=True)
    (docker / "config.v2.json").write_text(
        json.dumps({"Name": "/db", "Config": {"Image": "pg:16"}})
    )
    catalog = ContainerCatalog((), str(tmp_path / "tasks"), str(tmp_path / "docker"))
    cri = catalog.enrich(ContainerIdentity(ID, "cri", pod_uid=POD), 1)
    assert cri == ContainerIdentity(
        ID, "containerd", "web", "registry.example/web:1", "shop/web-5d9", POD
    )
    assert catalog.enrich(ContainerIdentity(ID, "docker"), 1) == ContainerIdentity(
        ID, "docker", "db", "pg:16"
    )
