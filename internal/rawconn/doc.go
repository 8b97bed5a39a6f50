// Package rawconn makes socket reads and writes that do not wake the Go
// runtime's monitor thread.
//
// Why: every ordinary read or write on a net.Conn enters the runtime's
// syscall state, and the first one after the process was idle wakes the
// sysmon thread from its deep sleep (a futex wake on the request's path);
// sysmon then polls every 20 µs until the process is idle again. A proxy
// serving one client goes idle twice per query (waiting for the client,
// waiting for the server), so each query paid two wake-ups and dozens of
// sysmon polls: on a 2-core VM about 50 µs of added latency, measured with
// pgbench -S at one client (see bench/README.md).
//
// The sockets are non-blocking (Go's netpoller owns them), so a read or
// write returns at once: it can be a raw system call, with no scheduler
// bookkeeping. Waiting for readiness, deadlines and Close still go through
// the netpoller (syscall.RawConn), exactly as for a plain net.Conn.
//
// Wrap returns a net.Conn that behaves as the one it wraps (addresses, deadlines, Close, errors that errors.Is can
// match: io.EOF, os.ErrDeadlineExceeded, net.ErrClosed, syscall errnos).
// On platforms other than Linux it returns the conn unchanged. Its
// ReadLent reads into a buffer borrowed from a Lender only once data is
// there, so a reader waiting on an idle client holds no buffer
// (wire.LentBuffer).
package rawconn
