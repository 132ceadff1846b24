from __future__ import annotations

from rich.console import Console


def build() -> None:
    """Build the images if they are missing (offline from Debian packages, or from a registry)."""
    from orchestrator.backend.docker.engine import connect_engine  # noqa: PLC0415 - keeps other commands' start-up light
    from orchestrator.backend.docker.images import ensure_images  # noqa: PLC0415

    console = Console(highlight=False)
    images = ensure_images(connect_engine(), console.print)
    console.print(f"images ready: {images.base}, {images.agent}")
