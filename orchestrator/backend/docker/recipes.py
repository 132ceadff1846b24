"""The images users' programs run in, made without a registry where they can be: tcpscen's base
with more Debian packages (the same mmdebstrap path as the base), or a user's Dockerfile built
with `--build-arg BASE=<that image>`. Tags carry a digest of the recipe, so a build is made
once and reused; any other image is used as it is, pulled if missing (a registry is needed then).
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors

from orchestrator.backend.docker import labels
from orchestrator.backend.docker.engine import ENGINE_ERRORS, engine_error
from orchestrator.backend.docker.images import (
    AGENT_REPO,
    BASE_REPO,
    SUITE,
    Images,
    _exists,
    _packages,
    image_source,
    recipes_dir,
)
from orchestrator.errors import EngineError

PACKAGES_REPO = "tcpscen/packages"
BUILD_REPO = "tcpscen/build"


def tcpscen_image(name: str, images: Images) -> str | None:
    """tcpscen/base and tcpscen/agent by their short names, as the tags this version built."""
    if name in (BASE_REPO, f"{BASE_REPO}:latest"):
        return images.base
    if name in (AGENT_REPO, f"{AGENT_REPO}:latest"):
        return images.agent
    return None


def packages_image(
    client: docker.DockerClient, images: Images, extra: list[str], say: Callable[[str], None]
) -> str:
    """tcpscen's base plus `extra` Debian packages, in one mmdebstrap (or, with a registry and no
    mmdebstrap, a Dockerfile FROM the base that installs them)."""
    if not extra:
        return images.base
    wanted = sorted(set(extra))
    base_list = _packages(recipes_dir() / "base" / "packages.txt")
    digest = hashlib.sha256("\n".join([SUITE, *base_list, "--", *wanted]).encode()).hexdigest()[:12]
    tag = f"{PACKAGES_REPO}:{SUITE}-{digest}"
    if _exists(client, tag):
        return tag
    source = image_source()
    say(f"building {tag} with {', '.join(wanted)} ({source})")
    if source == "registry":
        _build_dockerfile(
            client,
            tag,
            "ARG BASE\nFROM ${BASE}\nRUN apt-get update && DEBIAN_FRONTEND=noninteractive "
            f"apt-get install -y --no-install-recommends {' '.join(wanted)} && rm -rf /var/lib/apt/lists/*\n",
            images.base,
        )
        return tag
    with tempfile.TemporaryDirectory(prefix="tcpscen-packages-") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        cmd = [
            "mmdebstrap",
            "--variant=apt",
            f"--include={','.join([*base_list, *wanted])}",
            SUITE,
            str(tarball),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-5:])
            raise EngineError(f"mmdebstrap with {', '.join(wanted)} failed (exit {done.returncode}):\n{tail}")
        repo, _, version = tag.partition(":")
        try:
            client.api.import_image_from_file(str(tarball), repository=repo, tag=version)
        except ENGINE_ERRORS as exc:
            raise engine_error(exc, f"importing {tag}") from None
    # The base image's one change after mmdebstrap (images/agent/Dockerfile) is tcpdump's file
    # capability; a program image does not capture, so it needs none.
    return tag


def dockerfile_image(
    client: docker.DockerClient,
    context: Path,
    dockerfile: str,
    args: dict[str, str],
    base: str,
    say: Callable[[str], None],
) -> str:
    """A user's Dockerfile, built with BASE set to tcpscen's image (with its packages); tagged by
    a digest of the context's files, the Dockerfile's name, the build args and the base."""
    if not context.is_dir():
        raise EngineError(f"build context {context} is not a folder")
    h = hashlib.sha256(f"{dockerfile}\0{sorted(args.items())}\0{base}".encode())
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        h.update(path.relative_to(context).as_posix().encode())
        h.update(path.read_bytes())
    tag = f"{BUILD_REPO}:{context.name.lower()[:40] or 'context'}-{h.hexdigest()[:12]}"
    if _exists(client, tag):
        return tag
    say(f"building {tag} from {context / dockerfile}")
    try:
        client.images.build(
            path=str(context),
            dockerfile=dockerfile,
            tag=tag,
            buildargs={"BASE": base, **args},
            pull=False,
            rm=True,
            forcerm=True,  # a failed step's container too: the legacy builder leaves it otherwise
            labels={labels.IMAGE: "program"},
        )
    except docker.errors.BuildError as exc:
        lines = [str(item.get("stream", item.get("error", ""))).strip() for item in exc.build_log]
        tail = "\n".join(line for line in lines if line)[-1500:]
        raise EngineError(f"building {context / dockerfile} failed: {exc.msg}\n{tail}") from None
    except ENGINE_ERRORS as exc:
        raise engine_error(exc, f"building {context / dockerfile}") from None
    return tag


def pulled_image(client: docker.DockerClient, name: str, say: Callable[[str], None]) -> str:
    """Any other image: used if present, else pulled (which needs a registry)."""
    if _exists(client, name):
        return name
    say(f"pulling {name}")
    try:
        client.images.pull(name)
    except ENGINE_ERRORS as exc:
        raise EngineError(
            f"image {name} is not here and could not be pulled ({str(exc).splitlines()[0][:200]}): without a "
            "registry, give `packages:` (Debian packages on tcpscen's base) or a `build:` FROM ${BASE}"
        ) from None
    return name


def _build_dockerfile(client: docker.DockerClient, tag: str, text: str, base: str) -> None:
    with tempfile.TemporaryDirectory(prefix="tcpscen-build-") as tmp:
        (Path(tmp) / "Dockerfile").write_text(text)
        try:
            client.images.build(
                path=tmp,
                tag=tag,
                buildargs={"BASE": base},
                pull=False,
                rm=True,
                forcerm=True,  # a failed step's container too: the legacy builder leaves it otherwise
                labels={labels.IMAGE: "program"},
            )
        except ENGINE_ERRORS as exc:
            raise engine_error(exc, f"building {tag} (is a registry reachable?)") from None
