package pool

import (
	"bufio"
	"net"
	"testing"
	"time"
)

// TestAliveChecksTheSocketWithoutAllocating: Alive tells an open, quiet
// connection from one with bytes waiting or closed by its peer, and costs
// no allocation per check (it runs on every acquire of an idle connection).
func TestAliveChecksTheSocketWithoutAllocating(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	peer, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	c := &Conn{net: nc, r: bufio.NewReader(nc)}
	if !c.Alive() {
		t.Fatal("a quiet open connection is not alive")
	}
	if n := testing.AllocsPerRun(100, func() { c.Alive() }); n != 0 {
		t.Errorf("Alive allocates %.1f times per check, want 0", n)
	}
	if _, err := peer.Write([]byte{'E'}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the waiting byte to be seen", func() bool { return !c.Alive() })
	if _, err := c.r.ReadByte(); err != nil { // the byte read: quiet again
		t.Fatal(err)
	}
	if !c.Alive() {
		t.Fatal("a connection whose waiting byte was read is not alive")
	}
	peer.Close()
	waitUntil(t, "the closed peer to be seen", func() bool { return !c.Alive() })
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
