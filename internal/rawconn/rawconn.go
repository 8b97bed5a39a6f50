package rawconn

import (
	"net"
	"sync"
	"syscall"
)

// Conn is a net.Conn whose Read and Write are raw system calls.
type Conn struct {
	net.Conn
	raw syscall.RawConn

	// The callbacks given to raw are bound once (a closure per call would
	// be an allocation per read and write); their state is guarded by the
	// mutexes, uncontended in pgone: one reader and one writer at a time.
	rmu     sync.Mutex
	rd      readState
	readFn  func(fd uintptr) bool
	wmu     sync.Mutex
	wr      writeState
	writeFn func(fd uintptr) bool
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
	c := &Conn{Conn: nc, raw: raw}
	c.readFn = c.rd.step
	c.writeFn = c.wr.step
	return c
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

func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
