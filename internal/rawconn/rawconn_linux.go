//go:build linux

package rawconn

import (
	"io"
	"os"
	"syscall"
	"unsafe"
)

const supported = true

// readState is one read in progress: into p, or into what lender lends.
type readState struct {
	p      []byte
	lender Lender
	n      int
	errno  syscall.Errno
}

// step is the netpoller's callback: false means "wait for readability".
func (s *readState) step(fd uintptr) bool {
	p := s.p
	if s.lender != nil {
		p = s.lender.Lend()
	}
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			if s.lender != nil {
				s.lender.Reclaim()
			}
			return false
		}
		if e != 0 {
			s.errno = e // r is -1 then: no count to report
			return true
		}
		s.n = int(r)
		return true
	}
}

// Read reads once from the socket, waiting in the netpoller while nothing
// is there (honouring the read deadline).
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return c.read(readState{p: p})
}

// ReadLent reads once into a buffer lent by l, borrowed only while there
// is data to read: while the read waits in the netpoller, the buffer is
// back with its lender. Thousands of idle clients then hold no read buffer.
func (c *Conn) ReadLent(l Lender) (int, error) { return c.read(readState{lender: l}) }

func (c *Conn) read(s readState) (int, error) {
	c.rmu.Lock()
	c.rd = s
	err := c.raw.Read(c.readFn)
	n, errno := c.rd.n, c.rd.errno
	c.rd = readState{}
	c.rmu.Unlock()
	if err == nil && errno == 0 && n == 0 {
		return 0, io.EOF
	}
	return c.result("read", n, err, errno)
}

// result is a raw read's or write's outcome as net.Conn reports it.
func (c *Conn) result(op string, n int, err error, errno syscall.Errno) (int, error) {
	switch {
	case err != nil:
		return n, err // deadline, closed: already a *net.OpError
	case errno != 0:
		return n, c.opError(op, os.NewSyscallError(op, errno))
	}
	return n, nil
}

// writeState is one write in progress: p[n:] is left to write.
type writeState struct {
	p     []byte
	n     int
	errno syscall.Errno
}

// step writes what it can; false means "wait for writability".
func (s *writeState) step(fd uintptr) bool {
	for s.n < len(s.p) {
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&s.p[s.n])), uintptr(len(s.p)-s.n))
		switch e {
		case 0:
			s.n += int(r)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false // buffer full: wait for writability
		default:
			s.errno = e
			return true
		}
	}
	return true
}

// Write writes all of p, waiting in the netpoller while the socket's send
// buffer is full (honouring the write deadline).
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	c.wr = writeState{p: p}
	err := c.raw.Write(c.writeFn)
	n, errno := c.wr.n, c.wr.errno
	c.wr = writeState{}
	c.wmu.Unlock()
	return c.result("write", n, err, errno)
}
