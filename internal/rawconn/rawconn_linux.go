//go:build linux

package rawconn

import (
	"io"
	"os"
	"syscall"
	"unsafe"
)

const supported = true

// Read reads once from the socket, waiting in the netpoller while nothing
// is there (honouring the read deadline).
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return c.read(func() []byte { return p }, nil)
}

// ReadLent reads once into a buffer lent by l, borrowed only while there
// is data to read: while the read waits in the netpoller, the buffer is
// back with its lender. Thousands of idle clients then hold no read buffer.
func (c *Conn) ReadLent(l Lender) (int, error) { return c.read(l.Lend, l.Reclaim) }

// read reads once into buffer(), calling reclaim (if set) before each wait.
func (c *Conn) read(buffer func() []byte, reclaim func()) (int, error) {
	var n int
	var errno syscall.Errno
	err := c.raw.Read(func(fd uintptr) bool {
		p := buffer()
		for {
			r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				if reclaim != nil {
					reclaim()
				}
				return false // not ready: wait for readability
			}
			n, errno = int(r), e
			return true
		}
	})
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

// Write writes all of p, waiting in the netpoller while the socket's send
// buffer is full (honouring the write deadline).
func (c *Conn) Write(p []byte) (int, error) {
	var n int
	var errno syscall.Errno
	err := c.raw.Write(func(fd uintptr) bool {
		for n < len(p) {
			r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[n])), uintptr(len(p)-n))
			switch e {
			case 0:
				n += int(r)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false // buffer full: wait for writability
			default:
				errno = e
				return true
			}
		}
		return true
	})
	switch {
	case err != nil:
		return n, err
	case errno != 0:
		return n, c.opError("write", os.NewSyscallError("write", errno))
	}
	return n, nil
}
