"""Which container a process runs in: its cgroup path names the runtime and the id, and
the runtime's state files on disk name the container, its image and its pod.

Nothing here calls a daemon's API or the network: a container is recognised from
``/proc/PID/cgroup`` (cgroup v1 and v2, cgroupfs and systemd drivers) and enriched from
files the runtimes keep (podman's and cri-o's containers/storage JSON, containerd's and
runc's OCI bundles, docker's ``config.v2.json``). What a runtime keeps only in a database
(containerd's bolt metadata, podman's pod names) stays empty.
"""

from __future__ import annotations

import json
import os
import pwd
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any

from probes import procfs

_ID = r"([0-9a-f]{64})"
# (runtime, pattern of one cgroup path component); the first that matches wins.
_COMPONENTS = (
    ("podman", re.compile(rf"^libpod-{_ID}(?:\.scope)?$")),
    ("docker", re.compile(rf"^docker-{_ID}\.scope$")),
    ("cri-o", re.compile(rf"^crio-{_ID}(?:\.scope)?$")),
    ("containerd", re.compile(rf"^cri-containerd-{_ID}\.scope$")),
    ("containerd", re.compile(rf"^nerdctl-{_ID}\.scope$")),
)
_CONMON = re.compile(r"^(?:libpod|crio)-conmon-[0-9a-f]{64}")
_NSPAWN = re.compile(r"^(?:systemd-nspawn@(.+)\.service|machine-(.+)\.scope)$")
_POD_UID = re.compile(
    r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})"
)
_QOS = re.compile(r"^kubepods[-.]?(besteffort|burstable)")
_PODMAN_POD = re.compile(rf"^(?:machine-)?libpod_pod_{_ID}(?:\.slice)?$")
_BARE_ID = re.compile(rf"^{_ID}$")

CONTAINERS_STORAGE = "/var/lib/containers/storage"
CONTAINERD_TASKS = "/run/containerd/io.containerd.runtime.v2.task"
DOCKER_CONTAINERS = "/var/lib/docker/containers"


@dataclass(frozen=True)
class ContainerIdentity:
    """A container as its runtime names it. ``id`` and ``runtime`` always; ``name``,
    ``image`` and ``pod`` where the runtime's state on disk says; ``pod_uid`` and ``qos``
    (``guaranteed``, ``burstable``, ``besteffort``) for Kubernetes pods."""

    id: str
    runtime: str
    name: str = ""
    image: str = ""
    pod: str = ""
    pod_uid: str = ""
    qos: str = ""

    def to_dict(self) -> dict[str, str]:
        """The identity as JSON (every field, as text)."""
        return asdict(self)


def _cgroup_paths(lines: Iterable[str]) -> list[str]:
    """The cgroup paths of /proc/PID/cgroup lines, the v2 (``0::``) one first."""
    paths = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3:
            paths.append((parts[0] != "0", parts[2]))
    return [p for _, p in sorted(paths, key=lambda item: item[0])]


def from_cgroup(lines: Iterable[str]) -> ContainerIdentity | None:
    """The container named by a process's cgroup lines, or None (a host process, or a
    runtime's own monitor such as conmon)."""
    for path in _cgroup_paths(lines):
        found = _from_path(path)
        if found is not None:
            return found
    return None


def _from_path(path: str) -> ContainerIdentity | None:
    components = [c for c in path.split("/") if c]
    if any(_CONMON.match(c) for c in components):
        return None
    kube = any(c.startswith("kubepods") for c in components)
    pod_uid = qos = pod = ""
    if kube:
        match = _POD_UID.search(path)
        pod_uid = match.group(1).replace("_", "-") if match else ""
        qos = next((m.group(1) for c in components if (m := _QOS.match(c))), "guaranteed")
    for c in components:
        podman_pod = _PODMAN_POD.match(c)
        if podman_pod:
            pod = podman_pod.group(1)
    for c in reversed(components):
        for runtime, pattern in _COMPONENTS:
            match = pattern.match(c)
            if match:
                return ContainerIdentity(match.group(1), runtime, pod=pod, pod_uid=pod_uid, qos=qos)
        nspawn = _NSPAWN.match(c)
        if nspawn and not kube:
            name = (nspawn.group(1) or nspawn.group(2)).replace("\\x2d", "-")
            return ContainerIdentity(name, "systemd-nspawn", name=name)
    if len(components) >= 2 and _BARE_ID.match(components[-1]):
        # cgroupfs drivers: /docker/<id>, /kubepods/<qos>/pod<uid>/<id>, /<ns>/<id>
        parent = components[-2]
        if parent == "docker":
            return ContainerIdentity(components[-1], "docker")
        if kube:
            return ContainerIdentity(components[-1], "cri", pod_uid=pod_uid, qos=qos)
    return None


# --- the runtimes' state on disk ---------------------------------------------------------


