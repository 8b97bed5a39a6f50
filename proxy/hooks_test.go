package proxy_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy"
)

// fakeHooks is a hand-written test double of proxy.Hooks: it answers the
// texts it has canned replies for, panics where told, and records every
// call.
type fakeHooks struct {
	canned  map[string][]byte
	panicOn string

	mu      sync.Mutex
	planned [][]proxy.StatementPlan // BeforeSend's views, in order
	replies chan afterReply
	commits chan proxy.CommitInfo
}

type afterReply struct {
	texts  []string
	sample proxy.ReplySample // Frames cleared: valid only during the call
	frames []byte            // a copy of sample.Frames
	kinds  []byte            // the frames' message types, by All
}

func newFakeHooks() *fakeHooks {
	return &fakeHooks{canned: map[string][]byte{},
		replies: make(chan afterReply, 100), commits: make(chan proxy.CommitInfo, 100)}
}

func statements(p *proxy.PlanView) []proxy.StatementPlan {
	var out []proxy.StatementPlan
	for i := 0; i < p.Len(); i++ {
		out = append(out, p.Statement(i))
	}
	return out
}

func (f *fakeHooks) BeforeSend(_ context.Context, p *proxy.PlanView) ([]byte, bool) {
	stmts := statements(p)
	f.mu.Lock()
	f.planned = append(f.planned, stmts)
	f.mu.Unlock()
	if len(stmts) != 1 {
		return nil, false
	}
	if stmts[0].Text == f.panicOn {
		panic("hook failure")
	}
	answer, ok := f.canned[stmts[0].Text]
	return answer, ok
}

func (f *fakeHooks) AfterReply(_ context.Context, p *proxy.PlanView, r proxy.ReplySample) {
	var texts []string
	for _, st := range statements(p) {
		texts = append(texts, st.Text)
	}
	got := afterReply{texts: texts, frames: r.Frames.AppendTo(nil)}
	for typ := range r.Frames.All() {
		got.kinds = append(got.kinds, typ)
	}
	if !r.Frames.Complete() {
		got.frames = nil
	}
	r.Frames = proxy.ReplyFrames{}
	got.sample = r
	f.replies <- got
	if slices.Contains(texts, f.panicOn) {
		panic("hook failure")
	}
}

func (f *fakeHooks) AfterCommit(_ context.Context, c proxy.CommitInfo) { f.commits <- c }

// WantsCommitLSN asks for CommitInfo.LSN (proxy.CommitLSNHooks).
func (f *fakeHooks) WantsCommitLSN() bool { return true }

// lastPlanned returns the statements BeforeSend last saw.
func (f *fakeHooks) lastPlanned() []proxy.StatementPlan {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.planned) == 0 {
		return nil
	}
	return f.planned[len(f.planned)-1]
}

// replyTo waits for AfterReply of the request made of text alone.
func (f *fakeHooks) replyTo(t *testing.T, text string) afterReply {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case r := <-f.replies:
			if len(r.texts) == 1 && r.texts[0] == text {
				return r
			}
		case <-timeout:
			t.Fatalf("no AfterReply for %q", text)
		}
	}
}

// nextCommit waits for the next AfterCommit.
func (f *fakeHooks) nextCommit(t *testing.T) proxy.CommitInfo {
	t.Helper()
	select {
	case c := <-f.commits:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no AfterCommit")
	}
	return proxy.CommitInfo{}
}

// decodeReplies decodes frames as a client would, with pgproto3.
func decodeReplies(t *testing.T, frames []byte) []pgproto3.BackendMessage {
	t.Helper()
	fe := pgproto3.NewFrontend(bytes.NewReader(frames), io.Discard)
	var out []pgproto3.BackendMessage
	for {
		m, err := fe.Receive()
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
			return out
		}
		if err != nil {
			t.Fatalf("decoding the hook's frames: %v", err)
		}
		switch m := m.(type) { // Receive reuses its messages: keep copies
		case *pgproto3.DataRow:
			c := &pgproto3.DataRow{}
			for _, v := range m.Values {
				c.Values = append(c.Values, slices.Clone(v))
			}
			out = append(out, c)
		case *pgproto3.CommandComplete:
			out = append(out, &pgproto3.CommandComplete{CommandTag: slices.Clone(m.CommandTag)})
		case *pgproto3.ReadyForQuery:
			out = append(out, &pgproto3.ReadyForQuery{TxStatus: m.TxStatus})
		case *pgproto3.ErrorResponse:
			out = append(out, &pgproto3.ErrorResponse{Code: m.Code})
		default:
			out = append(out, m)
		}
	}
}

