package proxy

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgone/pgone/internal/rawconn"
	"github.com/pgone/pgone/internal/wire"
	"github.com/pgone/pgone/pgerr"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy/auth"
	"github.com/pgone/pgone/router"
)

// snapshot is one validated configuration and what is derived from it. It is
// immutable; Reload swaps in a new one and sessions read it once per phase.
type snapshot struct {
	cfg     Config
	poolCfg pool.Config
	tls     *tls.Config
	secrets map[string]*auth.Secret
	// writeFuncs and readFuncs are routing.write_functions and
	// routing.read_functions as sets, for the router.
	writeFuncs, readFuncs map[string]bool
}

// Server accepts clients and runs their sessions.
type Server struct {
	log   *slog.Logger
	pools *pool.Manager
	auth  *auth.Authenticator
	snap  atomic.Pointer[snapshot]
	// retired counts, per base statement name, how often DDL made servers'
	// copies stale; the count is part of the server-side name. Copy on write.
	retired atomic.Pointer[map[string]uint64]
	// parsed: statements a server has prepared (statements.go).
	parsed parsedStatements
	// classifier tells what statements do to session state (transaction mode).
	classifier Classifier
	// hooks are the pipeline's extension points (hooks.go, hookset.go);
	// nil: none.
	hooks *hookSet
	// router routes requests for the read/write split (split.go); splits
	// are the databases whose reads are split, by client-visible name.
	router *router.Router
	splits atomic.Pointer[map[string]*replicaSet]

	clients atomic.Int64
	// loggingIn counts connections still in startup or authentication
	// (prelogin.go).
	loggingIn atomic.Int64
	// writers are client write buffers, lent to sessions while they write.
	writers sync.Pool
	// readBuffers lend clients their read buffers (wire.LentBuffer).
	readBuffers *wire.BufferPool

	// ctx is cancelled when the server is forced down; sessions derive from it.
	ctx    context.Context
	cancel context.CancelFunc

	mu         sync.Mutex
	listeners  map[net.Listener]struct{}
	sessions   map[*session]struct{}
	cancelKeys map[cancelKey]*session
	pins       map[string]int64 // pinned clients by cause, since start
	// params are the ParameterStatus values a freshly reset server of each
	// pool reports, so transaction-mode clients can log in without a server.
	params map[pool.Key]map[string]string
	// learning holds a lock per pool while one client fetches its params.
	learning map[pool.Key]*sync.Mutex
	draining bool
	wg       sync.WaitGroup
	// watchOnce starts watchInline and the replica monitors with the first Serve.
	watchOnce   sync.Once
	replicaMons replicaMonitors
	// refusals counts split-brain refusals (failover_metrics.go).
	refusals failoverRefusals

	// admin is the console's state (admin.go); metrics are nil until
	// RegisterMetrics (metrics.go).
	admin   adminState
	metrics atomic.Pointer[metrics]

	// testHooks let tests stop the server at points where races happen;
	// set only by tests, before Serve.
	testHooks testHooks
}

type testHooks struct {
	// beforeCancelSend runs when a client's cancel is about to be sent to
	// its server.
	beforeCancelSend func()
	// afterIntake runs in the session goroutine once it has taken in a
	// request (transaction mode) or a Query, Sync or FunctionCall
	// (session mode), before any of it goes to a server.
	afterIntake func()
	// afterDrain runs in Shutdown once every session was asked to drain.
	afterDrain func()
}

// New builds a Server from a validated configuration.
func New(cfg Config, poolCfg pool.Config, pools *pool.Manager, log *slog.Logger) (*Server, error) {
	snap, err := newSnapshot(cfg, poolCfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		log:        log,
		pools:      pools,
		auth:       auth.NewAuthenticator(),
		ctx:        ctx,
		cancel:     cancel,
		listeners:  map[net.Listener]struct{}{},
		sessions:   map[*session]struct{}{},
		cancelKeys: map[cancelKey]*session{},
		pins:       map[string]int64{},
		params:     map[pool.Key]map[string]string{},
		learning:   map[pool.Key]*sync.Mutex{},
		router:     router.NewRouter(10000),
	}
	s.classifier = routerClassifier{r: s.router, log: log}
	s.writers.New = func() any { return bufio.NewWriterSize(nil, 8<<10) }
	s.readBuffers = wire.NewBufferPool(4 << 10)
	s.snap.Store(snap)
	s.sizePools()
	return s, nil
}