def _load_json(path: str) -> Any:
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _annotations(bundle_config: Any) -> dict[str, str]:
    if not isinstance(bundle_config, dict):
        return {}
    found = bundle_config.get("annotations")
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def _from_annotations(ident: ContainerIdentity, notes: dict[str, str]) -> ContainerIdentity:
    """Name, image and pod from the CRI's (containerd's, cri-o's) OCI annotations."""
    name = notes.get("io.kubernetes.cri.container-name") or notes.get(
        "io.kubernetes.container.name", ""
    )
    name = name or notes.get("nerdctl/name", "")
    image = notes.get("io.kubernetes.cri.image-name") or notes.get(
        "io.kubernetes.cri-o.ImageName", ""
    )
    pod = notes.get("io.kubernetes.cri.sandbox-name") or notes.get("io.kubernetes.pod.name", "")
    namespace = notes.get("io.kubernetes.cri.sandbox-namespace") or notes.get(
        "io.kubernetes.pod.namespace", ""
    )
    if pod and namespace:
        pod = f"{namespace}/{pod}"
    return replace(
        ident,
        name=ident.name or name,
        image=ident.image or image,
        pod=pod or ident.pod,
    )


class ContainerCatalog:
    """Container identities of processes, with names from the runtimes' state on disk.

    Each state file is read when a container is first met; an unknown id rereads it once
    (a container started since)."""

    def __init__(
        self,
        storage_roots: Iterable[str] = (CONTAINERS_STORAGE,),
        containerd_tasks: str = CONTAINERD_TASKS,
        docker_containers: str = DOCKER_CONTAINERS,
    ) -> None:
        self._storage_roots = list(storage_roots)
        self._containerd = containerd_tasks
        self._docker = docker_containers
        self._known: dict[str, ContainerIdentity] = {}
        self._by_cgroup: dict[tuple[str, ...], ContainerIdentity | None] = {}

    def identify(self, pid: int) -> ContainerIdentity | None:
        """The container of ``pid`` (None for a host process). Raises ProcfsError."""
        lines = procfs.read_cgroup(pid)
        if lines in self._by_cgroup:
            return self._by_cgroup[lines]
        ident = from_cgroup(lines)
        if ident is not None:
            ident = self._named(ident, pid)
        self._by_cgroup[lines] = ident
        return ident

    def _named(self, ident: ContainerIdentity, pid: int) -> ContainerIdentity:
        known = self._known.get(ident.id)
        if known is None:
            known = self._known[ident.id] = self.enrich(ident, pid)
        return known

    def enrich(self, ident: ContainerIdentity, pid: int) -> ContainerIdentity:
        """``ident`` with the name, image and pod its runtime's state files give (``pid``
        finds a rootless container's storage in its owner's home)."""
        if ident.runtime in ("podman", "cri-o", "cri"):
            ident = self._from_storage(ident, self._storage_roots + _rootless_storage(pid))
        if ident.runtime in ("containerd", "cri"):
            ident = self._from_containerd(ident)
        if ident.runtime == "docker":
            ident = self._from_docker(ident)
        return ident

    def _from_storage(self, ident: ContainerIdentity, roots: list[str]) -> ContainerIdentity:
        """podman and cri-o keep containers/storage: containers.json, images.json."""
        for root in roots:
            containers = _load_json(f"{root}/overlay-containers/containers.json")
            entry = next(
                (c for c in containers or () if isinstance(c, dict) and c.get("id") == ident.id),
                None,
            )
            if entry is None:
                continue
            names = entry.get("names") or [""]
            try:
                meta = json.loads(entry.get("metadata") or "{}")
            except ValueError:
                meta = {}
            image = str(meta.get("image-name") or self._image_name(root, entry.get("image")))
            ident = replace(ident, name=str(names[0]), image=image)
            if ident.runtime == "cri":
                ident = replace(ident, runtime="cri-o")
            bundle = _load_json(f"{root}/overlay-containers/{ident.id}/userdata/config.json")
            notes = _annotations(bundle)
            if ident.runtime == "podman" and not ident.pod:
                # podman names a pod member's pod by id only (its name is in a bolt db)
                ident = replace(ident, pod=notes.get("io.kubernetes.cri-o.SandboxID", ""))
            return _from_annotations(ident, notes)
        return ident

    @staticmethod
    def _image_name(root: str, image_id: Any) -> str:
        images = _load_json(f"{root}/overlay-images/images.json")
        for image in images or ():
            if isinstance(image, dict) and image.get("id") == image_id:
                return str((image.get("names") or [image_id])[0])
        return str(image_id or "")

    def _from_containerd(self, ident: ContainerIdentity) -> ContainerIdentity:
        """containerd's shim keeps each task's OCI bundle under its namespace."""
        try:
            namespaces = sorted(os.listdir(self._containerd))
        except OSError:
            return ident
        for namespace in namespaces:
            bundle = _load_json(f"{self._containerd}/{namespace}/{ident.id}/config.json")
            if bundle is not None:
                return _from_annotations(replace(ident, runtime="containerd"), _annotations(bundle))
        return ident

    def _from_docker(self, ident: ContainerIdentity) -> ContainerIdentity:
        config = _load_json(f"{self._docker}/{ident.id}/config.v2.json")
        if not isinstance(config, dict):
            return ident
        inner = config.get("Config")
        image = inner.get("Image") if isinstance(inner, dict) else ""
        name = str(config.get("Name") or "").lstrip("/")
        return replace(ident, name=name, image=str(image or ""))


def _rootless_storage(pid: int) -> list[str]:
    """A rootless container's storage lives in its owner's home."""
    try:
        status = procfs.read_status(pid)
        home = pwd.getpwuid(status.uid).pw_dir
    except (procfs.ProcfsError, KeyError):
        return []
    if status.uid == 0:
        return []
    return [f"{home}/.local/share/containers/storage"]
