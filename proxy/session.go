package proxy

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/internal/wire"
	"github.com/pgone/pgone/pgerr"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy/auth"
)

// sessionState names where a session is. It is derived in one place,
// session.stateLocked, from the fields the relay maintains.
type sessionState int

const (
	stateStartup       sessionState = iota // before the client got ReadyForQuery
	stateIdle                              // no request outstanding, no transaction
	stateActive                            // a request is running on the server
	stateInTransaction                     // idle inside a transaction block
	stateClosed                            // ended; only cleanup is left
)

func (s sessionState) String() string {
	switch s {
	case stateStartup:
		return "startup"
	case stateIdle:
		return "idle"
	case stateActive:
		return "active"
	case stateInTransaction:
		return "idle in transaction"
	case stateClosed:
		return "closed"
	}
	return "unknown"
}

// cancelKey is the BackendKeyData a client got from pgone.
type cancelKey struct {
	pid    uint32
	secret uint32
}

type session struct {
	// Fixed once startup ends (set by the session goroutine during
	// startup, before the relay and the pump start): read without a lock.
	srv       *Server
	log       *slog.Logger
	nc        net.Conn
	tls       bool
	user      string
	database  string
	cancelKey cancelKey
	// Where this session's server connections come from.
	mode    pool.Mode
	poolKey pool.Key
	target  pool.Target
	// startupParams are the client's startup parameters, kept to restore
	// them after a RESET in transaction mode.
	startupParams []param
	// queriedSecret is the secret auth_query returned for a user missing
	// from users (authquery.go); "" otherwise.
	queriedSecret string
	// scramKeys are the keys of the client's SCRAM login, for logging in
	// to servers as the client when its secret is a SCRAM verifier.
	scramKeys *auth.SCRAMKeys

	// Owned by the session goroutine: no lock.
	br *wire.LentBuffer
	cr *wire.Reader
	// reapply brings startup parameters back after a RESET in session
	// mode (reapply.go); its own comments say which of its fields mu
	// guards while reapplyQueued is set.
	reapply reapplyState
	// plan is the plan of the request being served (transaction mode,
	// plan.go); only the session goroutine touches it.
	plan plan

	// Owned by the session goroutine; while a pump runs, changed by
	// either only under mu.
	// prepared maps the client's statement names to server-side ones
	// (transaction mode; owned by the session goroutine, and changed by
	// the pump only under mu, to undo what a server skipped).
	prepared map[string]clientStatement
	// stmts is the client's unnamed statement and the like (statements.go),
	// guarded by mu like prepared while a pump runs.
	stmts statementState

	// Guarded by wmu: the client writer. swmu is held while the session
	// goroutine writes to its server (transaction mode). The reply path
	// takes wmu, then mu, and swmu under wmu at a release (replies.go).
	wmu  sync.Mutex // serializes writes to the client
	swmu sync.Mutex // held while the session goroutine writes to its server (transaction mode)
	cw   *bufio.Writer

	// Guarded by inlineMu.
	// inlineMu guards inlineServer: the server whose replies the session
	// goroutine is reading itself (transaction mode), so terminate can
	// interrupt that read. It is cleared before the server is released.
	inlineMu          sync.Mutex
	inlineServer      *pool.Conn
	inlineInterrupted bool // a deadline was set on inlineServer to end the wait

	// Atomic, read and written by any goroutine.
	inlineSince   atomic.Int64 // when the inline wait began (unix ns), 0 when none
	terminated    atomic.Bool  // terminate ran
	reapplyQueued atomic.Bool  // a re-apply's replies are due (reapply.go)
	// timeoutCancel is closed when the cancel pgone is sending for
	// query_timeout is done; nil when none is (timeout.go).
	timeoutCancel atomic.Pointer[chan struct{}]

	// Synchronized by themselves.
	// pumpDone returns the server from a pump stopped by endTx, or nil if
	// the pump closed it.
	pumpDone      chan *pool.Conn
	terminateOnce sync.Once

	mu       sync.Mutex // guards the fields below, shared with the server pump
	server   *pool.Conn
	started  bool // the client got its first ReadyForQuery
	pending  int  // requests sent (Query, Sync, FunctionCall) not yet answered by ReadyForQuery
	txStatus byte // of the last ReadyForQuery
	draining bool // shutdown: close as soon as the session is idle
	closed   bool
	// intake: the session goroutine has taken in (part of) a request that
	// is not yet sent or answered (transaction mode). The session is
	// active meanwhile, so shutdown's drain waits for it (intake.go).
	intake bool

	// Transaction mode, also guarded by mu.
	expect            expectQueue       // messages sent whose replies are outstanding
	prelude           []byte            // injected before the next request (settings)
	settingsKey       string            // the client's session settings, as the statement applying them
	settingsDirty     bool              // a statement changed settings: snapshot them after requests
	pinned            bool              // state a pool cannot move: keep the server
	pumping           bool              // a pump goroutine reads the server's replies (transaction mode)
	serverFatal       bool              // the server sent a FATAL error: it is going away
	captured          [][]string        // rows of the settings snapshot being read
	lostTx            bool              // the server died under an idle transaction: fail the next request
	shapes            map[string]uint64 // result shape of each client statement, as the client was told
	copyIn            bool              // the server is in copy-in mode: it ignores Syncs
	syncsAfterExecute int               // Syncs sent since the last Execute (session mode)
	outcomes          sessionOutcomes   // what requests in flight may commit (session mode, lostsession.go)
	cacheWrites       sessionWrites     // what its requests may write, for the cache (session mode, cachesession.go)
	deadlineArmed     bool              // an idle timeout deadline is set on the client
	idle              *sync.Cond        // on mu: a reply came or the server left (see ensureServer)
	qt                queryTimer        // query_timeout (timeout.go)
	// With hooks (hooks.go): the tables the client's open transaction
	// wrote, and whether it failed or rolls back.
	txWrites  []string
	txAborted bool
	cache     *sessionCache // the result cache's handle (cachehooks.go); nil until used

	// The read/write split (split.go), also guarded by mu. The session
	// goroutine reads them without mu while it holds no server (no pump).
	slot            *replicaSlot // the replica of the attached server; nil for the primary
	slotReplay      pool.LSN     // slot's replay LSN sampled before it was picked
	mayWrite        bool         // the attached primary server ran what may have written
	ddl             bool         // DDL was sent: function volatility is read again at release
	fenceAt         time.Time    // the client's last request that may have written ended then
	fenceLSN        pool.LSN     // the primary's position covering fenceAt, once known
	fenceKnown      bool
	fenceEpoch      uint64 // the monitor's epoch fenceLSN is of (failover.go)
	defaultReadOnly bool   // the client's default_transaction_read_only is on

	// stats feed SHOW STATS, SHOW CLIENTS and the metrics (stats.go):
	// mixed ownership, written down field by field in sessionStats.
	stats sessionStats
}

