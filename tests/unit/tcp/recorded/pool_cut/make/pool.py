"""In namespace a: the client side of the recording (see ../README.md). Prints JSON events;
after `cut_now` it waits for a line on stdin (the cut is in place), then goes on."""

import json
import socket
import sys
import time

SERVER = "10.199.2.1"


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"t": time.time(), "event": event, **fields}), flush=True)


def connect(port: int = 7000, keepalive: bool = False) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if keepalive:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
    s.connect((SERVER, port))
    return s


def main() -> None:
    for i in range(4):  # short request/reply connections, closed by the client
        s = connect()
        s.sendall(b"x" * 100)
        s.recv(100)
        s.close()
        emit("short", i=i)
    try:
        connect(7001)  # nothing listens there
    except OSError as e:
        emit("refused", errno=e.errno)
    pool = [connect(keepalive=True) for _ in range(10)]
    for s in pool:
        s.sendall(b"q" * 50)
        s.recv(50)
    idle = [connect() for _ in range(3)]
    writers = [connect() for _ in range(3)]
    emit("pool", idle=len(idle))
    time.sleep(0.5)
    emit("cut_now")
    sys.stdin.readline()
    for s in writers:
        s.sendall(b"d" * 100)  # the server does not echo "d"
    emit("sent")
    late = []
    for _ in range(2):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((SERVER, 7000))
        late.append(s)
    errors: set[socket.socket] = set()
    deadline = time.time() + 9
    while time.time() < deadline:
        for s in pool + writers + late:
            if s not in errors and (e := s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)):
                errors.add(s)
                emit("error", errno=e, port=s.getsockname()[1])
        time.sleep(0.05)
    emit("done", errors=len(errors))


if __name__ == "__main__":
    main()
