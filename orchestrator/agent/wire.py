"""The built-in agent's wire format, defined once: the JSON config it takes as its one argument,
the events it prints (one JSON object per line), and the text that says a server is ready.

The orchestrator builds a `Config` and dumps it (`to_json`); the agent parses it with
`Config.from_json`, the one validation, which checks each field from the dataclass definitions
(type from the annotation, bounds from the field's metadata). Events are read by the names in
`Event`. Stdlib only: the image build copies this file next to agent.py, which imports it as
`wire`.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import math
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass, replace
from types import NoneType
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

# The agent's exit status; its `exit` event carries the same code.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_CONFIG = 2

MAX_SEND_SIZE = 16 << 20
MAX_INT32 = 2**31 - 1
# Linux limits (include/net/tcp.h): MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL, MAX_TCP_KEEPCNT.
MAX_KEEPIDLE_S = 32767
MAX_KEEPINTVL_S = 32767
MAX_KEEPCNT = 127

Role = Literal["server", "client"]
MODES: dict[str, tuple[str, ...]] = {
    "server": ("echo", "hold", "close-first", "sink"),
    # pool: a connection pool's connection: one request and its reply, then nobody reads or
    # watches it; from send_after on it is reused, written to (every, count) without reading, so
    # a peer gone meanwhile shows on the writes: an RST drawn by the first, EPIPE on the next.
    "client": ("idle", "send", "close", "pool"),
}
POOL = "pool"
# Modes that close on a timer have a default one; close_after_s means nothing to other server modes.
DEFAULT_CLOSE_AFTER_S = {"close": 1.0, "close-first": 0.5}
CLOSE_FIRST = "close-first"

# Compact JSON for the config (a command-line argument) and the event lines (READY_TEXT below).
SEPARATORS = (",", ":")


MAX_CONNECTIONS = 1024  # a pool; more would only exhaust the namespace's ports and the file limit


class ConfigError(ValueError):
    """The JSON config is unusable; the message is shown to the user as one line."""


# ---------------------------------------------------------------------------------------------
# Addresses: the config's `connect` and the events' `local` and `peer`


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_ip(text: str, key: str = "bind") -> IPAddress:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ConfigError(f"{key} must be an IP address, got {text!r}") from None


def parse_endpoint(text: str) -> tuple[IPAddress, int]:
    """Split "a.b.c.d:port" or "[v6]:port"; names are refused because the scenario pins addresses."""
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or text[close + 1 : close + 2] != ":":
            raise ConfigError(f"connect must look like [v6addr]:port, got {text!r}")
        host, port_text = text[1:close], text[close + 2 :]
        ip = parse_ip(host, "connect")
        if ip.version != 6:
            raise ConfigError(f"connect: brackets are for IPv6 addresses, got {text!r}")
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ConfigError(f"connect must look like a.b.c.d:port or [v6addr]:port, got {text!r}")
        ip = parse_ip(host, "connect")
        if ip.version != 4:
            raise ConfigError(f"connect: write IPv6 addresses as [v6addr]:port, got {text!r}")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigError(f"connect port must be 1..65535, got {port_text!r}")
    return ip, int(port_text)


def format_address(address: Any) -> str:
    """Render a sockaddr as "IP:PORT" ("[v6]:PORT" for IPv6, plain IPv4 for v4-mapped v6)."""
    host, port = str(address[0]), int(address[1])
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return f"{host}:{port}"
    if isinstance(ip, ipaddress.IPv6Address):
        # A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d; show them as the IPv4 they are.
        if ip.ipv4_mapped is not None:
            return f"{ip.ipv4_mapped}:{port}"
        return f"[{host}]:{port}"
    return f"{host}:{port}"


# ---------------------------------------------------------------------------------------------
# The config


@dataclass(frozen=True)
class Bounds:
    """What a field's value must satisfy beyond its type."""

    minimum: float | None = None
    maximum: float | None = None
    exclusive: bool = False  # the minimum itself is refused
    check: Callable[[str], object] | None = None  # parses a string, raising ConfigError


def bounded(
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    exclusive: bool = False,
    check: Callable[[str], object] | None = None,
) -> dict[str, Bounds]:
    """A field's metadata, read by `from_json`."""
    return {"bounds": Bounds(minimum, maximum, exclusive, check)}