func newSession(s *Server, nc net.Conn) *session {
	ss := &session{
		srv:      s,
		log:      s.log.With("client", nc.RemoteAddr().String()),
		txStatus: pgmsg.TxIdle,
		prepared: map[string]clientStatement{},
		shapes:   map[string]uint64{},
		pumpDone: make(chan *pool.Conn, 1),
		stats:    newSessionStats(),
	}
	ss.idle = sync.NewCond(&ss.mu)
	ss.setConn(nc)
	return ss
}

func (ss *session) setConn(nc net.Conn) {
	ss.nc = nc
	if ss.br != nil {
		ss.br.Release() // empty: startup checked (TLS upgrade)
	}
	// A small read buffer, lent from a pool only while there is something
	// to read: requests are small, larger frames are read whole past it,
	// and thousands of idle clients hold none.
	ss.br = wire.NewLentBuffer(nc, ss.srv.readBuffers)
	ss.wmu.Lock()
	ss.parkWriterLocked()
	ss.wmu.Unlock()
	// Until the client has logged in, its messages are authentication
	// messages: bounded as PostgreSQL bounds them (login raises the limit).
	ss.cr = wire.NewReader(ss.br, maxAuthMessage)
}

func (ss *session) stateLocked() sessionState {
	switch {
	case ss.closed:
		return stateClosed
	case !ss.started:
		return stateStartup
	case ss.pending > 0 || ss.intake:
		return stateActive
	case ss.txStatus != pgmsg.TxIdle:
		return stateInTransaction
	}
	return stateIdle
}

