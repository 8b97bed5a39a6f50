package pool

import (
	"bufio"
	"testing"

	"github.com/pgone/pgone/internal/rawconn/rawconntest"
)

// TestAliveChecksTheSocketWithoutAllocating: Alive tells an open, quiet
// connection from one with bytes waiting or closed by its peer, and costs
// no allocation per check (it runs on every acquire of an idle
// connection), on a socket wrapped by rawconn as dial wraps it.
func TestAliveChecksTheSocketWithoutAllocating(t *testing.T) {
	nc, peer := rawconntest.Pair(t) // wrapped as dial wraps a server socket
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
	waitFor(t, "the waiting byte to be seen", func() bool { return !c.Alive() })
	if _, err := c.r.ReadByte(); err != nil { // the byte read: quiet again
		t.Fatal(err)
	}
	if !c.Alive() {
		t.Fatal("a connection whose waiting byte was read is not alive")
	}
	peer.Close()
	waitFor(t, "the closed peer to be seen", func() bool { return !c.Alive() })
}