func newSnapshot(cfg Config, poolCfg pool.Config) (*snapshot, error) {
	snap := &snapshot{cfg: cfg, poolCfg: poolCfg, secrets: make(map[string]*auth.Secret, len(cfg.Users))}
	set := func(names []string) map[string]bool {
		if len(names) == 0 {
			return nil
		}
		m := make(map[string]bool, len(names))
		for _, n := range names {
			m[strings.TrimSpace(n)] = true
		}
		return m
	}
	snap.writeFuncs, snap.readFuncs = set(cfg.Routing.WriteFunctions), set(cfg.Routing.ReadFunctions)
	for name, u := range cfg.Users {
		sec, err := auth.ParseSecret(name, u.Password)
		if err != nil {
			return nil, fmt.Errorf("users.%s.password: %w", name, err)
		}
		snap.secrets[name] = sec
	}
	if cfg.TLS.Mode != TLSDisable {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		snap.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return snap, nil
}

// Reload swaps in a new validated configuration. Connected clients keep
// running; new requests see the new snapshot. On error the old one stays.
func (s *Server) Reload(cfg Config, poolCfg pool.Config) error {
	snap, err := newSnapshot(cfg, poolCfg)
	if err != nil {
		return err
	}
	old := s.snap.Swap(snap)
	s.mu.Lock()
	clear(s.params) // servers may have moved: learn their parameters again
	s.mu.Unlock()
	s.pools.SetConfig(poolCfg)
	s.resizePools(old, snap)
	s.syncMonitors(snap, false)
	if old.cfg.Listen != cfg.Listen {
		s.log.Warn("listen address changes need a restart; still listening on the old one", "old", old.cfg.Listen, "new", cfg.Listen)
	}
	return nil
}

// Serve accepts clients on ln until Shutdown. It returns nil after Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		return ln.Close()
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	s.watchOnce.Do(func() {
		go s.watchInline()
		s.syncMonitors(s.snap.Load(), true)
	})
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			draining := s.draining
			s.mu.Unlock()
			if draining {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Anything else (EMFILE, ENFILE, aborted handshakes) passes: back off and go on.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; retrying", "err", err, "in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		s.wg.Add(1)
		go s.handle(rawconn.Wrap(nc))
	}
}

func (s *Server) handle(nc net.Conn) {
	defer s.wg.Done()
	s.clients.Add(1)
	defer s.clients.Add(-1)
	ss := newSession(s, nc)
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("session panic", "client", nc.RemoteAddr().String(), "panic", r)
			ss.terminate(pgerr.Fatal(pgerr.InternalError, "internal error in pgone"))
		}
		ss.close()
		ss.br.Release() // the session goroutine was its only reader
	}()
	ss.run()
}

func (s *Server) register(ss *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	s.sessions[ss] = struct{}{}
	return true
}

func (s *Server) unregister(ss *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, ss)
	if s.cancelKeys[ss.cancelKey] == ss {
		delete(s.cancelKeys, ss.cancelKey)
	}
}

// Clients is the number of connected client connections.
func (s *Server) Clients() int { return int(s.clients.Load()) }

// Shutdown stops accepting, lets sessions finish their transaction, closes
// idle ones with 57P01, and when ctx ends closes the rest with 57P01.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopMonitors()
	s.stopCacheFeeds()
	s.mu.Lock()
	s.draining = true
	for ln := range s.listeners {
		_ = ln.Close()
	}
	sessions := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	s.mu.Unlock()
	for _, ss := range sessions {
		ss.drainNow()
	}
	if h := s.testHooks.afterDrain; h != nil {
		h()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	sessions = sessions[:0]
	for ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	s.mu.Unlock()
	s.log.Warn("shutdown timeout: closing sessions still in a transaction", "sessions", len(sessions))
	s.cancel()
	for _, ss := range sessions {
		ss.forceClose()
	}
	<-done
	return ctx.Err()
}

// registerCancelKey gives ss its BackendKeyData. pid 0 asks for a process
// ID issued by pgone (transaction mode), unique among connected clients.
func (s *Server) registerCancelKey(ss *session, pid, secret uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if pid == 0 {
			var b [4]byte
			_, _ = rand.Read(b[:])
			pid = binary.BigEndian.Uint32(b[:])&0x7fffffff | 1<<30
		}
		key := cancelKey{pid: pid, secret: secret}
		if _, taken := s.cancelKeys[key]; !taken {
			ss.cancelKey = key
			s.cancelKeys[key] = ss
			return
		}
		pid = 0
	}
}

func (s *Server) countPin(reason string) {
	s.mu.Lock()
	s.pins[reason]++
	s.mu.Unlock()
}

func (s *Server) cachedParams(key pool.Key) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.params[key]
}

func (s *Server) storeParams(key pool.Key, reported map[string]string) {
	c := make(map[string]string, len(reported))
	for k, v := range reported {
		c[k] = v
	}
	s.mu.Lock()
	s.params[key] = c
	s.mu.Unlock()
}

// learnParams returns a function that unlocks; until then, while the pool's
// parameters are unknown, other callers for key wait. Once they are known it
// does not block. The returned function may be called more than once.
func (s *Server) learnParams(key pool.Key) (unlock func()) {
	s.mu.Lock()
	if s.params[key] != nil {
		s.mu.Unlock()
		return func() {}
	}
	l := s.learning[key]
	if l == nil {
		l = &sync.Mutex{}
		s.learning[key] = l
	}
	s.mu.Unlock()
	l.Lock()
	var once sync.Once
	return func() { once.Do(l.Unlock) }
}

// statementName is the current server-side name for a base statement name.
func (s *Server) statementName(base string) string {
	if m := s.retired.Load(); m != nil {
		if n := (*m)[base]; n > 0 {
			return base + "_" + strconv.FormatUint(n, 36)
		}
	}
	return base
}

// retireStatement makes every server's copy of base stale.
func (s *Server) retireStatement(base string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := map[string]uint64{}
	if m := s.retired.Load(); m != nil {
		for k, v := range *m {
			next[k] = v
		}
	}
	next[base]++
	s.retired.Store(&next)
}
