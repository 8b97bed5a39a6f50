package pool

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/internal/rawconn"
	"github.com/pgone/pgone/internal/wire"
)

// Target is where and as whom server connections of one pool are made.
type Target struct {
	Host     string
	Port     int
	Database string
	User     string
	Password string
	// SCRAMClientKey and SCRAMServerKey (raw bytes), when set, log in with
	// SCRAM passthrough instead of Password (passthrough.go). Strings keep
	// Target comparable: equal keys mean the same pool target.
	SCRAMClientKey string
	SCRAMServerKey string
}

func (t Target) addr() string { return net.JoinHostPort(t.Host, strconv.Itoa(t.Port)) }

// Conn is one server connection, owned by one session at a time.
type Conn struct {
	net    net.Conn
	r      *bufio.Reader
	w      *bufio.Writer
	frames *wire.Reader

	// PID and SecretKey are the server's BackendKeyData, used to cancel.
	PID       uint32
	SecretKey []byte
	// Params are the ParameterStatus values the server last reported.
	Params map[string]string
	// TxStatus is the status byte of the last ReadyForQuery seen.
	TxStatus byte
	// State is what earlier clients left on the connection (transaction mode).
	State SessionState

	target   Target
	pool     *pool
	created  time.Time
	lastUsed time.Time
	expires  time.Time
	cancel   cancelState // cancel requests in flight (cancel.go)
	peek     peeker      // Alive's socket check, made once
}

// peeker is Alive's non-blocking peek at a connection's socket, built at
// the first check and reused: a closure per check would allocate on every
// acquire of an idle connection.
type peeker struct {
	raw   syscall.RawConn
	fn    func(fd uintptr) bool
	alive bool
	buf   [1]byte
}

// Frames returns the frame reader of the server stream.
func (c *Conn) Frames() *wire.Reader { return c.frames }

// Writer returns the buffered writer towards the server.
func (c *Conn) Writer() *bufio.Writer { return c.w }

// NetConn returns the underlying connection (for deadlines and closing).
func (c *Conn) NetConn() net.Conn { return c.net }

// Addr is the server's host:port.
func (c *Conn) Addr() string { return c.target.addr() }

func dial(ctx context.Context, cfg *Config, t Target) (*Conn, error) {
	dsn := fmt.Sprintf("host=%s port=%d dbname=%s user=%s sslmode=%s",
		quoteDSN(t.Host), t.Port, quoteDSN(t.Database), quoteDSN(t.User), quoteDSN(cfg.ServerTLS.SSLMode))
	if cfg.ServerTLS.RootCert != "" {
		dsn += " sslrootcert=" + quoteDSN(cfg.ServerTLS.RootCert)
	}
	pc, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("server config: %w", err)
	}
	pc.Password = t.Password
	if t.SCRAMClientKey != "" {
		usePassthrough(pc, t)
	}
	pc.DialFunc = rawDial(pc.DialFunc)
	// ParseConfig reads PG* environment variables; a pooled connection must
	// carry no session settings of its own, so clear what it picked up.
	pc.RuntimeParams = map[string]string{}
	ctx, cancel := context.WithTimeout(ctx, cfg.ServerConnectTimeout)
	defer cancel()
	conn, err := pgconn.ConnectConfig(ctx, pc)
	if err != nil {
		return nil, err
	}
	// pgconn may still have a background read in progress on the socket;
	// it would swallow the first reply pgone expects. Stop it first.
	if err := conn.SyncConn(ctx); err != nil {
		conn.Close(ctx)
		return nil, err
	}
	hc, err := conn.Hijack()
	if err != nil {
		conn.Close(ctx)
		return nil, err
	}
	nc := hc.Conn
	if sp, ok := nc.(*scramPassthrough); ok && sp.done && len(sp.rpending) == 0 {
		nc = sp.Conn // authentication is over: drop the rewriting layer
	}
	now := time.Now()
	c := &Conn{
		net:       nc,
		r:         bufio.NewReaderSize(nc, 32<<10),
		w:         bufio.NewWriterSize(nc, 32<<10),
		PID:       hc.PID,
		SecretKey: hc.SecretKey,
		Params:    hc.ParameterStatuses,
		TxStatus:  hc.TxStatus,
		target:    t,
		created:   now,
		lastUsed:  now,
	}
	c.frames = wire.NewReader(c.r, 0)
	if cfg.ServerLifetime > 0 {
		// Jitter of up to a tenth keeps connections made together from expiring together.
		jitter := time.Duration(now.UnixNano() % int64(cfg.ServerLifetime/10+1))
		c.expires = now.Add(cfg.ServerLifetime - jitter)
	}
	return c, nil
}

// rawDial makes server sockets read and write with raw system calls (see
// internal/rawconn): TLS, when the server uses it, runs on top.
func rawDial(dial pgconn.DialFunc) pgconn.DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return rawconn.Wrap(nc), nil
	}
}

func quoteDSN(s string) string {
	out := []byte{'\''}
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' || s[i] == '\\' {
			out = append(out, '\\')
		}
		out = append(out, s[i])
	}
	return string(append(out, '\''))
}

// Reset brings the connection back to a clean session: any open transaction
// is rolled back and all session state is discarded.
func (c *Conn) Reset(ctx context.Context) error {
	if c.TxStatus != pgmsg.TxIdle {
		if err := c.Exec(ctx, "ROLLBACK"); err != nil {
			return err
		}
	}
	if err := c.Exec(ctx, "DISCARD ALL"); err != nil {
		return err
	}
	c.State = SessionState{}
	return nil
}

// Rollback ends an open transaction, leaving session state in place.
func (c *Conn) Rollback(ctx context.Context) error {
	if c.TxStatus == pgmsg.TxIdle {
		return nil
	}
	return c.Exec(ctx, "ROLLBACK")
}

// Alive reports whether the connection is usable: nothing is waiting to be
// read (a server that terminated the backend has sent an error and closed).
// It peeks at the socket without blocking: one recv syscall. (A read with
// an expired deadline would not even try the socket.) Only the
// connection's holder calls it: the pool before handing out an idle
// connection, or the session that holds it.
func (c *Conn) Alive() bool {
	if c.r.Buffered() > 0 {
		return false
	}
	pk := &c.peek
	if pk.fn == nil {
		nc := c.net
		if tc, ok := nc.(*tls.Conn); ok {
			nc = tc.NetConn()
		}
		sc, ok := nc.(syscall.Conn)
		if !ok {
			return true
		}
		raw, err := sc.SyscallConn()
		if err != nil {
			return false
		}
		pk.raw = raw
		pk.fn = func(fd uintptr) bool {
			pk.alive = peekIdle(fd, pk.buf[:])
			return true // never wait for readiness
		}
	}
	pk.alive = false
	return pk.raw.Read(pk.fn) == nil && pk.alive
}

func (c *Conn) close() { _ = c.net.Close() }
