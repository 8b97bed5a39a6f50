package cache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// The logical replication consumer (cache.invalidation: logical): one
// stream per PostgreSQL database, from its primary, with pgoutput. Every
// committed Insert, Update, Delete or Truncate bumps its table's version
// with the transaction's end LSN, so writes that bypass pgone invalidate
// the cache too, within the stream's lag. The stream runs on two
// connections: the replication one (replication=database), and a plain one
// that creates the publication and samples the primary's flush LSN, which
// is what the lag is measured against (logical_state.go). While the
// stream is down or further behind than max lag, the database is bypassed;
// after it was down, its entries are flushed when it catches up.

// LogicalSource configures one database's stream.
type LogicalSource struct {
	// Database is the cache database name the versions are kept under.
	Database string
	// Conn is the plain connection's config (host, port, database, login,
	// TLS); the replication connection is the same with replication=database.
	Conn *pgconn.Config
	// Dial, if set, is asked for Conn at every connect instead: a database
	// whose primary moves (failover) gives the current primary, and an
	// error (no primary known) keeps the database bypassed until a later
	// connect succeeds.
	Dial func() (*pgconn.Config, error)
	// Publication to read; Create: pgone creates it FOR ALL TABLES if
	// missing.
	Publication string
	Create      bool
	// Slot is a permanent slot (created if missing); empty: a temporary one.
	Slot   string
	MaxLag time.Duration
	// Names maps a relation (schema, name as in the catalog) to the table
	// names the cache keeps versions under; nil: the name in lower case.
	Names func(schema, name string) []string
	Log   *slog.Logger
}

// Feed is one running stream. It is started by Cache.StartLogical and
// owned by the cache until Stop.
type Feed struct {
	c      *Cache
	src    LogicalSource
	db     string
	maxLag time.Duration
	cancel context.CancelFunc
	done   chan struct{}
	// redial cuts the backoff short after Redial.
	redial chan struct{}

	// attempt cancels the current connection's stream (Redial); guarded
	// by mu.
	attempt context.CancelFunc

	mu sync.Mutex
	st feedState
}

