//go:build linux

package main

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// TestCoresRelayBothWays: each core relays a client's bytes to its own
// upstream connection and the upstream's answer back, whole, also when
// the answer is larger than one read (the epoll core's pending path).
func TestCoresRelayBothWays(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	for _, core := range []string{"goroutine", "goroutine-raw", "epoll", "epoll-raw"} {
		t.Run(core, func(t *testing.T) {
			addr := freeAddr(t)
			switch core {
			case "epoll", "epoll-raw":
				up, err := sockaddr(echo.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				l, err := newLoop(addr, up)
				if err != nil {
					t.Fatal(err)
				}
				l.raw = core == "epoll-raw"
				go func() { _ = l.run() }()
			default:
				go func() { _ = serveGoroutines(addr, echo.Addr().String(), core == "goroutine-raw") }()
			}
			var c net.Conn
			deadline := time.Now().Add(5 * time.Second)
			for c == nil {
				if c, err = net.Dial("tcp", addr); err != nil && time.Now().After(deadline) {
					t.Fatal(err)
				}
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			msg := bytes.Repeat([]byte("pgone relay "), 200_000) // 2.4 MB: many reads, partial writes
			go func() { _, _ = c.Write(msg) }()
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatalf("read back: %v", err)
			}
			if !bytes.Equal(got, msg) {
				t.Fatal("the relayed bytes differ from what was sent")
			}
		})
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
