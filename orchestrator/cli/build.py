from __future__ import annotations

from rich.console import Console

from orchestrator.lab.engine import connect_engine
from orchestrator.lab.images import ensure_images


def build() -> None:
    """Build the images if they are missing (offline from Debian packages, or from a registry)."""
    console = Console(highlight=False)
    images = ensure_images(connect_engine(), console.print)
    console.print(f"images ready: {images.base}, {images.agent}")
