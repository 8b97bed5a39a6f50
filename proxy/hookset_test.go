package proxy_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgone/pgone/cache"
	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy"
)

// secondHooks is a second test double beside fakeHooks: it does not ask
// for commit LSNs, answers its own canned texts, panics in AfterReply
// where told, and records what it is told of answers given by others.
type secondHooks struct {
	canned       map[string][]byte
	panicOnReply string
	asked        chan string // BeforeSend texts
	replies      chan string // AfterReply texts
	answered     chan proxy.ReplySample
	commits      chan proxy.CommitInfo
}

func newSecondHooks() *secondHooks {
	return &secondHooks{canned: map[string][]byte{}, asked: make(chan string, 100), replies: make(chan string, 100),
		answered: make(chan proxy.ReplySample, 100), commits: make(chan proxy.CommitInfo, 100)}
}

func onlyText(p *proxy.PlanView) string {
	if p.Len() != 1 {
		return ""
	}
	return p.Statement(0).Text
}

func (h *secondHooks) BeforeSend(_ context.Context, p *proxy.PlanView) ([]byte, bool) {
	h.asked <- onlyText(p)
	a, ok := h.canned[onlyText(p)]
	return a, ok
}

func (h *secondHooks) AfterReply(_ context.Context, p *proxy.PlanView, _ proxy.ReplySample) {
	if p.Len() > 0 {
		h.replies <- p.Statement(0).Text
	}
}

func (h *secondHooks) AfterCommit(_ context.Context, c proxy.CommitInfo) { h.commits <- c }

func (h *secondHooks) Answered(_ context.Context, p *proxy.PlanView, r proxy.ReplySample) {
	h.answered <- r
}

// panickyHooks panic in every call.
type panickyHooks struct{}

func (panickyHooks) BeforeSend(context.Context, *proxy.PlanView) ([]byte, bool) { panic("before send") }
func (panickyHooks) AfterReply(context.Context, *proxy.PlanView, proxy.ReplySample) {
	panic("after reply")
}
func (panickyHooks) AfterCommit(context.Context, proxy.CommitInfo) { panic("after commit") }
func (panickyHooks) Answered(context.Context, *proxy.PlanView, proxy.ReplySample) {
	panic("answered")
}

// drain returns what ch holds now.
func drain[T any](ch chan T) []T {
	var out []T
	for {
		select {
		case v := <-ch:
			out = append(out, v)
		default:
			return out
		}
	}
}

func waitFor[T any](t *testing.T, ch chan T, what string, ok func(T) bool) T {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case v := <-ch:
			if ok(v) {
				return v
			}
		case <-timeout:
			t.Fatalf("no %s", what)
		}
	}
}

