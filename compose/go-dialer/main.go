// dialer: a real Go client. It dials with net.Dialer{KeepAlive: period}, so Go's own
// SetKeepAlivePeriod runs (idle = interval = period; the probe count stays the system's),
// sends one line, reads its echo, then waits for more, idle, until the connection dies.
//
//	dialer ADDR PERIOD     PERIOD as Go parses it (2s); 0 is Go's default (15s); -1s turns keepalive off
package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: dialer ADDR PERIOD")
		os.Exit(2)
	}
	period, err := time.ParseDuration(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad period:", err)
		os.Exit(2)
	}
	dialer := net.Dialer{KeepAlive: period}
	conn, err := dialer.Dial("tcp", os.Args[1])
	if err != nil {
		fmt.Println("dial failed:", err)
		os.Exit(1)
	}
	fmt.Println("connected", conn.LocalAddr(), "->", conn.RemoteAddr(), "keepalive period", period)
	if _, err := conn.Write([]byte("hello from go\n")); err != nil {
		fmt.Println("write failed:", err)
		os.Exit(1)
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		fmt.Println("read failed:", err)
		os.Exit(1)
	}
	fmt.Printf("echo %q\n", buf[:n])
	idle := time.Now()
	_, err = conn.Read(buf) // idle: only keepalive probes can notice a dead peer now
	fmt.Printf("read after %.3fs idle: %v\n", time.Since(idle).Seconds(), err)
	if errors.Is(err, syscall.ETIMEDOUT) {
		os.Exit(3) // what a caller would branch on: the peer is gone
	}
	os.Exit(1)
}
