"""A podman lab without a registry: an image imported from a rootfs assembled here
(busybox, its libraries and the loader from ``ldd``, and gcc-built fixtures), and the
containers the tests judge. Everything is removed afterwards, also on failure.

podman runs as these VMs need it: runc, the cgroupfs manager, explicit ulimits, and
``--network none`` (never podman's default network).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PODMAN = [
    "podman",
    "--runtime",
    "runc",
    "--cgroup-manager",
    "cgroupfs",
]
RUN_OPTIONS = [
    "--ulimit",
    "nofile=20000:20000",
    "--ulimit",
    "nproc=4096:4096",
    "--network",
    "none",
]
BUSYBOX = "/usr/bin/busybox"
NESTED_OVERLAY = "'overlay' is not supported over overlayfs"
SCRIPT_DIR = "/opt/realscripts"  # /opt/scripts is an absolute symlink to it, in the image

# A real stack buffer whose address escapes, built without a protector: no cookie.
_NODEP = r"""
#include <stdlib.h>
#include <string.h>
#include <time.h>
void keep(char *p);
void keep(char *p) { __asm__ volatile("" : : "r"(p) : "memory"); }
int main(int argc, char **argv) {
    char buf[256];
    long ms = argc > 1 ? strtol(argv[1], NULL, 10) : 0;
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    strncpy(buf, argc > 2 ? argv[2] : "nodep", sizeof buf - 1);
    buf[sizeof buf - 1] = 0;
    keep(buf);
    nanosleep(&ts, NULL);
    return (int)strlen(buf) < 0;
}
"""
_LIB = r"""
int rba_container_lib(int x) { return x + 1; }
"""


def podman(*args: str, check: bool = True, timeout: float = 120) -> str:
    """Run podman with this VM's options; its stdout."""
    done = subprocess.run(
        [*PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def _gcc(source: str, out: Path, flags: list[str]) -> Path:
    src = out.with_suffix(".c")
    src.write_text(source)
    subprocess.run(["gcc", *flags, "-o", str(out), str(src)], check=True, capture_output=True)
    src.unlink()
    return out


def _libraries(binary: str) -> list[str]:
    """The shared objects (and the loader) ``binary`` needs, from ldd."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False).stdout
    found = []
    for line in out.splitlines():
        words = line.split()
        for word in words:
            if word.startswith("/"):
                found.append(word)
    return found


@dataclass
class Lab:
    """The image's fixtures (paths inside the image) and the host-side shadow file."""

    tag: str
    work: Path
    shadow_dir: str  # same path in the image (safe) and on the host (world-writable)
    containers: list[str] = field(default_factory=list)
    pods: list[str] = field(default_factory=list)
    ww_lib: str = "/opt/ww/libww.so"
    nodep: str = "/opt/bin/nodep"
    script_link: str = "/opt/scripts/run.sh"
    script_real: str = f"{SCRIPT_DIR}/run.sh"

    @property
    def safe_lib(self) -> str:
        """The safe in-image library whose host twin is world-writable."""
        return f"{self.shadow_dir}/libsafe.so"

    def run(
        self, name: str, *argv: str, env: dict[str, str] | None = None, extra: tuple[str, ...] = ()
    ) -> int:
        """Start a detached container; its main process's host pid."""
        full = f"{self.tag.split(':')[0].split('/')[-1]}-{name}"
        options = [f"--env={k}={v}" for k, v in (env or {}).items()]
        try:
            podman("run", "-d", "--name", full, *RUN_OPTIONS, *extra, *options, self.tag, *argv)
        except RuntimeError as e:
            # podman inside a container whose root is itself overlayfs (the fresh-machine
            # check runs this suite so) cannot stack its overlay storage: no container can
            # run there at all. Anywhere else a failure is a failure.
            if NESTED_OVERLAY in str(e):
                pytest.skip(f"podman cannot run containers here: {NESTED_OVERLAY}")
            raise
        self.containers.append(full)
        return int(podman("inspect", "-f", "{{.State.Pid}}", full))

    def pod(self, name: str) -> str:
        """Create a pod without an infra container (no image to pull); its id."""
        full = f"{self.tag.split(':')[0].split('/')[-1]}-{name}"
        pod_id = podman("pod", "create", "--infra=false", "--name", full)
        self.pods.append(full)
        return pod_id

    def pod_id(self, name: str) -> str:
        """The full id of the pod created as ``name``."""
        full = f"{self.tag.split(':')[0].split('/')[-1]}-{name}"
        return podman("pod", "inspect", "-f", "{{.Id}}", full)

    def container_id(self, name: str) -> str:
        """The full id of the container started as ``name``."""
        full = f"{self.tag.split(':')[0].split('/')[-1]}-{name}"
        return podman("inspect", "-f", "{{.Id}}", full)


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name.lstrip("/"))
    info.size, info.mode, info.uid, info.gid = len(data), mode, 0, 0
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name.lstrip("/"))
    info.type, info.mode = tarfile.DIRTYPE, mode
    tar.addfile(info)


