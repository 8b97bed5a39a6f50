package proxy

import (
	"bufio"
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/internal/wire"
	"github.com/pgone/pgone/pgerr"
)

// Writing to the client and ending a session: the buffered client writer,
// FATAL-and-close, shutdown's drain and forced close, and the errors a
// client hears when its stream ends.

// writerLocked returns the buffered writer to the client, taking one from
// the server's pool if the session has none. Called with wmu held.
func (ss *session) writerLocked() *bufio.Writer {
	if ss.cw == nil {
		w := ss.srv.writers.Get().(*bufio.Writer)
		w.Reset(ss.nc)
		ss.cw = w
	}
	return ss.cw
}

// parkWriterLocked gives an empty client writer back to the pool, so an
// idle transaction-mode client holds no write buffer. Called with wmu held.
func (ss *session) parkWriterLocked() {
	if ss.cw != nil && ss.cw.Buffered() == 0 {
		ss.cw.Reset(nil)
		ss.srv.writers.Put(ss.cw)
		ss.cw = nil
	}
}

// send encodes messages to the client and flushes.
func (ss *session) send(msgs ...pgproto3.BackendMessage) error {
	var buf []byte
	var err error
	for _, m := range msgs {
		if buf, err = m.Encode(buf); err != nil {
			return err
		}
	}
	return ss.writeRaw(buf)
}

func (ss *session) writeRaw(b []byte) error {
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	w := ss.writerLocked()
	if _, err := w.Write(b); err != nil {
		return err
	}
	err := w.Flush()
	ss.parkWriterLocked()
	return err
}

// terminate sends a FATAL error to the client (once) and closes its
// connection, which ends the session goroutine's reads.
func (ss *session) terminate(err error) {
	ss.terminateOnce.Do(func() {
		ss.terminated.Store(true)
		ss.interruptInline(0) // the session goroutine may be waiting for its server
		if err != nil {
			ss.countError(err)
			resp := pgerr.ToResponse(err)
			if b, eerr := resp.Encode(nil); eerr == nil {
				_ = ss.nc.SetWriteDeadline(time.Now().Add(time.Second))
				_ = ss.writeRaw(b)
			}
		}
		_ = ss.nc.Close()
	})
}

// close is the last step of every session: the client connection is closed.
func (ss *session) close() {
	ss.mu.Lock()
	ss.closed = true
	ss.mu.Unlock()
	ss.terminateOnce.Do(func() { _ = ss.nc.Close() })
}

// drainNow is shutdown's request: an idle session closes now with 57P01, a
// busy one as soon as it is idle.
func (ss *session) drainNow() {
	ss.mu.Lock()
	ss.draining = true
	idle := ss.stateLocked() == stateIdle
	ss.mu.Unlock()
	if idle {
		ss.log.Info("closing idle client for shutdown")
		ss.terminate(shutdownError())
	}
}

// forceClose ends the session whatever it is doing.
func (ss *session) forceClose() {
	ss.mu.Lock()
	server := ss.server
	ss.mu.Unlock()
	ss.terminate(shutdownError())
	if server != nil {
		_ = server.NetConn().SetDeadline(time.Now())
	}
}

func shutdownError() error {
	return pgerr.Fatal(pgerr.AdminShutdown, "terminating connection due to administrator command")
}

// clientReadError turns a framing error from the client into the error the
// client should get.
func clientReadError(err error) error {
	var tl *wire.TooLargeError
	switch {
	case errors.As(err, &tl):
		return pgerr.Fatal(pgerr.ProtocolViolation, "invalid message length: %d bytes exceeds max_message_size %d", tl.Len, tl.Max)
	case errors.Is(err, wire.ErrBadLength):
		return pgerr.Fatal(pgerr.ProtocolViolation, "invalid message length")
	}
	return err
}
