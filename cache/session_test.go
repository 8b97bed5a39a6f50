package cache

import (
	"context"
	"testing"
)

func TestSessionReadWriteCycle(t *testing.T) {
	c := newTestCache(t, nil)
	ctx := context.Background()
	read := &KeyInput{Database: "app", Role: "alice", Text: "select sum(abalance) from accounts"}
	tables := []string{"accounts"}

	reader := c.NewSession()
	if _, hit := reader.Lookup(ctx, read, tables); hit || !reader.Pending() {
		t.Fatal("first lookup hit")
	}
	if r := reader.Store([]byte("sum"), 0, Origin{}); r != RefuseNone {
		t.Fatalf("fill refused: %s", r)
	}
	if reply, hit := reader.Lookup(ctx, read, tables); !hit || string(reply) != "sum" {
		t.Fatalf("second lookup: %q %v", reply, hit)
	}

	writer := c.NewSession()
	writer.Write("app", tables, false)
	if _, hit := reader.Lookup(ctx, read, tables); hit {
		t.Fatal("hit while a writer of the table is in flight")
	}
	reader.Abandon()
	writer.RolledBack()
	if _, hit := reader.Lookup(ctx, read, tables); !hit {
		t.Fatal("miss after the writer rolled back")
	}
	writer.Write("app", tables, false)
	writer.Committed(10, nil)
	if _, hit := reader.Lookup(ctx, read, tables); hit {
		t.Fatal("hit after a commit to the table")
	}
	reader.Close()
	if reader.Pending() || c.flights.inFlight() != 0 {
		t.Fatal("Close left a fill or a flight behind")
	}
}

// TestSessionCloseEndsMarks: a session that leaves mid-transaction does
// not keep its tables out of the cache, and counts as a commit.
func TestSessionCloseEndsMarks(t *testing.T) {
	c := newTestCache(t, nil)
	ctx := context.Background()
	read := &KeyInput{Database: "app", Text: "select * from accounts"}
	r := c.NewSession()
	r.Lookup(ctx, read, []string{"accounts"})
	r.Store([]byte("rows"), 0, Origin{})

	w := c.NewSession()
	w.Write("app", nil, true) // DDL: the whole database
	if !w.InTransaction() {
		t.Fatal("no marks after Write")
	}
	w.Close()
	if _, hit := r.Lookup(ctx, read, []string{"accounts"}); hit {
		t.Fatal("hit after a session with a DDL in flight left: its outcome is unknown")
	}
	if r.Store([]byte("rows"), 0, Origin{}) != RefuseNone {
		t.Fatal("fill refused after the marks ended")
	}
	if _, hit := r.Lookup(ctx, read, []string{"accounts"}); !hit {
		t.Fatal("miss after a new fill")
	}
}