// run is the session goroutine: startup, authentication, attach, relay.
func (ss *session) run() {
	snap := ss.srv.snap.Load()
	if !ss.srv.register(ss) {
		ss.terminate(pgerr.Fatal(pgerr.AdminShutdown, "pgone is shutting down"))
		return
	}
	defer ss.srv.unregister(ss)

	if t := snap.cfg.Limits.ClientLoginTimeout; t > 0 {
		_ = ss.nc.SetDeadline(time.Now().Add(t))
	}
	req, err := ss.logIn(snap) // prelogin.go
	if err != nil {
		ss.failStartup(err)
		return
	}
	ss.cr.SetMax(snap.cfg.Limits.MaxMessageSize)
	// client_login_timeout covers startup and authentication; the wait for a
	// server is bounded by query_wait_timeout, and ends with an error the
	// client can still be sent.
	_ = ss.nc.SetDeadline(time.Time{})
	if req.database == AdminDatabase {
		ss.runConsole(snap, req) // admin.go
		return
	}
	server, err := ss.attach(snap, req)
	if err != nil {
		ss.failStartup(err)
		return
	}
	if ss.mode == pool.ModeTransaction {
		ss.relayTx()
		return
	}
	defer ss.cacheSessionMode()() // cachehooks.go: its writes are not seen one by one
	ss.relay(server)
}

// failStartup reports a startup-phase error to the client once and logs it once.
func (ss *session) failStartup(err error) {
	switch {
	case errors.Is(err, errCancelHandled):
		return
	case errors.Is(err, errTooManyLogins):
		// Not logged one by one: this is what a flood of sockets looks like.
		ss.log.Debug("client refused: too many logins in progress")
		_ = ss.nc.SetWriteDeadline(time.Now().Add(time.Second))
		ss.terminate(err)
		return
	case errors.Is(err, io.EOF):
		ss.log.Debug("client closed during startup")
		return
	case errors.Is(err, os.ErrDeadlineExceeded):
		ss.log.Info("client_login_timeout expired", "sqlstate", pgerr.ProtocolViolation)
		_ = ss.nc.SetWriteDeadline(time.Now().Add(time.Second))
		ss.terminate(pgerr.Fatal(pgerr.ProtocolViolation, "client_login_timeout expired"))
		return
	}
	var pe *pgerr.Error
	if !errors.As(err, &pe) {
		var ne net.Error
		if errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
			ss.log.Info("client connection failed during startup", "err", err)
			return
		}
	}
	ss.log.Info("client rejected", "user", ss.user, "database", ss.database, "sqlstate", pgerr.CodeOf(err), "err", err)
	_ = ss.nc.SetWriteDeadline(time.Now().Add(time.Second))
	// Startup errors end the connection, so the client must see them as FATAL.
	var pge *pgconn.PgError
	switch {
	case pe != nil && pe.Severity != pgerr.SeverityFatal:
		c := *pe
		c.Severity = pgerr.SeverityFatal
		err = &c
	case errors.As(err, &pge) && pge.Severity != pgerr.SeverityFatal:
		c := *pge
		c.Severity, c.SeverityUnlocalized = pgerr.SeverityFatal, pgerr.SeverityFatal
		err = &c
	}
	ss.terminate(err)
}

// login checks limits and authenticates the client.
func (ss *session) login(snap *snapshot, req *startupRequest) error {
	ss.user, ss.database = req.user, req.database
	if int(ss.srv.clients.Load()) > snap.cfg.Limits.MaxClientConn {
		return pgerr.Fatal(pgerr.TooManyConnections, "no more connections allowed (max_client_conn)")
	}
	if snap.cfg.TLS.Mode == TLSRequire && !ss.tls {
		return pgerr.Fatal(pgerr.InvalidAuthorizationSpecification,
			"TLS is required: connect with sslmode=require")
	}
	method := snap.cfg.AuthMethod
	sec := snap.secrets[req.user]
	if u, ok := snap.cfg.Users[req.user]; ok && u.AuthMethod != auth.Inherited {
		method = u.AuthMethod
	} else if !ok {
		var err error
		if sec, err = ss.authQuerySecret(snap, req); err != nil {
			return err
		}
	}
	keys, err := ss.srv.auth.AuthenticateKeys(authConn{ss}, method, req.user, sec)
	if err != nil {
		return err
	}
	ss.scramKeys = keys
	return nil
}

// authConn adapts a session to the auth exchange.
type authConn struct{ ss *session }

func (a authConn) Send(msg pgproto3.BackendMessage) error { return a.ss.send(msg) }

