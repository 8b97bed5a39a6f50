//go:build unix

package router

import "syscall"

// glibcDefaultStack is the stack glibc gives new threads when RLIMIT_STACK
// is unlimited (ARCH_STACK_DEFAULT_SIZE on x86-64).
const glibcDefaultStack = 2 << 20

// stackLimit returns the size of the C stacks pg_query runs on: the
// threads the Go runtime creates get RLIMIT_STACK from glibc, or 2 MB when
// it is unlimited. 0 means unknown.
func stackLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_STACK, &rl); err != nil {
		return 0
	}
	if rl.Cur == ^uint64(0) { // RLIM_INFINITY
		return glibcDefaultStack
	}
	return uint64(rl.Cur)
}
