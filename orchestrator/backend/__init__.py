"""Backends: where the hosts of a run live (today one, Docker: `backend.docker`)."""
