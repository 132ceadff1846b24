#!/usr/bin/env bash
# Everything the machine needs before tcpscen can run: a Docker engine, and (where we can
# install Debian packages) mmdebstrap for the offline image build and tshark for the tests'
# Wireshark comparisons. On a laptop with Docker and no root, it only checks.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

bash "$here/ensure-engine.sh"

want=()
command -v mmdebstrap >/dev/null 2>&1 || want+=(mmdebstrap)
command -v tshark >/dev/null 2>&1 || want+=(tshark)
command -v tcpdump >/dev/null 2>&1 || want+=(tcpdump)  # the real-kernel tests (tests/realkernel)
command -v nft >/dev/null 2>&1 || want+=(nftables)
command -v strace >/dev/null 2>&1 || want+=(strace)  # the traced-program wrapper's unit test
command -v chromium >/dev/null 2>&1 || want+=(chromium)  # the report's browser test
if [ ${#want[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup-host: installing ${want[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || true
    apt-get install -y -qq "${want[@]}" >/dev/null
  else
    echo "setup-host: not installed: ${want[*]} (images then come from a registry; tshark comparisons are skipped)" >&2
  fi
fi
