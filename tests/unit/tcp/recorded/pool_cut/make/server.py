"""In namespace b: echo what comes, except writes starting with "d"; close on EOF."""

import json
import socket
import threading
import time


def serve(c: socket.socket) -> None:
    while data := c.recv(4096):
        if data[:1] != b"d":
            c.sendall(data)
    c.close()


def main() -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", 7000))
    listener.listen(64)
    print(json.dumps({"t": time.time(), "event": "listening"}), flush=True)
    while True:
        c, _ = listener.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


if __name__ == "__main__":
    main()
