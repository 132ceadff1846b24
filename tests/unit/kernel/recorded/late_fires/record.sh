#!/bin/bash
# one-way cut through a router: client->server dropped after 2 s; captures at both ends
# usage (as root, in a scratch directory): R2=4 ./record.sh  -> client.pcap, server.pcap, client.out
set -e
P=ldc  # netns name prefix
cleanup() { for n in c r s; do ip netns del $P-$n 2>/dev/null || true; done; }
cleanup
for n in c r s; do ip netns add $P-$n; ip -n $P-$n link set lo up; done
ip link add $P-c0 netns $P-c type veth peer name $P-r0 netns $P-r
ip link add $P-s0 netns $P-s type veth peer name $P-r1 netns $P-r
ip -n $P-c addr add 10.61.1.2/24 dev $P-c0; ip -n $P-c link set $P-c0 up
ip -n $P-r addr add 10.61.1.1/24 dev $P-r0; ip -n $P-r link set $P-r0 up
ip -n $P-r addr add 10.61.2.1/24 dev $P-r1; ip -n $P-r link set $P-r1 up
ip -n $P-s addr add 10.61.2.2/24 dev $P-s0; ip -n $P-s link set $P-s0 up
ip -n $P-c route add default via 10.61.1.1; ip -n $P-s route add default via 10.61.2.1
ip netns exec $P-r sysctl -qw net.ipv4.ip_forward=1
ip netns exec $P-c sysctl -qw net.ipv4.tcp_retries2=${R2:-4}
ip netns exec $P-s python3 -c "
import socket
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR,1); s.bind(('10.61.2.2',7000)); s.listen()
c,_=s.accept()
while True:
    d=c.recv(4096)
    if not d: break
    c.sendall(d)
" & SRV=$!
ip netns exec $P-c tcpdump -q -i $P-c0 -s 128 -U -w client.pcap 2>/dev/null & TC=$!
ip netns exec $P-s tcpdump -q -i $P-s0 -s 128 -U -w server.pcap 2>/dev/null & TS=$!
sleep 1
ip netns exec $P-c python3 -c "
import socket,time,threading
c=socket.create_connection(('10.61.2.2',7000))
def rd():
    try:
        while c.recv(4096): pass
    except OSError as e:
        print('recv error', e, repr(time.time()), flush=True)
threading.Thread(target=rd, daemon=True).start()
try:
    while True:
        c.sendall(b'x'*100)
        time.sleep(0.3)
except OSError as e:
    print('client error', e, repr(time.time()))
" > client.out 2>&1 & CL=$!
sleep 2
ip netns exec $P-r nft add table ip f
ip netns exec $P-r nft add chain ip f forward '{ type filter hook forward priority 0; }'
ip netns exec $P-r nft add rule ip f forward ip saddr 10.61.1.2 drop
date +%s.%N > cut_at
wait $CL || true
sleep 0.5
kill $TC $TS $SRV 2>/dev/null || true
wait 2>/dev/null || true
cleanup
cat client.out
