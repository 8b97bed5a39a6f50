package pgtest

import (
	"context"
	"testing"
	"time"
)

// startTimeout bounds how long New and NewRedis wait for servers.
const startTimeout = 2 * time.Minute

// New starts a cluster for a test and stops it in t.Cleanup. Progress goes
// to t.Logf unless opts.Logf is set. A missing binary fails the test with the
// install hint; it never skips, so CI cannot pass without PostgreSQL.
func New(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	c, err := StartCluster(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return c
}

// NewRedis starts redis-server for a test and stops it in t.Cleanup. A
// missing binary fails the test; it never skips.
func NewRedis(t testing.TB) *Redis {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	r, err := StartRedis(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Stop(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return r
}
