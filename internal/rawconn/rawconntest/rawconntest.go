package rawconntest

import (
	"net"
	"testing"

	"github.com/pgone/pgone/internal/rawconn"
)

// Pair returns the rawconn-wrapped client end and the plain server end of
// a loopback TCP connection, both closed when the test ends.
func Pair(t testing.TB) (wrapped, peer net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer = <-accepted
	if peer == nil {
		c.Close()
		t.Fatal("accept failed")
	}
	wrapped = rawconn.Wrap(c)
	t.Cleanup(func() { wrapped.Close(); peer.Close() })
	return wrapped, peer
}
