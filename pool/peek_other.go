//go:build !linux

package pool

import (
	"errors"
	"syscall"
)

// peekIdle reports whether the socket fd is open with nothing to read,
// peeking without blocking.
func peekIdle(fd uintptr, buf []byte) bool {
	_, _, err := syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	// EAGAIN: nothing to read, the connection is idle and open.
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK)
}