@dataclass(frozen=True)
class SocketOptions:
    keepalive: bool = False
    keepidle_s: int | None = field(default=None, metadata=bounded(1, MAX_KEEPIDLE_S))
    keepintvl_s: int | None = field(default=None, metadata=bounded(1, MAX_KEEPINTVL_S))
    keepcnt: int | None = field(default=None, metadata=bounded(1, MAX_KEEPCNT))
    user_timeout_ms: int | None = field(default=None, metadata=bounded(0, MAX_INT32))
    linger_s: int | None = field(default=None, metadata=bounded(0, MAX_INT32))
    nodelay: bool = False
    rto_max_ms: int | None = field(default=None, metadata=bounded(1000, 120_000))  # TCP_RTO_MAX_MS


@dataclass(frozen=True)
class Config:
    """What one agent does. A key missing from the JSON, or null, takes the default here."""

    host: str
    role: Role
    mode: str
    # Port 0 lets the kernel pick; the chosen port is reported in `listening` (used by the tests).
    port: int | None = field(default=None, metadata=bounded(0, 65535))
    bind: str = field(default="0.0.0.0", metadata=bounded(check=parse_ip))
    connect: str | None = field(default=None, metadata=bounded(check=parse_endpoint))
    every_ms: float = field(default=200.0, metadata=bounded(0, exclusive=True))
    size: int = field(default=64, metadata=bounded(1, MAX_SEND_SIZE))
    send_after_s: float = field(default=0.0, metadata=bounded(0))
    count: int | None = field(default=None, metadata=bounded(1, MAX_INT32))
    close_after_s: float | None = field(default=None, metadata=bounded(0))
    socket: SocketOptions = field(default_factory=SocketOptions)
    # A client opens this many connections (a pool), one after the other, each run the same way;
    # their events carry `conn`: 1, 2, ... (none with a single connection, as before).
    connections: int = field(default=1, metadata=bounded(1, MAX_CONNECTIONS))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=SEPARATORS)

    @classmethod
    def from_json(cls, text: str) -> Config:
        """The config the agent runs with, defaults filled in; ConfigError says what is wrong."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"not valid JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError("the config must be a JSON object")
        return _check_role(_build(cls, raw, ""))


def _check_role(config: Config) -> Config:
    """The rules between fields, which no single field's type or bounds can say."""
    modes = MODES[config.role]
    if config.mode not in modes:
        raise ConfigError(
            f"mode {config.mode!r} is not valid for role {config.role}; expected one of {', '.join(modes)}"
        )
    if config.role == "server" and config.port is None:
        raise ConfigError("missing required key 'port' (role server)")
    if config.role == "client" and config.connect is None:
        raise ConfigError("missing required key 'connect' (role client)")
    if config.role == "server" and config.connections != 1:
        raise ConfigError("connections applies to clients only")
    if config.close_after_s is None and config.mode in DEFAULT_CLOSE_AFTER_S:
        return replace(config, close_after_s=DEFAULT_CLOSE_AFTER_S[config.mode])
    if config.close_after_s is not None and config.role == "server" and config.mode != CLOSE_FIRST:
        raise ConfigError(f"close_after_s applies to server mode {CLOSE_FIRST} only, not {config.mode}")
    return config


T = TypeVar("T")


def _build(cls: type[T], raw: dict[str, Any], prefix: str) -> T:
    """One dataclass from a JSON object, each field checked against its annotation and bounds."""
    assert is_dataclass(cls)
    known = fields(cls)
    unknown = sorted(set(raw) - {f.name for f in known})
    if unknown:
        raise ConfigError(f"unknown key(s): {', '.join(prefix + k for k in unknown)}")
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in known:
        key = prefix + f.name
        value = raw.get(f.name)
        if value is None:
            if f.default is MISSING and f.default_factory is MISSING:
                raise ConfigError(f"missing required key {key!r}")
            continue  # the dataclass default applies
        values[f.name] = _check_value(key, hints[f.name], value, f.metadata.get("bounds"))
    return cls(**values)


