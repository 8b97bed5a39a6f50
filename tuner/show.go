package tuner

import (
	"strconv"
	"strings"
	"time"
)

// Table is a console result set: column names, which of them are
// integers, and text rows. cmd/pgone hands it to the admin console.
type Table struct {
	Columns []string
	Ints    []bool
	Rows    [][]string
}

func micros(d time.Duration) string { return strconv.FormatInt(d.Microseconds(), 10) }
func u64(n uint64) string           { return strconv.FormatUint(n, 10) }

// QueriesTable is SHOW QUERIES [total|calls|p99|wait|errors|rows]: the
// top statements, times in microseconds as PgBouncer's SHOW STATS.
func (t *Tuner) QueriesTable(order string) (Table, error) {
	rows, err := t.Queries(strings.ToLower(order))
	if err != nil {
		return Table{}, err
	}
	tb := Table{Columns: []string{"fingerprint", "database", "calls", "errors", "rows", "bytes",
		"total_time", "avg_time", "p50_time", "p95_time", "p99_time", "total_wait_time", "p95_wait_time", "p99_wait_time",
		"primary", "replica", "cache_hits", "cache_fills", "cache_admitted", "query"}}
	tb.Ints = make([]bool, len(tb.Columns))
	for i := 2; i <= 17; i++ {
		tb.Ints[i] = true
	}
	for _, r := range rows {
		avg := time.Duration(0)
		if r.Calls > 0 {
			avg = r.Total / time.Duration(r.Calls)
		}
		admitted := "no"
		if t.Admitted(r.Fingerprint) {
			admitted = "yes"
		}
		tb.Rows = append(tb.Rows, []string{r.FingerprintHex(), r.Database, u64(r.Calls), u64(r.Errors), u64(r.Rows), u64(r.Bytes),
			micros(r.Total), micros(avg), micros(r.P50), micros(r.P95), micros(r.P99),
			micros(r.WaitTotal), micros(r.WaitP95), micros(r.WaitP99),
			u64(r.Routes[RoutePrimary]), u64(r.Routes[RouteReplica]), u64(r.CacheHits), u64(r.CacheFills), admitted, r.Text})
	}
	return tb, nil
}

// TunerTable is SHOW TUNER: one row per loop target with its state, then
// the recent decisions, newest first.
func (t *Tuner) TunerTable() Table {
	tb := Table{Columns: []string{"loop", "mode", "target", "state", "at", "action", "reason", "inputs"}}
	tb.Ints = make([]bool, len(tb.Columns))
	t.mu.Lock()
	defer t.mu.Unlock()
	names := make([]string, 0, len(t.pools))
	for n := range t.pools {
		names = append(names, n)
	}
	sortStrings(names)
	for _, n := range names {
		l := t.pools[n]
		w := l.lastWindow
		state := "size=" + strconv.Itoa(l.prev.Size) + " base_latency=" + l.base.String() +
			" latency=" + w.latency.String() + " wait=" + w.wait.String() +
			" busy=" + strconv.FormatFloat(w.busy, 'f', 1, 64) + " turns=" + strconv.Itoa(l.turns)
		if !l.backoffUntil.IsZero() {
			state += " backoff_until=" + l.backoffUntil.UTC().Format(time.RFC3339)
		}
		tb.Rows = append(tb.Rows, []string{"pool", string(t.cfg.PoolSize), n, state, "", "", "", ""})
	}
	admitted := len(*t.admission.set.Load())
	tb.Rows = append(tb.Rows, []string{"cache", string(t.cfg.CacheAdmission), "", "admitted=" + strconv.Itoa(admitted), "", "", "", ""})
	tb.Rows = append(tb.Rows, t.settingsRowsLocked()...)
	for i := len(t.decisions) - 1; i >= 0; i-- {
		d := t.decisions[i]
		tb.Rows = append(tb.Rows, []string{d.Loop, string(d.Mode), d.Target, strconv.Itoa(d.From) + "->" + strconv.Itoa(d.To),
			d.At.UTC().Format(time.RFC3339), d.Action, d.Reason, d.Inputs})
	}
	return tb
}