// StartLogical starts db's stream, unless one runs already (then it is
// returned). The database is bypassed until the stream has caught up.
func (c *Cache) StartLogical(src LogicalSource) *Feed {
	c.feeds.mu.Lock()
	defer c.feeds.mu.Unlock()
	if f := c.feeds.m[src.Database]; f != nil {
		return f
	}
	if c.feeds.m == nil {
		c.feeds.m = map[string]*Feed{}
	}
	if src.Log == nil {
		src.Log = slog.New(slog.DiscardHandler)
	}
	if src.Names == nil {
		src.Names = func(_, name string) []string { return []string{strings.ToLower(name)} }
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Feed{c: c, src: src, db: src.Database, maxLag: src.MaxLag, cancel: cancel, done: make(chan struct{}),
		redial: make(chan struct{}, 1)}
	f.st.needFlush = true
	f.holdLocked()
	c.feeds.m[src.Database] = f
	go f.run(ctx)
	return f
}

// Stop ends the stream and waits for it; the database stays bypassed.
func (f *Feed) Stop() {
	f.cancel()
	<-f.done
}

// probeEvery is how often the primary's flush LSN is sampled: often enough
// that a stream within its bound is seen as such.
func (f *Feed) probeEvery() time.Duration {
	return min(max(f.maxLag/4, 5*time.Millisecond), time.Second)
}

func (f *Feed) run(ctx context.Context) {
	defer close(f.done)
	watchdog := make(chan struct{})
	defer func() { <-watchdog }()
	go f.watch(ctx, watchdog)
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		began := time.Now()
		actx, acancel := context.WithCancel(ctx)
		f.mu.Lock()
		f.attempt = acancel
		f.mu.Unlock()
		err := f.stream(actx)
		if actx.Err() != nil && ctx.Err() == nil {
			err = errRedial // not the stream's failure: Redial cut it
		}
		acancel()
		f.setConnected(false, err)
		if ctx.Err() != nil {
			return
		}
		if err == errRedial {
			f.src.Log.Info("cache: logical replication stream reconnecting to the new primary; database bypassed until it has caught up",
				"database", f.db)
		} else {
			f.src.Log.Warn("cache: logical replication stream lost; database bypassed until it is back",
				"database", f.db, "err", err)
		}
		if time.Since(began) > 10*time.Second {
			backoff = 50 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-f.redial:
			backoff = 50 * time.Millisecond
			continue
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// watch re-evaluates the stream's standing every probe interval, so a
// stream stuck anywhere (a probe waiting on a slow primary, a connect)
// is held once its bound passes, not when the stuck call returns.
func (f *Feed) watch(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(f.probeEvery())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			f.evaluate(now)
		}
	}
}

// errRedial is why a stream that Redial cut stopped.
var errRedial = errors.New("the primary changed: reconnecting")

// Redial drops the stream's connection and connects again at once,
// asking Dial for the server: the database's primary changed. The
// database is bypassed from now until the new stream has caught up, and
// its entries are flushed then.
func (f *Feed) Redial() {
	f.mu.Lock()
	cancel := f.attempt
	f.mu.Unlock()
	f.setConnected(false, errRedial)
	if cancel != nil {
		cancel()
	}
	select {
	case f.redial <- struct{}{}:
	default:
	}
}

// RedialFeed redials db's stream (Feed.Redial), if one runs.
func (c *Cache) RedialFeed(db string) {
	c.feeds.mu.Lock()
	f := c.feeds.m[db]
	c.feeds.mu.Unlock()
	if f != nil {
		f.Redial()
	}
}

// connConfig is the config of the next connect.
func (f *Feed) connConfig() (*pgconn.Config, error) {
	if f.src.Dial != nil {
		return f.src.Dial()
	}
	if f.src.Conn == nil {
		return nil, errors.New("no connection configured")
	}
	return f.src.Conn, nil
}

// stream connects, starts replication and applies it until an error or
// ctx ends.
func (f *Feed) stream(ctx context.Context) error {
	conn, err := f.connConfig()
	if err != nil {
		return err
	}
	plain, err := pgconn.ConnectConfig(ctx, conn)
	if err != nil {
		return err
	}
	defer plain.Close(context.Background())
	rcfg := conn.Copy()
	rcfg.RuntimeParams["replication"] = "database"
	rcfg.RuntimeParams["application_name"] = "pgone cache invalidation"
	repl, err := pgconn.ConnectConfig(ctx, rcfg)
	if err != nil {
		return err
	}
	defer repl.Close(context.Background())
	slot, err := f.setup(ctx, plain, repl)
	if err != nil {
		return err
	}
	args := []string{"proto_version '1'", "publication_names '" + f.src.Publication + "'"}
	if err := pglogrepl.StartReplication(ctx, repl, slot, 0, pglogrepl.StartReplicationOptions{PluginArgs: args}); err != nil {
		return fmt.Errorf("START_REPLICATION: %w", err)
	}
	f.setConnected(true, nil)
	f.src.Log.Info("cache: logical replication stream started", "database", f.db, "slot", slot,
		"publication", f.src.Publication)
	a := applier{f: f, rels: map[uint32]relation{}, touched: map[uint32]bool{}}
	return a.loop(ctx, plain, repl)
}

// setup makes sure the publication and the slot exist; it returns the
// slot's name.
func (f *Feed) setup(ctx context.Context, plain, repl *pgconn.PgConn) (string, error) {
	if f.src.Create {
		exists, err := queryBool(ctx, plain, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = '"+f.src.Publication+"')")
		if err != nil {
			return "", err
		}
		if !exists {
			if err := checkReplicaIdentities(ctx, plain); err != nil {
				return "", err
			}
			if _, err := plain.Exec(ctx, "CREATE PUBLICATION "+f.src.Publication+" FOR ALL TABLES").ReadAll(); err != nil {
				var pgErr *pgconn.PgError
				if !errors.As(err, &pgErr) || pgErr.Code != "42710" { // created concurrently by another pgone
					return "", fmt.Errorf("CREATE PUBLICATION %s: %w", f.src.Publication, err)
				}
			}
		}
	}
	opts := pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "NOEXPORT_SNAPSHOT"}
	if f.src.Slot == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		opts.Temporary = true
		name := "pgone_cache_" + hex.EncodeToString(b[:])
		_, err := pglogrepl.CreateReplicationSlot(ctx, repl, name, "pgoutput", opts)
		return name, err
	}
	exists, err := queryBool(ctx, plain, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = '"+f.src.Slot+"')")
	if err != nil || exists {
		return f.src.Slot, err
	}
	_, err = pglogrepl.CreateReplicationSlot(ctx, repl, f.src.Slot, "pgoutput", opts)
	return f.src.Slot, err
}