// TestHookSetFanOut: three hooks run side by side, the middle one
// panicking in every call. The first answer wins and the later hooks are
// not asked but told (Answered); hooks whose BeforeSend panics leave the
// next one to answer; a panic in one hook's AfterReply, Answered or
// AfterCommit does not keep the others from theirs; a commit reaches both
// doubles, with the LSN only for the one that asked for it.
func TestHookSetFanOut(t *testing.T) {
	t.Parallel()
	first, second := newFakeHooks(), newSecondHooks()
	const firstSQL, secondSQL, plainSQL = "SELECT 'first answers'", "SELECT 'first panics'", "SELECT 'plain'"
	first.canned[firstSQL] = cannedReply(t, "from first")
	first.panicOn = secondSQL // BeforeSend panics, and so does AfterReply
	second.canned[secondSQL] = cannedReply(t, "from second")
	p := startObservedProxy(t, func(c *config.Config) {
		c.Pool.Mode = pool.ModeTransaction
		db := c.Proxy.Databases[appDB]
		db.Replicas = []proxy.Replica{{Host: cluster.Replica.Host, Port: cluster.Replica.Port}}
		c.Proxy.Databases[appDB] = db
	}, func(s *proxy.Server) {
		s.AddHooks(first)
		s.AddHooks(panickyHooks{})
		s.AddHooks(second)
	})
	ctx := testCtx(t)
	conn := p.Connect(t)
	simple := pgx.QueryExecModeSimpleProtocol
	query := func(sql string) string {
		t.Helper()
		var got string
		if err := conn.QueryRow(ctx, sql, simple).Scan(&got); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return got
	}

	if got := query(firstSQL); got != "from first" {
		t.Fatalf("%s = %q; want the first hook's answer", firstSQL, got)
	}
	r := waitFor(t, second.answered, "Answered", func(proxy.ReplySample) bool { return true })
	if r.Rows != 1 || r.Bytes != len(first.canned[firstSQL]) || r.Outcome != proxy.OutcomeOK {
		t.Errorf("Answered sample %+v; want 1 row and the answer's %d bytes", r, len(first.canned[firstSQL]))
	}
	if asked := drain(second.asked); slices.Contains(asked, firstSQL) {
		t.Errorf("the second hook was asked %q after the first answered it", firstSQL)
	}

	if got := query(secondSQL); got != "from second" {
		t.Fatalf("%s = %q; want the second hook's answer after the first panicked", secondSQL, got)
	}

	if got := query(plainSQL); got != "plain" {
		t.Fatalf("%s = %q", plainSQL, got)
	}
	first.replyTo(t, plainSQL)
	waitFor(t, second.replies, "AfterReply of "+plainSQL, func(s string) bool { return s == plainSQL })

	if _, err := conn.Exec(ctx, "CREATE TABLE hookset_items (id int)", simple); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { execDirect(t, "DROP TABLE IF EXISTS hookset_items") })
	c1 := first.nextCommit(t)
	c2 := waitFor(t, second.commits, "AfterCommit", func(proxy.CommitInfo) bool { return true })
	if !slices.Equal(c1.WriteTables, []string{"hookset_items"}) || !slices.Equal(c2.WriteTables, c1.WriteTables) {
		t.Errorf("AfterCommit: first %+v, second %+v; want hookset_items for both", c1, c2)
	}
	if c1.LSN == 0 || c2.LSN != 0 {
		t.Errorf("commit LSN: first %s, second %s; want it only for the hook that asked (CommitLSNHooks)", c1.LSN, c2.LSN)
	}
}

// TestHookSetWithCache: the cache and another hook side by side. The
// cache still answers hits (the other hook is told) and still sees writes
// inside a transaction, where BeforeSend is not called (its marks), so a
// commit invalidates what it had.
func TestHookSetWithCache(t *testing.T) {
	t.Parallel()
	cacheTable(t, "hookset_cached", 3)
	second := newSecondHooks()
	ccfg := cache.Config{Mode: cache.ModeRules, Rules: []cache.Rule{{Table: "hookset_cached"}}}
	ccfg.Defaults()
	c, err := cache.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := validConfig(t, baseConfig(), func(c *config.Config) { c.Pool.Mode = pool.ModeTransaction })
	p := serveProxy(t, cfg, testLog(), func(p *testProxy) {
		p.Srv.SetCache(c, ccfg)
		p.Srv.AddHooks(second)
	})
	ctx := testCtx(t)
	conn := p.Connect(t)
	simple := pgx.QueryExecModeSimpleProtocol
	const read = "SELECT v FROM hookset_cached WHERE id = 1"
	get := func() string {
		t.Helper()
		var v string
		if err := conn.QueryRow(ctx, read, simple).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	get() // fill
	waitFor(t, second.replies, "AfterReply of the fill", func(s string) bool { return s == read })
	if v := get(); v != "v0" || c.Stats().Hits != 1 {
		t.Fatalf("second read %q, hits %d; want a hit", v, c.Stats().Hits)
	}
	if r := waitFor(t, second.answered, "Answered of the hit", func(proxy.ReplySample) bool { return true }); r.Rows != 1 {
		t.Errorf("Answered of the hit: %+v; want 1 row", r)
	}
	for _, sql := range []string{"BEGIN", "UPDATE hookset_cached SET v = 'v1' WHERE id = 1", "COMMIT"} {
		if _, err := conn.Exec(ctx, sql, simple); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	if v := get(); v != "v1" {
		t.Fatalf("read after the committed UPDATE: %q; want v1 (the cache missed the write)", v)
	}
}
