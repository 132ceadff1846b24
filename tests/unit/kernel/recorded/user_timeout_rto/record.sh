#!/bin/bash
# record.sh UT_MS RETRIES2 NAME: a client with TCP_USER_TIMEOUT=UT_MS sending every 200 ms (select() between sends); the path cut 1 s in (nft drop in the server's namespace); NAME.pcap (the client's capture) and NAME.app.json (its error and when).
set -e
ut=$1; r2=$2; out=$3
a=utc$$; b=uts$$
ip netns add $a; ip netns add $b
trap "ip netns del $a; ip netns del $b" EXIT
ip link add va$$ netns $a type veth peer name vb$$ netns $b
ip -n $a addr add 10.250.0.1/24 dev va$$; ip -n $b addr add 10.250.0.2/24 dev vb$$
ip -n $a link set va$$ up; ip -n $b link set vb$$ up; ip -n $a link set lo up; ip -n $b link set lo up
ip netns exec $a sysctl -qw net.ipv4.tcp_retries2=$r2
ip netns exec $b python3 -c "
import socket,time
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR,1); s.bind(('10.250.0.2',7000)); s.listen()
c,_=s.accept()
while True:
    d=c.recv(100)
    if not d: break
" & srv=$!
sleep 0.3
ip netns exec $a tcpdump -i va$$ -w $out.pcap -s 96 -U 2>/dev/null & td=$!
sleep 0.5
ip netns exec $a python3 -c "
import socket,time,json
s=socket.socket(); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, $ut)
s.connect(('10.250.0.2',7000))
t0=time.time()
cut=False
def told(e):  # the error and when; one more connect 1 s later, so the capture goes on past it
    print(json.dumps({'error': e.strerror, 'errno': e.errno, 't': time.time()}))
    time.sleep(1.0)
    s2=socket.socket(); s2.settimeout(1.5)
    try: s2.connect(('10.250.0.2',7000))
    except OSError: pass
import select
while True:
    try:
        s.send(b'x'*64)
        r,_,_ = select.select([s],[],[],0.2)  # an abort wakes it at once (the socket's error)
        if r:
            s.recv(10)
    except OSError as e:
        told(e)
        break
    if not cut and time.time()-t0 > 1.0:
        import subprocess
        subprocess.run(['ip','netns','exec','$b','nft','add table inet t; add chain inet t c { type filter hook input priority 0; policy drop; }'], check=True)
        cut=True
" > $out.app.json
sleep 1
kill $td; wait $td 2>/dev/null || true
kill $srv 2>/dev/null || true
cat $out.app.json