// noIdentityQuery lists the tables whose UPDATE and DELETE would fail
// once in a publication that publishes them: no replica identity.
const noIdentityQuery = "SELECT coalesce(pg_catalog.string_agg(c.oid::pg_catalog.regclass::text, ', ' ORDER BY 1), '')" +
	" FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace" +
	" WHERE c.relkind = 'r' AND c.relpersistence = 'p' AND n.nspname NOT IN ('pg_catalog', 'information_schema')" +
	" AND n.nspname NOT LIKE 'pg\\_toast%' AND (c.relreplident = 'n' OR (c.relreplident = 'd' AND NOT EXISTS" +
	" (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)))"

// checkReplicaIdentities refuses to create the publication FOR ALL
// TABLES while a table has no replica identity: PostgreSQL would then
// fail the application's UPDATEs and DELETEs on it. The stream stays down
// (the database uncached) and says why until it is fixed.
func checkReplicaIdentities(ctx context.Context, c *pgconn.PgConn) error {
	res, err := c.Exec(ctx, noIdentityQuery).ReadAll()
	if err != nil {
		return err
	}
	if len(res) == 1 && len(res[0].Rows) == 1 && len(res[0].Rows[0][0]) > 0 {
		return fmt.Errorf("not creating publication %s FOR ALL TABLES: UPDATE and DELETE would fail on tables without a replica identity (%s);"+
			" give them a primary key or REPLICA IDENTITY FULL, or create a publication yourself and name it in cache.publication",
			DefaultPublication, res[0].Rows[0][0])
	}
	return nil
}

func queryBool(ctx context.Context, c *pgconn.PgConn, sql string) (bool, error) {
	res, err := c.Exec(ctx, sql).ReadAll()
	if err != nil {
		return false, err
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) != 1 {
		return false, fmt.Errorf("%s: unexpected result", sql)
	}
	return string(res[0].Rows[0][0]) == "t", nil
}

// applier applies one connection's stream; it belongs to its goroutine.
type applier struct {
	f    *Feed
	rels map[uint32]relation // by OID, from Relation messages
	inTx bool
	// touched are the relations the current transaction changed; unknown
	// says it changed one whose name was never sent (bump the epoch).
	touched map[uint32]bool
	unknown bool
}

type relation struct{ schema, name string }

func (a *applier) loop(ctx context.Context, plain, repl *pgconn.PgConn) error {
	every := a.f.probeEvery()
	next := time.Now()
	for {
		if now := time.Now(); !now.Before(next) {
			if err := a.tick(ctx, plain, repl); err != nil {
				return err
			}
			next = now.Add(every)
		}
		rctx, cancel := context.WithDeadline(ctx, next)
		msg, err := repl.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if pgconn.Timeout(err) {
				continue
			}
			return err
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if err := a.copyData(ctx, repl, m.Data); err != nil {
				return err
			}
		case *pgproto3.ErrorResponse:
			return pgconn.ErrorResponseToPgError(m)
		case *pgproto3.CopyDone:
			return errors.New("the server ended the replication stream")
		}
	}
}

