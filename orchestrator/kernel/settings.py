"""The kernel settings a prediction is made from: sysctls and socket options, given on the
command line (``--sysctl``, ``--sockopt``) or taken from a scenario's hosts. Anything not given
is the kernel's default, and says so."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import UsageError

if TYPE_CHECKING:
    from orchestrator.scenario.model import AnyHost

__all__ = [
    "SOCKOPTS",
    "SYSCTLS",
    "KernelSettings",
    "parse_settings",
    "run_addresses",
    "settings_by_host",
    "settings_from_scenario",
    "settings_of_host",
]

# sysctl (without "net.ipv4.") -> setting; the keep-alive times are in seconds, tcp_rto_max_ms
# in milliseconds (`_SYSCTL_UNITS`), the rest counts.
SYSCTLS = {
    "tcp_retries2": "retries2",
    "tcp_keepalive_time": "keepalive_time",
    "tcp_keepalive_intvl": "keepalive_intvl",
    "tcp_keepalive_probes": "keepalive_probes",
    "tcp_syn_retries": "syn_retries",
    "tcp_syn_linear_timeouts": "syn_linear_timeouts",
    "tcp_synack_retries": "synack_retries",
    "tcp_rto_max_ms": "rto_max",  # kernels from 6.15
    "tcp_orphan_retries": "orphan_retries",  # an orphan's tcp_retries2 (0 means 8)
    "tcp_retries1": "retries1",  # when black-hole detection (tcp_mtu_probing) shrinks the MSS
    "tcp_mtu_probing": "mtu_probing",  # 0 off, 1 after a black hole is suspected, 2 always
    "tcp_thin_linear_timeouts": "thin_linear",  # 1: a thin stream's first 6 RTOs do not double
    "tcp_early_retrans": "early_retrans",  # tail-loss probes only with 3 or 4
}
_SYSCTL_UNITS = {"rto_max": 0.001}  # seconds per unit of a bare number, where not 1
# socket option -> (setting, seconds per unit of a bare number: the unit setsockopt takes)
SOCKOPTS = {
    "TCP_KEEPIDLE": ("keepalive_time", 1.0),  # seconds
    "TCP_KEEPINTVL": ("keepalive_intvl", 1.0),  # seconds
    "TCP_KEEPCNT": ("keepalive_probes", 0.0),  # a count
    "TCP_USER_TIMEOUT": ("user_timeout", 0.001),  # milliseconds
    "TCP_SYNCNT": ("syn_retries", 0.0),  # a count: tcp_syn_retries for one socket
    "TCP_RTO_MAX_MS": ("rto_max", 0.001),  # milliseconds; kernels from 6.15
    "TCP_THIN_LINEAR_TIMEOUTS": ("thin_linear", 0.0),  # 0 or 1: tcp_thin_linear_timeouts for one socket
}
# What the kernel accepts (EINVAL otherwise), in the setting's unit.
_RANGES = {
    "rto_max": (1.0, 120.0),
    "syn_retries": (1.0, 127.0),
    "mtu_probing": (0.0, 2.0),
    "thin_linear": (0.0, 1.0),
    "early_retrans": (0.0, 4.0),
}  # tcp_syn_retries, TCP_SYNCNT: 1 to 127
_COUNTS = {
    "retries2",
    "keepalive_probes",
    "syn_retries",
    "syn_linear_timeouts",
    "synack_retries",
    "orphan_retries",
    "retries1",
    "mtu_probing",
    "thin_linear",
    "early_retrans",
}
_NUMBER = re.compile(r"^(\d+(?:\.\d+)?)(ms|s)?$")


@dataclass(frozen=True, slots=True)
class KernelSettings:
    """Linux's defaults unless given; `given` says which were given, and how (for messages)."""

    retries2: int = 15
    keepalive_time: float = 7200.0
    keepalive_intvl: float = 75.0
    keepalive_probes: int = 9
    syn_retries: int = 6
    syn_linear_timeouts: int = 4  # kernels from 6.5; 0 on older ones
    synack_retries: int = 5
    user_timeout: float | None = None  # s; TCP_USER_TIMEOUT, 0 or None: not set
    rto_max: float = 120.0  # s; the RTO's ceiling: tcp_rto_max_ms, TCP_RTO_MAX_MS (kernels from 6.15)
    orphan_retries: int = 0  # tcp_orphan_retries: a closed socket's retries (0 means 8)
    retries1: int = 3
    mtu_probing: int = 0
    thin_linear: int = 0  # tcp_thin_linear_timeouts, TCP_THIN_LINEAR_TIMEOUTS
    early_retrans: int = 3  # tcp_early_retrans: 3 and 4 send tail-loss probes, 0 to 2 do not
    given: tuple[tuple[str, str], ...] = ()  # (setting, how it was given)

    def label(self, name: str) -> str:
        """How a setting reads in a sentence: "tcp_retries2=5" or "tcp_retries2=15 (kernel default)"."""
        for setting, how in reversed(self.given):
            if setting == name:
                return how
        sysctl = next((k for k, v in SYSCTLS.items() if v == name), name)
        value = getattr(self, name) / _SYSCTL_UNITS.get(name, 1.0)
        return f"{sysctl}={value:g} (kernel default)"

    @property
    def tail_loss_probes(self) -> bool:
        """Whether the sender may send a tail-loss probe (`tcp_schedule_loss_probe`)."""
        return self.early_retrans in (3, 4)

    def with_value(self, name: str, value: float, how: str) -> KernelSettings:
        typed = int(value) if name in _COUNTS else float(value)
        return replace(self, **{name: typed}, given=(*self.given, (name, how)))  # type: ignore[arg-type]


