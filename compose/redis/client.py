"""A redis-py client: connects, then INCRs a counter every 500 ms until a command fails, and
says how long the failing command took. SOCKET_TIMEOUT (seconds) sets redis-py's
socket_timeout; unset, the library's default (None: wait as long as the kernel does)."""

import os
import sys
import time

import redis

timeout = float(os.environ["SOCKET_TIMEOUT"]) if os.environ.get("SOCKET_TIMEOUT") else None
client = redis.Redis(host=os.environ.get("REDIS_HOST", "redis"), port=6379, socket_timeout=timeout)
print(f"redis-py {redis.__version__}, socket_timeout={timeout}", flush=True)
client.set("counter", 0)
print("connected", flush=True)
while True:
    started = time.monotonic()
    try:
        value = client.incr("counter")
    except redis.RedisError as exc:
        took = time.monotonic() - started
        print(f"INCR failed after {took:.3f}s: {type(exc).__name__}: {exc}", flush=True)
        sys.exit(1)
    print(f"counter {value}", flush=True)
    time.sleep(0.5)