// tick samples the primary's flush LSN, asks the stream for a keepalive
// (whose position, once applied, proves the stream reached the sample)
// and holds or releases the database.
func (a *applier) tick(ctx context.Context, plain, repl *pgconn.PgConn) error {
	pctx, cancel := context.WithTimeout(ctx, max(a.f.maxLag, time.Second))
	res, err := plain.Exec(pctx, "SELECT pg_catalog.pg_current_wal_flush_lsn()").ReadAll()
	cancel()
	if err != nil {
		return fmt.Errorf("sampling the primary's flush LSN: %w", err)
	}
	if len(res) == 1 && len(res[0].Rows) == 1 && len(res[0].Rows[0]) == 1 {
		if lsn, err := pglogrepl.ParseLSN(string(res[0].Rows[0][0])); err == nil {
			a.f.probed(LSN(lsn), time.Now())
		}
	}
	if err := a.status(ctx, repl, true); err != nil {
		return err
	}
	a.f.evaluate(time.Now())
	return nil
}

// status sends a standby status update with the applied position.
func (a *applier) status(ctx context.Context, repl *pgconn.PgConn, reply bool) error {
	a.f.mu.Lock()
	pos := pglogrepl.LSN(a.f.st.applied)
	a.f.mu.Unlock()
	return pglogrepl.SendStandbyStatusUpdate(ctx, repl, pglogrepl.StandbyStatusUpdate{WALWritePosition: pos, ReplyRequested: reply})
}

func (a *applier) copyData(ctx context.Context, repl *pgconn.PgConn, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		k, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return err
		}
		if a.inTx {
			a.f.touch(time.Now())
		} else {
			// Every transaction that committed before ServerWALEnd was sent.
			a.f.advance(LSN(k.ServerWALEnd), time.Now())
		}
		if k.ReplyRequested {
			return a.status(ctx, repl, false)
		}
	case pglogrepl.XLogDataByteID:
		x, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return err
		}
		m, err := pglogrepl.Parse(x.WALData)
		if err != nil {
			return err
		}
		a.apply(m)
	}
	return nil
}

// apply handles one pgoutput message.
func (a *applier) apply(m pglogrepl.Message) {
	switch m := m.(type) {
	case *pglogrepl.RelationMessage:
		a.rels[m.RelationID] = relation{m.Namespace, m.RelationName}
	case *pglogrepl.BeginMessage:
		a.inTx, a.unknown = true, false
		clear(a.touched)
	case *pglogrepl.InsertMessage:
		a.changed(m.RelationID)
	case *pglogrepl.UpdateMessage:
		a.changed(m.RelationID)
	case *pglogrepl.DeleteMessage:
		a.changed(m.RelationID)
	case *pglogrepl.TruncateMessage:
		for _, id := range m.RelationIDs {
			a.changed(id)
		}
	case *pglogrepl.CommitMessage:
		a.commit(LSN(m.TransactionEndLSN))
	}
	a.f.touch(time.Now())
}

func (a *applier) changed(rel uint32) {
	if _, ok := a.rels[rel]; !ok {
		a.unknown = true
		return
	}
	a.touched[rel] = true
}

// commit bumps what the transaction changed at its end LSN: a replica
// that replayed that far has the commit. Names are looked up now, so a
// catalog loaded since the Relation message counts.
func (a *applier) commit(end LSN) {
	v := a.f.c.versions
	if a.unknown {
		v.BumpEpoch(a.f.db, end, CauseEpoch)
	}
	var names []string
	for oid := range a.touched {
		r := a.rels[oid]
		names = append(names, a.f.src.Names(r.schema, r.name)...)
	}
	if len(names) > 0 {
		slices.Sort(names)
		v.Bump(a.f.db, slices.Compact(names), end)
	}
	a.inTx, a.unknown = false, false
	clear(a.touched)
	a.f.advance(end, time.Now())
}

// touch records that the stream is alive.
func (f *Feed) touch(now time.Time) {
	f.mu.Lock()
	f.st.lastMsg = now
	f.mu.Unlock()
}