func (a authConn) ReceivePassword() ([]byte, error) {
	typ, frame, err := a.ss.cr.Next()
	if err != nil {
		return nil, authReadError(err)
	}
	if typ != pgmsg.PasswordMessage {
		return nil, pgerr.Fatal(pgerr.ProtocolViolation, "expected password response, got message type %d", typ)
	}
	return append([]byte(nil), wire.Body(frame)...), nil
}

// attach acquires a server connection, applies the client's startup
// parameters to it and completes the client's startup.
func (ss *session) attach(snap *snapshot, req *startupRequest) (*pool.Conn, error) {
	db, ok := snap.cfg.DatabaseFor(req.database)
	if !ok {
		return nil, pgerr.Fatal(pgerr.InvalidCatalogName, "database %q does not exist", req.database)
	}
	dbname := db.ServerDBName(req.database)
	target := pool.Target{Host: db.Host, Port: db.Port, Database: dbname, User: db.User, Password: db.Password}
	if target.User == "" {
		target.User = req.user
		target.Password = snap.cfg.Users[req.user].Password
		if _, listed := snap.cfg.Users[req.user]; !listed {
			target.Password = ss.queriedSecret
		}
		if auth.IsSCRAMVerifier(target.Password) && ss.scramKeys != nil {
			// No password to send: log in with the keys the client proved.
			target.Password = ""
			target.SCRAMClientKey = string(ss.scramKeys.ClientKey)
			target.SCRAMServerKey = string(ss.scramKeys.ServerKey)
		}
	}
	ss.mode = snap.cfg.PoolModeFor(db, req.user, snap.poolCfg.Mode)
	ss.poolKey = pool.Key{Database: req.database, User: req.user}
	ss.target, ss.startupParams = target, req.params
	ctx, cancel := context.WithCancel(ss.srv.ctx)
	defer cancel()
	unlock := func() {}
	defer func() { unlock() }()
	if ss.mode == pool.ModeTransaction {
		// One client per pool learns the server's parameters; the others
		// wait for it rather than all asking a server at once.
		unlock = ss.srv.learnParams(ss.poolKey)
		if reported, ok := startupWithoutServer(ss.srv.cachedParams(ss.poolKey), req.params); ok {
			unlock()
			// Nothing to check on a server: the client logs in without
			// one, as with PgBouncer, and its first request applies its
			// parameters.
			ss.settingsKey = applyParamsSQL(req.params)
			return nil, ss.completeStartup(nil, reported)
		}
	}
	server, err := ss.acquire(ctx, nil)
	if err != nil {
		return nil, err // failStartup makes it FATAL
	}
	if ss.mode == pool.ModeTransaction {
		// Apply the startup parameters and read back the session settings:
		// they are what every server this client gets is brought to.
		actx, acancel := context.WithTimeout(ctx, snap.poolCfg.ServerConnectTimeout)
		server.State.UnnamedOwner = 0 // the queries below drop the unnamed statement
		if server.State.Settings != "" {
			err = server.Exec(actx, "RESET ALL")
		}
		var rows [][]string
		if err == nil {
			ss.srv.storeParams(ss.poolKey, server.Params)
			unlock()
			rows, err = server.Query(actx, ss.snapshotSQL())
		}
		acancel()
		if err != nil {
			return nil, ss.startupQueryFailed(server, err)
		}
		ss.settingsKey = settingsKeyOf(rows)
		ss.defaultReadOnly = readOnlyDefault(rows)
		server.State.Settings = ss.settingsKey
	} else if sql := applyParamsSQL(req.params); sql != "" {
		actx, acancel := context.WithTimeout(ctx, snap.poolCfg.ServerConnectTimeout)
		err := server.Exec(actx, sql)
		acancel()
		if err != nil {
			return nil, ss.startupQueryFailed(server, err)
		}
	}
	reported := server.Params
	if ss.mode == pool.ModeTransaction {
		ss.releaseToPool(server)
		server = nil
	}
	if err := ss.completeStartup(server, reported); err != nil {
		return nil, err
	}
	return server, nil
}

