//go:build linux

package pool

import (
	"syscall"
	"unsafe"
)

// peekIdle reports whether the socket fd is open with nothing to read,
// peeking without blocking. The call is raw (no scheduler bookkeeping, see
// internal/rawconn): it never blocks.
func peekIdle(fd uintptr, buf []byte) bool {
	for {
		_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)),
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		if e == syscall.EINTR {
			continue
		}
		// EAGAIN: nothing to read, the connection is idle and open. Data or
		// EOF (no error) and any other error mean it cannot be reused.
		return e == syscall.EAGAIN
	}
}
