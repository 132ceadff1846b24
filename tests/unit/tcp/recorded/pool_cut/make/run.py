"""Record the pool_cut captures: `PYTHONPATH=. python3 tests/unit/tcp/recorded/pool_cut/make/run.py
OUT` from the repository's root, as root (see ../README.md)."""

import subprocess
import sys
from pathlib import Path

from tests.helpers.netns import Topology

HERE = Path(__file__).resolve().parent


def main(out: Path) -> None:
    with Topology(out) as topo:
        topo.sysctl("a", **{"net.ipv4.tcp_retries2": 3, "net.ipv4.tcp_syn_retries": 1})
        topo.capture("a", snaplen=96)
        topo.capture("b", snaplen=96)
        server = topo.command("b", "server", ["python3", str(HERE / "server.py")])
        server.wait_for("listening", 5)
        argv = ["ip", "netns", "exec", topo.ns["a"], "python3", str(HERE / "pool.py")]
        pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE}
        with subprocess.Popen(argv, **pipes, text=True, bufsize=1) as client:
            assert client.stdin is not None and client.stdout is not None
            for line in client.stdout:
                print(line, end="")
                if '"cut_now"' in line:
                    topo.capture("a", name="late_a", snaplen=96)
                    topo.cut()
                    client.stdin.write("go\n")
                    client.stdin.flush()
                if '"done"' in line:
                    break
        topo.result("pool_cut", {"summary": "a pool of connections under a cut"})


if __name__ == "__main__":
    main(Path(sys.argv[1]))