def parse_settings(
    sysctls: Sequence[str], sockopts: Sequence[str], base: KernelSettings | None = None
) -> KernelSettings:
    """``net.ipv4.tcp_retries2=5`` (the prefix may be left out) and ``TCP_KEEPIDLE=2`` (a bare
    number in setsockopt's unit: seconds, or milliseconds for TCP_USER_TIMEOUT; "ms" or "s" may
    follow). Every problem is reported at once, as a `UsageError`."""
    settings = base or KernelSettings()
    problems: list[str] = []
    for item in sysctls:
        pair = _split(item, problems)
        if pair is None:
            continue
        key, value = pair
        short = key.removeprefix("net.ipv4.")
        if short not in SYSCTLS:
            problems.append(f"--sysctl {item}: not a setting the kernel model uses ({', '.join(SYSCTLS)})")
            continue
        name = SYSCTLS[short]
        unit = _SYSCTL_UNITS.get(name, 1.0)
        number = _number(item, value, unit, name in _COUNTS, problems)
        if number is not None and _in_range(item, name, number, problems):
            settings = settings.with_value(name, number, f"{short}={number / unit:g}")
    for item in sockopts:
        pair = _split(item, problems)
        if pair is None:
            continue
        key, value = pair
        if key.upper() not in SOCKOPTS:
            problems.append(
                f"--sockopt {item}: not a socket option the kernel model uses ({', '.join(SOCKOPTS)})"
            )
            continue
        name, unit = SOCKOPTS[key.upper()]
        number = _number(item, value, unit, name in _COUNTS, problems)
        if name == "thin_linear" and number == 0 and settings.thin_linear:
            continue  # the kernel ORs the socket's flag with the sysctl: 0 does not turn it off
        if number is not None and _in_range(item, name, number, problems):
            shown = f"{number:g}" if name in _COUNTS else f"{number:g}s"
            settings = settings.with_value(name, number, f"{key.upper()}={shown}")
    if problems:
        raise UsageError("\n".join(problems))
    return settings


def _split(item: str, problems: list[str]) -> tuple[str, str] | None:
    key, sep, value = item.partition("=")
    if not sep or not key.strip() or not value.strip():
        problems.append(f"{item!r}: expected NAME=VALUE")
        return None
    return key.strip(), value.strip()


def _in_range(item: str, name: str, number: float, problems: list[str]) -> bool:
    low, high = _RANGES.get(name, (0.0, float("inf")))
    if low <= number <= high:
        return True
    unit = "" if name in _COUNTS else " s"
    problems.append(f"{item}: the kernel takes {low:g}{unit} to {high:g}{unit} ({number:g}{unit} given)")
    return False


def _number(item: str, value: str, unit: float, count: bool, problems: list[str]) -> float | None:
    m = _NUMBER.match(value)
    if m is None or (count and m.group(2) is not None) or (count and "." in m.group(1)):
        bare = "milliseconds" if unit == 0.001 else "seconds"
        kind = "a whole number" if count else f"a number of {bare} (or with ms or s after it)"
        problems.append(f"{item}: {value!r} is not {kind}")
        return None
    number = float(m.group(1))
    if m.group(2) == "ms":
        return number / 1000
    if m.group(2) == "s" or count:
        return number
    return number * unit


def settings_from_scenario(path: Path, base: KernelSettings | None = None) -> dict[str, KernelSettings]:
    """Each host's settings in a scenario file, by its address (see `settings_of_host`)."""
    # Imported here: the scenario model is only needed with --scenario, and costs start-up time.
    from orchestrator.scenario.loader import load_scenario  # noqa: PLC0415

    scenario = load_scenario(path)
    return {str(host.address): settings_of_host(host, base) for host in scenario.apps().values()}


def settings_by_host(path: Path, base: KernelSettings | None = None) -> dict[str, KernelSettings]:
    """Each host's settings in a scenario file, by host name."""
    from orchestrator.scenario.loader import load_scenario  # noqa: PLC0415

    return {name: settings_of_host(host, base) for name, host in load_scenario(path).apps().items()}


def run_addresses(run_dir: Path) -> dict[str, str]:
    """Host name -> the address it really had, from a run directory's report-input.json (a run
    can be moved to a free subnet); {} when the folder is not a run directory."""
    try:
        data = json.loads((run_dir / "report-input.json").read_text())
        return {str(h["name"]): str(h["address"]) for h in data.get("hosts", [])}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def settings_of_host(
    host: AnyHost, base: KernelSettings | None = None, how: str = "scenario"
) -> KernelSettings:
    """One scenario host's settings: its sysctls, then its app's socket options (the agent's,
    or what a program declares), which override them for its socket, as in the kernel."""
    s = base or KernelSettings()
    for sysctl, number in host.sysctls.items():
        short = sysctl.removeprefix("net.ipv4.")
        if short in SYSCTLS:
            name = SYSCTLS[short]
            s = s.with_value(name, number * _SYSCTL_UNITS.get(name, 1.0), f"{short}={number:g} ({how})")
    opts = host.socket_options
    for opt, value in (
        ("TCP_KEEPIDLE", opts.effective_keepidle),
        ("TCP_KEEPINTVL", opts.effective_keepintvl),
        ("TCP_KEEPCNT", opts.keepcnt),
        ("TCP_USER_TIMEOUT", opts.user_timeout),
        ("TCP_RTO_MAX_MS", opts.rto_max),
    ):
        if value:
            name = SOCKOPTS[opt][0]
            shown = f"{value:g}" if name in _COUNTS else _seconds(value)
            s = s.with_value(name, value, f"{opt}={shown} ({how})")
    return s


def _seconds(value: float) -> str:
    return f"{value * 1000:g}ms" if value < 1 else f"{value:g}s"
