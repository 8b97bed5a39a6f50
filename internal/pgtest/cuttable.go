package pgtest

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Cuttable forwards TCP connections to a server (a Redis); Cut drops
// every connection and refuses new ones (closing them at once) until
// Mend: one client cut off from a server that the others still reach.
type Cuttable struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]struct{}
}

// NewCuttable forwards a free 127.0.0.1 port to target until the test
// ends.
func NewCuttable(t testing.TB, target string) *Cuttable {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cuttable{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go c.serve()
	t.Cleanup(func() { _ = ln.Close(); c.Cut() })
	return c
}

// Addr is the forwarding address, host:port.
func (c *Cuttable) Addr() string { return c.ln.Addr().String() }

func (c *Cuttable) serve() {
	for {
		in, err := c.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", c.target) // not under mu: Cut must not wait for a dial
		if err != nil {
			_ = in.Close()
			continue
		}
		c.mu.Lock()
		if c.cut { // cut while dialing (or before): this pair never relays
			c.mu.Unlock()
			_ = in.Close()
			_ = out.Close()
			continue
		}
		c.conns[in], c.conns[out] = struct{}{}, struct{}{}
		c.mu.Unlock()
		go func() { _, _ = io.Copy(out, in); _ = out.Close() }()
		go func() { _, _ = io.Copy(in, out); _ = in.Close() }()
	}
}

// Cut drops every forwarded connection and refuses new ones.
func (c *Cuttable) Cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = true
	for conn := range c.conns {
		_ = conn.Close()
	}
	clear(c.conns)
}

// Mend forwards new connections again.
func (c *Cuttable) Mend() {
	c.mu.Lock()
	c.cut = false
	c.mu.Unlock()
}
