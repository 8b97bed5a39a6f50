package proxy

import (
	"io"
	"log/slog"
	"testing"

	"github.com/pgone/pgone/router"
)

// TestFunctionsLoadRacingInvalidation: a pg_proc load that began before an
// invalidation (DDL committed while it ran) must not store what it read:
// the function it saw stable may be volatile now. A load begun after the
// invalidation stores. The interleaving is forced step by step.
func TestFunctionsLoadRacingInvalidation(t *testing.T) {
	t.Parallel()
	kicks := 0
	c := &catalog{log: slog.New(slog.NewTextHandler(io.Discard, nil)), kick: func() { kicks++ }}
	volatility := func() byte {
		f := c.Functions()
		if f == nil {
			return 0
		}
		v, _ := f.Volatility("twice")
		return v
	}
	if !c.store(c.begin(), router.ProcVolatility{"twice": 'i'}, nil) {
		t.Fatal("a load with no invalidation since it began was not stored")
	}
	stale := c.begin() // reads pg_proc before the DDL commits
	c.refresh()        // the DDL committed: invalidate
	if c.Functions() != nil || kicks != 1 {
		t.Fatalf("after refresh: %v, %d loads asked for; want nil (unknown) until the next load, asked for once", c.Functions(), kicks)
	}
	if c.store(stale, router.ProcVolatility{"twice": 'i'}, nil) {
		t.Error("a load begun before the invalidation was stored")
	}
	if f := c.Functions(); f != nil {
		t.Fatalf("after the stale load: volatility %v, want nil: twice would be routed as immutable", f)
	}
	if !c.store(c.begin(), router.ProcVolatility{"twice": 'v'}, nil) || volatility() != 'v' {
		t.Errorf("a load begun after the invalidation: %v, want twice volatile", c.Functions())
	}
}
