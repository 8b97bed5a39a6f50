package cache

import (
	"sync"
	"sync/atomic"
	"testing"
)

// TestFillCheck: each step runs between a fill's token and its check.
func TestFillCheck(t *testing.T) {
	const db = "app"
	read := []string{"a", "b"}
	for _, tc := range []struct {
		name    string
		before  func(v *Versions, tx *Tx) // before the token
		between func(v *Versions, tx *Tx) // after the token, before the check
		replica bool
		replay  LSN
		want    Refusal
	}{
		{name: "nothing moved", want: RefuseNone},
		{name: "a table read bumped", between: func(v *Versions, _ *Tx) { v.Bump(db, []string{"b"}, 10) }, want: RefuseVersion},
		{name: "another table bumped", between: func(v *Versions, _ *Tx) { v.Bump(db, []string{"c"}, 10) }, want: RefuseNone},
		{name: "same table, other database", between: func(v *Versions, _ *Tx) { v.Bump("other", read, 10) }, want: RefuseNone},
		{name: "in flight at token", before: func(v *Versions, tx *Tx) { tx.Mark(v, db, []string{"a"}) }, want: RefuseInFlight},
		{name: "in flight at token, ended before check", before: func(v *Versions, tx *Tx) { tx.Mark(v, db, []string{"a"}) },
			between: func(_ *Versions, tx *Tx) { tx.End() }, want: RefuseInFlight},
		{name: "in flight at check", between: func(v *Versions, tx *Tx) { tx.Mark(v, db, []string{"a"}) }, want: RefuseInFlight},
		{name: "marked and rolled back", between: func(v *Versions, tx *Tx) { tx.Mark(v, db, []string{"a"}); tx.End() }, want: RefuseNone},
		{name: "marked and committed", between: func(v *Versions, tx *Tx) { tx.Mark(v, db, []string{"a"}); tx.Commit(5, nil) }, want: RefuseVersion},
		{name: "commit bumps also-written tables", between: func(v *Versions, tx *Tx) { tx.Mark(v, db, []string{"c"}); tx.Commit(5, []string{"b"}) }, want: RefuseVersion},
		{name: "database in flight", between: func(v *Versions, tx *Tx) { tx.MarkAll(v, db) }, want: RefuseInFlight},
		{name: "epoch bumped by commit", between: func(v *Versions, tx *Tx) { tx.MarkAll(v, db); tx.Commit(5, nil) }, want: RefuseVersion},
		{name: "epoch bumped", between: func(v *Versions, _ *Tx) { v.BumpEpoch(db, 5, CauseEpoch) }, want: RefuseVersion},
		{name: "other epoch bumped", between: func(v *Versions, _ *Tx) { v.BumpEpoch("other", 5, CauseEpoch) }, want: RefuseNone},
		{name: "all bumped", between: func(v *Versions, _ *Tx) { v.BumpAll(CauseFlush) }, want: RefuseVersion},
		{name: "replica behind the last invalidation", before: func(v *Versions, _ *Tx) { v.Bump(db, []string{"a"}, 100) },
			replica: true, replay: 99, want: RefuseReplicaLSN},
		{name: "replica at the last invalidation", before: func(v *Versions, _ *Tx) { v.Bump(db, []string{"a"}, 100) },
			replica: true, replay: 100, want: RefuseNone},
		{name: "replica behind an epoch bump", before: func(v *Versions, _ *Tx) { v.BumpEpoch(db, 200, CauseEpoch) },
			replica: true, replay: 150, want: RefuseReplicaLSN},
		{name: "primary ignores LSNs", before: func(v *Versions, _ *Tx) { v.Bump(db, []string{"a"}, 100) },
			replay: 0, want: RefuseNone},
		{name: "replica after an unknown LSN", before: func(v *Versions, _ *Tx) { v.Bump(db, []string{"b"}, UnknownLSN) },
			replica: true, replay: 1 << 40, want: RefuseReplicaLSN},
		{name: "bumps out of commit order keep the highest LSN", before: func(v *Versions, _ *Tx) {
			v.Bump(db, []string{"b"}, 300)
			v.Bump(db, []string{"b"}, 200)
		}, replica: true, replay: 250, want: RefuseReplicaLSN},
		{name: "a flush does not lower the LSN", before: func(v *Versions, _ *Tx) {
			v.BumpEpoch(db, 300, CauseEpoch)
			v.BumpEpoch(db, 0, CauseFlush)
		}, replica: true, replay: 250, want: RefuseReplicaLSN},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := NewVersions()
			v.Token(db, nil)                        // first sight of db: its past is unknown...
			v.ResolveUnknownLSN(v.UnknownMark(), 0) // ...until the primary is read
			var tx Tx
			if tc.before != nil {
				tc.before(v, &tx)
			}
			tok := v.Token(db, read)
			if tc.between != nil {
				tc.between(v, &tx)
			}
			if got := v.Check(&tok, tc.replica, tc.replay); got != tc.want {
				t.Fatalf("Check = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestTxMarksOnce: a table written twice in one transaction is in flight
// once, and one End releases it.
func TestTxMarksOnce(t *testing.T) {
	v := NewVersions()
	tok := v.Token("app", []string{"a"})
	e := newEntry(&tok, nil, 0)
	var tx Tx
	tx.Mark(v, "app", []string{"a"})
	tx.Mark(v, "app", []string{"a", "b"})
	tx.MarkAll(v, "app")
	tx.MarkAll(v, "app")
	tx.End()
	if !v.Valid(e) || tx.Active() {
		t.Fatal("marks left in flight after End")
	}
	tx.Mark(v, "app", []string{"a"})
	tx.Mark(v, "other", []string{"x"}) // another database: the first is committed, conservatively
	if v.Valid(e) {
		t.Fatal("switching databases did not bump the first one's marks")
	}
	tx.End()
	tok2 := v.Token("other", []string{"x"})
	if r := v.Check(&tok2, false, 0); r != RefuseNone {
		t.Fatalf("other database still in flight: %s", r)
	}
}

// TestValidEntry: an entry is served only while what it read is current
// and not in flight.
func TestValidEntry(t *testing.T) {
	v := NewVersions()
	tok := v.Token("app", []string{"b", "a", "b"})
	e := newEntry(&tok, []byte("reply"), 0)
	if len(e.Tables) != 2 || e.Tables[0].Table != "a" {
		t.Fatalf("token tables = %v, want [a b] sorted and unique", e.Tables)
	}
	if !v.Valid(e) {
		t.Fatal("fresh entry not valid")
	}
	var tx Tx
	tx.Mark(v, "app", []string{"a"})
	if v.Valid(e) {
		t.Fatal("entry valid while a writer of its table is in flight")
	}
	tx.End()
	if !v.Valid(e) {
		t.Fatal("entry not valid after the writer rolled back")
	}
	tx.Mark(v, "app", []string{"a"})
	tx.Commit(7, nil)
	if v.Valid(e) {
		t.Fatal("entry valid after a commit to its table")
	}
	if n := testing.AllocsPerRun(100, func() { v.Valid(e) }); n != 0 {
		t.Fatalf("Valid allocates %v times", n)
	}
}

// TestNeverStaleConcurrent: writers write and commit while readers fill
// and hit. Each write publishes its value once PostgreSQL committed it,
// before the versions are bumped; a hit must return a value at least as
// new as every value published before the hit began. A checker, not timing: any interleaving that
// serves an old value fails.
func TestNeverStaleConcurrent(t *testing.T) {
	const (
		db      = "app"
		tables  = 3
		writers = 3
		readers = 6
		rounds  = 3000
	)
	names := []string{"t0", "t1", "t2"}
	v := NewVersions()
	var truth, published [tables]atomic.Int64 // the table's value in "PostgreSQL"; the last value whose commit returned
	var mu sync.Mutex
	type filled struct {
		e *Entry
		x int64 // the value the fill read
	}
	store := map[int]filled{}
	var stored, hits, refused atomic.Int64
	var wg sync.WaitGroup
	// Writers run until every reader is done, so reads always overlap
	// writes however the scheduler runs the goroutines.
	var readersDone atomic.Bool
	var rwg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			var tx Tx
			for i := 0; !readersDone.Load(); i++ {
				k := (w + i) % tables
				tx.Mark(v, db, names[k:k+1])
				n := truth[k].Add(1)
				if i%5 == 0 {
					truth[k].Add(-1) // the write was rolled back...
					tx.End()
					continue
				}
				// ...or committed. The client may learn it (and tell
				// others) before the proxy's AfterCommit bumps the version:
				// publish first, so the in-flight rule is what is tested.
				for {
					p := published[k].Load()
					if p >= n || published[k].CompareAndSwap(p, n) {
						break
					}
				}
				tx.Commit(LSN(i), nil)
			}
		})
	}
	fail := make(chan string, 1)
	for r := range readers {
		rwg.Go(func() {
			for i := 0; i < rounds || (!(stored.Load() > 0 && refused.Load() > 0) && i < 100*rounds); i++ {
				k := (r + i) % tables
				floor := published[k].Load() // committed before this read began
				mu.Lock()
				f := store[k]
				mu.Unlock()
				if f.e != nil && v.Valid(f.e) {
					hits.Add(1)
					if f.x < floor {
						select {
						case fail <- "hit returned an old value":
						default:
						}
					}
					continue
				}
				tok := v.Token(db, names[k:k+1])
				x := truth[k].Load() // the read runs after the token
				if v.Check(&tok, false, 0) != RefuseNone {
					refused.Add(1)
					continue
				}
				mu.Lock()
				store[k] = filled{newEntry(&tok, nil, 0), x}
				mu.Unlock()
				stored.Add(1)
			}
		})
	}
	rwg.Wait()
	readersDone.Store(true)
	wg.Wait()
	select {
	case msg := <-fail:
		t.Fatal(msg)
	default:
	}
	t.Logf("stored %d, refused %d, hits %d", stored.Load(), refused.Load(), hits.Load())
	if stored.Load() == 0 || refused.Load() == 0 {
		t.Fatalf("the run exercised too little: stored %d, refused %d", stored.Load(), refused.Load())
	}
}

// TestReplicaBarredUntilPrimaryRead: what happened before pgone first saw
// a database, and around a flush, is at an unknown WAL position: no
// replica may fill until a primary LSN read afterwards resolves it (a
// direct write, then a flush, must not be refilled from a lagging
// replica).
func TestReplicaBarredUntilPrimaryRead(t *testing.T) {
	const db = "app"
	read := []string{"t"}
	v := NewVersions()
	tok := v.Token(db, read)
	if r := v.Check(&tok, true, 1<<40); r != RefuseReplicaLSN {
		t.Fatalf("first sight of a database: a replica fill is %s, want replica_lsn", r)
	}
	v.ResolveUnknownLSN(v.UnknownMark(), 100)
	tok = v.Token(db, read)
	if r := v.Check(&tok, true, 100); r != RefuseNone {
		t.Fatalf("after the primary was read at 100: a replica at 100 is %s, want none", r)
	}
	for _, flush := range []func(){
		func() { v.BumpEpoch(db, 0, CauseFlush) },
		func() { v.BumpAll(CauseFlush) },
	} {
		flush()
		tok = v.Token(db, read)
		if r := v.Check(&tok, true, 1<<40); r != RefuseReplicaLSN {
			t.Fatalf("after a flush: a replica fill is %s, want replica_lsn", r)
		}
		mark := v.UnknownMark()
		v.ResolveUnknownLSN(mark, 200)
		tok = v.Token(db, read)
		if r := v.Check(&tok, true, 199); r != RefuseReplicaLSN {
			t.Fatalf("after a flush resolved at 200: a replica at 199 is %s, want replica_lsn", r)
		}
		if r := v.Check(&tok, true, 200); r != RefuseNone {
			t.Fatalf("after a flush resolved at 200: a replica at 200 is %s, want none", r)
		}
	}
}