// primaryLSN is the primary's current WAL insert position, asked directly.
func primaryLSN(t *testing.T, ctx context.Context) pool.LSN {
	t.Helper()
	conn := connect(t, directDSN())
	var text string
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&text); err != nil {
		t.Fatal(err)
	}
	lsn, err := pool.ParseLSN(text)
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

// cannedReply is a one-row, one-text-column result and ReadyForQuery.
func cannedReply(t *testing.T, value string) []byte {
	t.Helper()
	var out []byte
	for _, m := range []pgproto3.BackendMessage{
		&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("v"), DataTypeOID: 25, DataTypeSize: -1, TypeModifier: -1}}},
		&pgproto3.DataRow{Values: [][]byte{[]byte(value)}},
		&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")},
		&pgproto3.ReadyForQuery{TxStatus: 'I'},
	} {
		var err error
		if out, err = m.Encode(out); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestTxModeHooks: through a pgx client in transaction mode, BeforeSend
// sees the request's plan and may answer it without a server; AfterReply
// sees the reply frames the client got, the outcome, rows, bytes, server
// and wait time once the reply is in; AfterCommit sees the tables a
// committed transaction wrote and a position covering its commit, and is
// not called for one rolled back; a hook that panics does not fail the
// request.
func TestTxModeHooks(t *testing.T) {
	t.Parallel()
	hooks := newFakeHooks()
	const cachedSQL = "SELECT 'from the server'"
	hooks.canned[cachedSQL] = cannedReply(t, "from the hook")
	hooks.panicOn = "SELECT 'hook panics'"
	p := startObservedProxy(t, func(c *config.Config) {
		c.Pool.Mode = pool.ModeTransaction
		// A replica monitor: the commit LSN is learnt as read-your-writes learns it.
		db := c.Proxy.Databases[appDB]
		db.Replicas = []proxy.Replica{{Host: cluster.Replica.Host, Port: cluster.Replica.Port}}
		c.Proxy.Databases[appDB] = db
	}, func(s *proxy.Server) { s.SetHooks(hooks) })
	ctx := testCtx(t)
	conn := p.Connect(t)
	simple := pgx.QueryExecModeSimpleProtocol

	t.Run("before send answers", func(t *testing.T) {
		var got string
		if err := conn.QueryRow(ctx, cachedSQL, simple).Scan(&got); err != nil || got != "from the hook" {
			t.Fatalf("%s = %q, %v; want the hook's canned answer", cachedSQL, got, err)
		}
		plan := hooks.lastPlanned()
		if len(plan) != 1 || plan[0].Text != cachedSQL || !plan[0].Cacheable || plan[0].Fingerprint == 0 {
			t.Errorf("BeforeSend saw %+v; want the one cacheable statement with its fingerprint", plan)
		}
	})

	t.Run("unnamed statement of an earlier request", func(t *testing.T) {
		// pgx's describe-exec mode parses the unnamed statement in one
		// request and binds it in the next: BeforeSend sees what runs.
		const sql = "SELECT $1::int + 40"
		var got int
		if err := conn.QueryRow(ctx, sql, pgx.QueryExecModeDescribeExec, 2).Scan(&got); err != nil || got != 42 {
			t.Fatalf("%s = %d, %v; want 42", sql, got, err)
		}
		if plan := hooks.lastPlanned(); len(plan) != 1 || plan[0].Text != sql {
			t.Errorf("BeforeSend of the Bind's request saw %+v; want the statement %q", plan, sql)
		}
	})

	t.Run("after reply", func(t *testing.T) {
		const sql = "SELECT g FROM generate_series(1, 3) g"
		rows, err := conn.Query(ctx, sql, simple)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			n++
		}
		if rows.Err() != nil || n != 3 {
			t.Fatalf("%s: %d rows, %v", sql, n, rows.Err())
		}
		r := hooks.replyTo(t, sql)
		s := r.sample
		if s.Rows != 3 || s.Bytes <= 0 || s.ServerTime <= 0 || s.WaitTime <= 0 || s.TxStatus != 'I' || s.Outcome != proxy.OutcomeOK {
			t.Errorf("AfterReply sample %+v; want 3 rows, bytes, server and wait time, status I, outcome ok", s)
		}
		if len(r.frames) != s.Bytes {
			t.Fatalf("AfterReply frames: %d bytes (complete: %v), want the %d bytes forwarded", len(r.frames), r.frames != nil, s.Bytes)
		}
		msgs := decodeReplies(t, r.frames)
		var values []string
		for _, m := range msgs {
			if dr, ok := m.(*pgproto3.DataRow); ok {
				values = append(values, string(dr.Values[0]))
			}
		}
		if !slices.Equal(values, []string{"1", "2", "3"}) || len(msgs) != 6 || len(r.kinds) != 6 {
			t.Errorf("AfterReply frames decode to %d messages %+v (All: %q), rows %q; want the client's rows 1, 2, 3", len(msgs), msgs, r.kinds, values)
		}
		if _, ok := msgs[0].(*pgproto3.RowDescription); !ok || string(r.kinds) != "TDDDCZ" {
			t.Errorf("AfterReply frames: %q; want RowDescription, 3 DataRows, CommandComplete, ReadyForQuery", r.kinds)
		}
		if cc, ok := msgs[4].(*pgproto3.CommandComplete); !ok || string(cc.CommandTag) != "SELECT 3" {
			t.Errorf("AfterReply frames: %+v; want CommandComplete SELECT 3", msgs[4])
		}
	})

	t.Run("after reply of an error", func(t *testing.T) {
		const sql = "SELECT 1/0"
		if _, err := conn.Exec(ctx, sql, simple); err == nil {
			t.Fatalf("%s succeeded", sql)
		}
		r := hooks.replyTo(t, sql)
		msgs := decodeReplies(t, r.frames)
		er, ok := msgs[0].(*pgproto3.ErrorResponse)
		if r.sample.Outcome != proxy.OutcomeError || r.sample.Rows != 0 || !ok || er.Code != "22012" || len(msgs) != 2 {
			t.Errorf("AfterReply of %s: %+v, frames %+v; want outcome error, the 22012 ErrorResponse and ReadyForQuery", sql, r.sample, msgs)
		}
	})

	t.Run("after commit", func(t *testing.T) {
		exec := func(sql string) {
			t.Helper()
			if _, err := conn.Exec(ctx, sql, simple); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
		}
		exec("CREATE TABLE hook_items (id int); CREATE TABLE hook_other (id int)")
		if c := hooks.nextCommit(t); !slices.Equal(c.WriteTables, []string{"hook_items", "hook_other"}) {
			t.Errorf("AfterCommit of the CREATE TABLEs: %+v", c)
		}
		exec("BEGIN")
		exec("INSERT INTO hook_other VALUES (1)")
		exec("ROLLBACK")
		exec("BEGIN")
		exec("INSERT INTO hook_items VALUES (1)")
		before := primaryLSN(t, ctx) // the INSERT's record is in; its commit record is not
		exec("COMMIT")
		c := hooks.nextCommit(t) // the rolled-back transaction, had it been reported, would come first
		after := primaryLSN(t, ctx)
		if !slices.Equal(c.WriteTables, []string{"hook_items"}) || c.Database != appDB || c.User != appUser {
			t.Errorf("AfterCommit %+v; want hook_items written by %s in %s (and nothing for the rollback)", c, appUser, appDB)
		}
		if c.LSN <= before || c.LSN > after {
			t.Errorf("AfterCommit LSN %s; want past %s (before the COMMIT) and at most %s (after it)", c.LSN, before, after)
		}
	})

	t.Run("a panicking hook", func(t *testing.T) {
		var got string
		if err := conn.QueryRow(ctx, hooks.panicOn, simple).Scan(&got); err != nil || got != "hook panics" {
			t.Fatalf("%s = %q, %v; want the server's answer despite the hook", hooks.panicOn, got, err)
		}
		hooks.replyTo(t, hooks.panicOn)
		if err := conn.QueryRow(ctx, "SELECT 'still here'", simple).Scan(&got); err != nil || got != "still here" {
			t.Fatalf("after a panicking hook: %q, %v", got, err)
		}
	})
}