# What a JSON value must be for each annotated type. bool is an int subclass in Python, and
# `true` is never a sensible port or count.
_KINDS: dict[Any, tuple[Callable[[Any], bool], str]] = {
    bool: (lambda v: isinstance(v, bool), "true or false"),
    int: (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    float: (lambda v: isinstance(v, int | float) and not isinstance(v, bool), "a number"),
    str: (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
}


def _check_value(key: str, hint: Any, value: Any, bounds: Bounds | None) -> Any:
    if get_origin(hint) is Literal:
        choices = get_args(hint)
        if value not in choices:
            raise ConfigError(f"{key} must be {' or '.join(map(repr, choices))}, got {value!r}")
        return value
    # `X | None`: the value is not None here (None takes the default), so it must be an X.
    kind = next(t for t in get_args(hint) if t is not NoneType) if get_origin(hint) else hint
    if isinstance(kind, type) and is_dataclass(kind):
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be an object, got {value!r}")
        return _build(kind, value, key + ".")
    accepts, what = _KINDS[kind]  # a KeyError is a field type this parser was not taught
    if not accepts(value):
        raise ConfigError(f"{key} must be {what}, got {value!r}")
    if kind is float:
        # json.loads accepts NaN and Infinity, which would break every deadline computation.
        if not math.isfinite(value):
            raise ConfigError(f"{key} must be finite, got {value!r}")
        value = float(value)
    if bounds is not None:
        _check_bounds(key, value, bounds)
    return value


def _check_bounds(key: str, value: Any, bounds: Bounds) -> None:
    low, high = bounds.minimum, bounds.maximum
    if bounds.check is not None:
        bounds.check(value)
    if high is not None and low is not None and not low <= value <= high:
        raise ConfigError(f"{key} must be between {low} and {high}, got {value}")
    if high is None and low is not None and (value <= low if bounds.exclusive else value < low):
        relation = "greater than" if bounds.exclusive else "at least"
        raise ConfigError(f"{key} must be {relation} {low}, got {value}")


# ---------------------------------------------------------------------------------------------
# The events


class Event(enum.StrEnum):
    """Every event the agent prints, as the `event` key of its JSON line."""

    START = "start"
    LISTENING = "listening"
    ACCEPTED = "accepted"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    SOCKET_OPTIONS = "socket_options"
    SENT = "sent"
    RECEIVED = "received"
    BLOCKED = "blocked"
    UNBLOCKED = "unblocked"
    PEER_FIN = "peer_fin"
    EOF = "eof"
    CLOSING = "closing"
    CLOSED = "closed"
    ERROR = "error"
    EXIT = "exit"


# Every line carries these: wall clock (comparable with the pcaps), monotonic clock (for intervals).
COMMON_FIELDS = frozenset({"t", "mono", "host", "event"})


@dataclass(frozen=True)
class EventFields:
    """The fields an event carries besides COMMON_FIELDS."""

    required: frozenset[str]
    optional: frozenset[str] = frozenset()


def _carries(required: str, optional: str = "") -> EventFields:
    return EventFields(frozenset(required.split()), frozenset(optional.split()))


# A server tags each connection's events with its `peer`; a client has one connection, untagged.
_TAG = "peer conn"
_OPTIONS = " ".join(f.name for f in fields(SocketOptions))  # socket_options reads each one back

EVENT_FIELDS: dict[Event, EventFields] = {
    Event.START: _carries("pid config"),
    Event.LISTENING: _carries("port bind"),
    Event.ACCEPTED: _carries("local peer"),
    Event.CONNECTING: _carries("peer", "conn"),
    Event.CONNECTED: _carries("local peer", "conn"),
    Event.SOCKET_OPTIONS: _carries(f"socket {_OPTIONS}", _TAG),  # socket: listener or connection
    Event.SENT: _carries("bytes total", _TAG),
    Event.RECEIVED: _carries("bytes total", _TAG),
    Event.BLOCKED: _carries("unsent", _TAG),
    Event.UNBLOCKED: _carries("", _TAG),
    Event.PEER_FIN: _carries("unread", _TAG),
    Event.EOF: _carries("", _TAG),
    Event.CLOSING: _carries("how", f"{_TAG} unsent"),
    Event.CLOSED: _carries("", f"{_TAG} unsent"),
    Event.ERROR: _carries("op errno code message", f"{_TAG} socket"),
    Event.EXIT: _carries("code", "signal"),
}

# What each role can emit: a server never connects; a client never listens, and never sees
# `peer_fin` (only `hold`, a server mode, does not read, so only it learns of a FIN that way).
EVENTS_BY_ROLE: dict[str, tuple[Event, ...]] = {
    "server": tuple(e for e in Event if e not in (Event.CONNECTING, Event.CONNECTED)),
    "client": tuple(e for e in Event if e not in (Event.LISTENING, Event.ACCEPTED, Event.PEER_FIN)),
}


def event_line(record: dict[str, Any]) -> str:
    """One event as the agent prints it (without the newline)."""
    return json.dumps(record, separators=SEPARATORS)


# A server is ready once it prints this event; READY_TEXT is how it appears in the agent's output.
READY_EVENT = Event.LISTENING
READY_TEXT = event_line({"event": READY_EVENT.value})[1:-1]
