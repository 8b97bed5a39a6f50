package pool

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/pgone/pgone/internal/pgmsg"
)

// cancelState keeps a connection from its next client while a cancel
// request sent for its last client may still land. PostgreSQL handles a
// CancelRequest in a separate process that signals the backend and then
// closes the cancel connection: once it has closed it, the signal is with
// the backend, and a backend idle by then discards it when it reads its next
// command. So a connection may go back to a pool only after every cancel
// sent to it has seen that close (PgBouncer does the same).
type cancelState struct {
	// guard is held shared by each cancel in flight and taken exclusively
	// by Release, which so waits for them.
	guard sync.RWMutex
	// unsure: a cancel was sent but its close not seen (a timeout): it may
	// still land, so the connection is closed rather than reused.
	unsure atomic.Bool
}

// StartCancel begins forwarding a client's cancel request to c. The caller
// must own c with the client's request outstanding, and must not give c
// back before StartCancel returns (call it under the lock that guards the
// handing back): from then on Release waits until send has run. send must
// be called exactly once; it sends the CancelRequest and waits for the
// server to close the cancel connection.
func (c *Conn) StartCancel() (send func(context.Context) error) {
	c.cancel.guard.RLock()
	if c.pool != nil {
		c.pool.canceling.Add(1)
	}
	return func(ctx context.Context) error {
		defer func() {
			if c.pool != nil {
				c.pool.canceling.Add(-1)
			}
			c.cancel.guard.RUnlock()
		}()
		return c.Cancel(ctx)
	}
}

// cancelDone waits for the cancels in flight to c and reports whether c
// may be reused.
func (c *Conn) cancelDone() bool {
	c.cancel.guard.Lock()
	c.cancel.guard.Unlock() //nolint:staticcheck // an empty critical section: a wait for the readers
	return !c.cancel.unsure.Load()
}

// Cancel sends a CancelRequest for c's backend and waits until the server
// closes the cancel connection, or ctx ends. Used alone (not through
// StartCancel) it is for connections that are being closed.
func (c *Conn) Cancel(ctx context.Context) error {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", c.target.addr())
	if err != nil {
		return err // nothing was sent
	}
	defer nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	if _, err := nc.Write(pgmsg.AppendCancelRequest(nil, c.PID, c.SecretKey)); err != nil {
		c.cancel.unsure.Store(true)
		return err
	}
	var one [1]byte
	if _, err := nc.Read(one[:]); !errors.Is(err, io.EOF) {
		c.cancel.unsure.Store(true)
		if err == nil {
			err = errors.New("unexpected reply to a cancel request")
		}
		return err
	}
	return nil
}
