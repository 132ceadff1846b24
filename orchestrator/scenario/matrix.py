"""A sweep's matrix as a scenario file writes it: each key names one value of the scenario
(`hosts.client.sysctls.net.ipv4.tcp_retries2`), each with the values to try. Only the shape is
checked here; `sweep.py` resolves the keys against the model and checks every value."""

from __future__ import annotations

# A value as YAML gives it; the leaf it replaces decides whether it fits ("2s" for a duration).
SweepValue = bool | int | float | str | None
Matrix = dict[str, list[SweepValue]]
