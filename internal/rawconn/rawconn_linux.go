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
		s.n, s.errno = int(r), e
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
	switch {
	case err != nil:
		return 0, err // deadline, closed: already a *net.OpError
	case errno != 0:
		return 0, c.opError("read", os.NewSyscallError("read", errno))
	case n == 0:
		return 0, io.EOF
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
	switch {
	case err != nil:
		return n, err
	case errno != 0:
		return n, c.opError("write", os.NewSyscallError("write", errno))
	}
	return n, nil
}