// startupQueryFailed gives back a server whose startup query failed and
// returns what the client is told. With PostgreSQL's error the server is
// at ReadyForQuery and is cleaned for the pool; otherwise (a timeout, a
// lost connection) the query's reply may still be on its way, so the
// server is closed after a cancel: a reset sent behind that reply would
// read it as its own and leave its own reply to the next client.
func (ss *session) startupQueryFailed(server *pool.Conn, err error) error {
	if pgerr.CodeOf(err) != "" {
		ss.releaseServer(server, true)
		return err
	}
	ss.releaseServer(server, false)
	ss.log.Info("server connection lost during startup", "server", server.Addr(), "err", err)
	return pgerr.Fatal(pgerr.ConnectionFailure, "server connection lost")
}

// completeStartup sends the client AuthenticationOk, the ParameterStatus
// values, its BackendKeyData and ReadyForQuery, and attaches server (nil in
// transaction mode).
func (ss *session) completeStartup(server *pool.Conn, reported map[string]string) error {
	var secret [4]byte
	_, _ = rand.Read(secret[:])
	var pid uint32 // 0: servers change, the client gets a process ID issued by pgone
	if server != nil {
		pid = server.PID
	}
	ss.srv.registerCancelKey(ss, pid, binary.BigEndian.Uint32(secret[:]))

	msgs := []pgproto3.BackendMessage{&pgproto3.AuthenticationOk{}}
	names := make([]string, 0, len(reported))
	for k := range reported {
		names = append(names, k)
	}
	// PostgreSQL reports in its GUC table order: by name, ignoring case.
	sort.Slice(names, func(i, j int) bool { return strings.ToLower(names[i]) < strings.ToLower(names[j]) })
	for _, k := range names {
		msgs = append(msgs, &pgproto3.ParameterStatus{Name: k, Value: reported[k]})
	}
	msgs = append(msgs,
		&pgproto3.BackendKeyData{ProcessID: ss.cancelKey.pid, SecretKey: secret[:]},
		&pgproto3.ReadyForQuery{TxStatus: pgmsg.TxIdle})

	ss.mu.Lock()
	ss.server = server
	ss.started = true
	draining := ss.draining
	ss.mu.Unlock()
	if draining {
		ss.abandonServer(server)
		return pgerr.Fatal(pgerr.AdminShutdown, "pgone is shutting down")
	}
	if err := ss.send(msgs...); err != nil {
		ss.abandonServer(server)
		return err
	}
	return nil
}

// startupWithoutServer decides whether a transaction-mode client can log in
// without a server: when the pool's reported parameters are known and every
// startup parameter is application_name (any value is valid) or a reported
// parameter given with the value the server reports. It returns what to
// report to the client.
func startupWithoutServer(base map[string]string, params []param) (map[string]string, bool) {
	if base == nil {
		return nil, false
	}
	for _, p := range params {
		if p.name == "application_name" {
			continue
		}
		if v, ok := base[p.name]; !ok || v != p.value {
			return nil, false
		}
	}
	out := make(map[string]string, len(base))
	for k, v := range base {
		out[k] = v
	}
	for _, p := range params {
		if p.name == "application_name" {
			out[p.name] = p.value
		}
	}
	return out, true
}

// abandonServer gives back the server connection attach got when the session
// ends before its relay starts; nothing of the client reached the server but
// its startup parameters, which the reset discards.
func (ss *session) abandonServer(server *pool.Conn) {
	if server == nil {
		return
	}
	ss.mu.Lock()
	ss.server = nil
	ss.mu.Unlock()
	ss.releaseServer(server, true)
}

// releaseToPool returns a server connection that is idle outside a
// transaction, keeping its session state for the next transaction-mode client.
func (ss *session) releaseToPool(server *pool.Conn) {
	if server.TxStatus != pgmsg.TxIdle {
		ss.releaseServer(server, true)
		return
	}
	ss.srv.pools.Release(server)
}

// releaseServer resets a server connection and returns it to its pool, or
// closes it when its state is not known to be clean.
func (ss *session) releaseServer(server *pool.Conn, clean bool) {
	if !clean {
		ss.discardBusy(server)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := server.Reset(ctx); err != nil {
		ss.log.Info("server connection could not be reset; closing it", "err", err)
		ss.srv.pools.Discard(server)
		return
	}
	ss.srv.pools.Release(server)
}

// discardBusy closes a server connection that may be running the client's
// query. PostgreSQL does not notice a closed socket until it writes, so a
// long query would run on (holding its locks) after its client left: a
// CancelRequest stops it first, as PgBouncer and libpq do.
func (ss *session) discardBusy(server *pool.Conn) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = server.Cancel(ctx)
	}()
	ss.srv.pools.Discard(server)
}
