package proxy_test

import (
	"context"
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
	sample proxy.ReplySample
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
	f.replies <- afterReply{texts, r}
	if slices.Contains(texts, f.panicOn) {
		panic("hook failure")
	}
}

func (f *fakeHooks) AfterCommit(_ context.Context, c proxy.CommitInfo) { f.commits <- c }

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
func (f *fakeHooks) replyTo(t *testing.T, text string) proxy.ReplySample {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case r := <-f.replies:
			if len(r.texts) == 1 && r.texts[0] == text {
				return r.sample
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
// sees rows, bytes, server and wait time once the reply is in; AfterCommit
// sees the tables a committed transaction wrote, and is not called for one
// rolled back; a hook that panics does not fail the request.
func TestTxModeHooks(t *testing.T) {
	t.Parallel()
	hooks := newFakeHooks()
	const cachedSQL = "SELECT 'from the server'"
	hooks.canned[cachedSQL] = cannedReply(t, "from the hook")
	hooks.panicOn = "SELECT 'hook panics'"
	p := startObservedProxy(t, func(c *config.Config) {
		c.Pool.Mode = pool.ModeTransaction
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
		s := hooks.replyTo(t, sql)
		if s.Rows != 3 || s.Bytes <= 0 || s.ServerTime <= 0 || s.WaitTime <= 0 || s.TxStatus != 'I' || s.Failed {
			t.Errorf("AfterReply sample %+v; want 3 rows, bytes, server and wait time, status I", s)
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
		exec("COMMIT")
		c := hooks.nextCommit(t) // the rolled-back transaction, had it been reported, would come first
		if !slices.Equal(c.WriteTables, []string{"hook_items"}) || c.Database != appDB || c.User != appUser {
			t.Errorf("AfterCommit %+v; want hook_items written by %s in %s (and nothing for the rollback)", c, appUser, appDB)
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