def _add_link(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name.lstrip("/"))
    info.type, info.linkname = tarfile.SYMTYPE, target
    tar.addfile(info)


def _rootfs(work: Path, shadow_dir: str) -> Path:
    """The image's rootfs as a tar: parents before children, every file root-owned."""
    nodep = _gcc(_NODEP, work / "nodep", ["-O0", "-fno-stack-protector", "-z", "execstack"])
    lib = _gcc(_LIB, work / "lib.so", ["-shared", "-fPIC", "-O2", "-Wl,-z,relro,-z,now"])
    files: dict[str, tuple[bytes, int]] = {}
    for path in {*_libraries(BUSYBOX), *_libraries(str(nodep))}:
        files[os.path.realpath(path)] = (Path(path).read_bytes(), 0o755)
        if os.path.realpath(path) != path:
            files.setdefault(path, (b"", -1))  # a symlink to the real file
    files["/bin/busybox"] = (Path(BUSYBOX).read_bytes(), 0o755)
    files["/opt/bin/nodep"] = (nodep.read_bytes(), 0o755)
    files["/opt/ww/libww.so"] = (lib.read_bytes(), 0o666)  # world-writable, image only
    files[f"{shadow_dir}/libsafe.so"] = (lib.read_bytes(), 0o755)
    files[f"{SCRIPT_DIR}/run.sh"] = (b"/bin/busybox sleep 300\n:\n", 0o666)
    tar_path = work / "rootfs.tar"
    with tarfile.open(tar_path, "w") as tar:
        dirs = sorted({str(p) for f in files for p in Path(f).parents if str(p) != "/"})
        for d in [*dirs, "/tmp"]:
            _add_dir(tar, d, 0o1777 if d == "/tmp" else 0o755)
        for name, (data, mode) in sorted(files.items()):
            if mode < 0:
                _add_link(tar, name, os.path.realpath(name))
            else:
                _add(tar, name, data, mode)
        _add_link(tar, "/opt/scripts", SCRIPT_DIR)  # absolute: resolves inside the image
    return tar_path


@contextlib.contextmanager
def podman_lab(work: Path) -> Iterator[Lab]:
    """The image imported, a host twin of its shadowed library; all removed afterwards."""
    token = uuid.uuid4().hex[:8]
    tag = f"localhost/rba-ct-{token}:1"
    shadow_dir = f"/opt/rba-ct-{token}"
    lab = Lab(tag, work, shadow_dir)
    bridge_before = _has_bridge()
    try:
        podman("import", str(_rootfs(work, shadow_dir)), tag)
        os.makedirs(shadow_dir)
        host_twin = Path(lab.safe_lib)
        host_twin.write_bytes(b"not the container's file")
        host_twin.chmod(0o666)  # unsafe on the host: must not be blamed on the container
        yield lab
    finally:
        for name in lab.containers:
            podman("rm", "-f", "-t", "0", name, check=False)
        for name in lab.pods:
            podman("pod", "rm", "-f", name, check=False)
        podman("rmi", "-f", tag, check=False)
        shutil.rmtree(shadow_dir, ignore_errors=True)
        if _has_bridge() and not bridge_before:
            subprocess.run(["ip", "link", "delete", "cni-podman0"], check=False)


def _has_bridge() -> bool:
    shown = subprocess.run(["ip", "link", "show", "cni-podman0"], capture_output=True, check=False)
    return shown.returncode == 0
