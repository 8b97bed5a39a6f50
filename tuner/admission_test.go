package tuner

import (
	"testing"
	"time"
)

// TestAdmissionPicksSlowFrequentRead: of a slow frequent read, a fast
// frequent read and a slow read of an often-written table, admission
// admits only the first; an admitted one whose hits stay low is evicted
// after evictAfter intervals.
func TestAdmissionPicksSlowFrequentRead(t *testing.T) {
	cfg := Config{CacheAdmission: ModeOn, PoolSize: ModeOff}
	cfg.Defaults()
	tu := New(cfg, PoolBounds{}, nil, nil, nil)
	const slow, fast, written = 1, 2, 3
	now := time.Unix(0, 0)
	interval := func(slowHits bool) {
		for i := 0; i < 50; i++ {
			s := Sample{Fingerprint: slow, ReadTables: []string{"public.reports"}, ServerTime: 20 * time.Millisecond}
			if slowHits {
				s.Route = RouteCache // a hit
			} else if tu.Admitted(slow) {
				s.CacheFill = true // a miss that fills
			}
			tu.Record(s)
			for j := 0; j < 100; j++ { // as much server time as the slow one in all, but each call is cheap
				tu.Record(Sample{Fingerprint: fast, ReadTables: []string{"items"}, ServerTime: 200 * time.Microsecond})
			}
			tu.Record(Sample{Fingerprint: written, ReadTables: []string{"orders"}, ServerTime: 20 * time.Millisecond})
			tu.RecordWrite("app", []string{"public.orders"})
		}
		now = now.Add(cfg.Interval)
		tu.Step(now)
	}
	interval(false)
	if tu.Admitted(slow) {
		t.Fatal("admitted after one interval; want admitAfter intervals of evidence")
	}
	interval(false)
	if !tu.Admitted(slow) || tu.Admitted(fast) || tu.Admitted(written) {
		t.Fatalf("admitted slow %v fast %v written %v; want only the slow frequent read of a rarely written table",
			tu.Admitted(slow), tu.Admitted(fast), tu.Admitted(written))
	}
	interval(true)
	if !tu.Admitted(slow) {
		t.Fatal("evicted a fingerprint with a good hit ratio")
	}
	for i := 0; i < evictAfter; i++ {
		interval(false) // every lookup misses
	}
	if tu.Admitted(slow) {
		t.Error("still admitted after its hit ratio stayed low for evictAfter intervals")
	}
	var admits, evicts int
	for _, d := range tu.decisions {
		switch d.Action {
		case "admit":
			admits++
		case "evict":
			evicts++
		}
	}
	if admits < 1 || evicts != 1 {
		t.Errorf("decisions: %d admits, %d evicts; want them recorded", admits, evicts)
	}
}

// TestAdmissionDryRun: dry-run records the decision but admits nothing.
func TestAdmissionDryRun(t *testing.T) {
	cfg := Config{CacheAdmission: ModeDryRun, PoolSize: ModeOff}
	cfg.Defaults()
	tu := New(cfg, PoolBounds{}, nil, nil, nil)
	for i := 0; i < 50; i++ {
		tu.Record(Sample{Fingerprint: 7, ReadTables: []string{"reports"}, ServerTime: 20 * time.Millisecond})
	}
	tu.Step(time.Unix(5, 0))
	for i := 0; i < 50; i++ {
		tu.Record(Sample{Fingerprint: 7, ReadTables: []string{"reports"}, ServerTime: 20 * time.Millisecond})
	}
	if ds := tu.Step(time.Unix(5, 0)); len(ds) != 1 || ds[0].Action != "admit" || ds[0].Mode != ModeDryRun {
		t.Fatalf("decisions %v; want one dry-run admit", ds)
	}
	if tu.Admitted(7) {
		t.Error("dry-run admitted")
	}
	for i := 0; i < 50; i++ {
		tu.Record(Sample{Fingerprint: 7, ReadTables: []string{"reports"}, ServerTime: 20 * time.Millisecond})
	}
	if ds := tu.Step(time.Unix(10, 0)); len(ds) != 0 {
		t.Errorf("second interval decided %v again; want each decision once", ds)
	}
}
