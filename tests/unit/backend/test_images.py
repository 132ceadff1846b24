"""The image recipes are found from wherever the backend module lives (a checkout or a wheel)."""

from __future__ import annotations

from orchestrator.backend.docker.images import recipes_dir, wanted_images


def test_the_recipes_are_found_in_a_checkout() -> None:
    recipes = recipes_dir()
    assert (recipes / "agent" / "agent.py").is_file()
    assert (recipes / "base" / "packages.txt").is_file()


def test_image_tags_carry_the_recipes_digest() -> None:
    images = wanted_images()
    assert images.base.startswith("tcpscen/base:bookworm-")
    assert images.agent.startswith("tcpscen/agent:")
