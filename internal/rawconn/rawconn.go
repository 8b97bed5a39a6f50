package rawconn

import (
	"net"
	"syscall"
)

// Conn is a net.Conn whose Read and Write are raw system calls.
type Conn struct {
	net.Conn
	raw syscall.RawConn
}

// Wrap returns nc with raw reads and writes, or nc itself when it has no
// file descriptor to use (a net.Pipe, a TLS conn) or is already wrapped.
func Wrap(nc net.Conn) net.Conn {
	if !supported {
		return nc
	}
	if _, ok := nc.(*Conn); ok {
		return nc
	}
	sc, ok := nc.(interface {
		SyscallConn() (syscall.RawConn, error)
	})
	if !ok {
		return nc
	}
	switch nc.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		return nc
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nc
	}
	return &Conn{Conn: nc, raw: raw}
}

// Lender lends a read buffer for one ReadLent.
type Lender interface {
	// Lend returns the buffer to read into (non-empty).
	Lend() []byte
	// Reclaim takes back the buffer Lend gave: nothing was there to read,
	// and the read waits without a buffer.
	Reclaim()
}

// SyscallConn gives the wrapped socket's RawConn (for peeks, as pool.Conn.Alive does).
func (c *Conn) SyscallConn() (syscall.RawConn, error) { return c.raw, nil }

// NetConn returns the wrapped conn.
func (c *Conn) NetConn() net.Conn { return c.Conn }

func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
