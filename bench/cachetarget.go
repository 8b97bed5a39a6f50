package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// The target pgone-cache: the same pgone, config and pool as the target
// pgone, with the result cache on (cache.mode rules) for the tables the
// cache and seed suites read. Running both in one interleaved run is the
// cache off/on comparison. Its hit ratio over a cell comes from the admin
// console's SHOW CACHE, read before and after the cell (the counters are
// pgone's, for all databases: nothing else runs through it meanwhile).

// cachedTables are the tables pgone-cache may cache reads of. Each is a
// base table as pgone's rules require; events is partitioned and written
// only through its parent, so a write to it is seen as one (pgone does not
// resolve partitions to their parent yet).
var cachedTables = []string{"pgbench_accounts", "events", "documents", "search_terms", "jsondocs"}

// cacheConfig is pgone-cache's cache section.
func cacheConfig(redisAddr string) string {
	var b strings.Builder
	b.WriteString("cache:\n  mode: rules\n  rules:\n")
	for _, t := range cachedTables {
		fmt.Fprintf(&b, "    - table: %s\n", t)
	}
	if redisAddr != "" {
		fmt.Fprintf(&b, "  redis:\n    address: %q\n", redisAddr)
	}
	return b.String()
}

// cacheCounters are SHOW CACHE's hits and misses.
type cacheCounters struct{ hits, misses int64 }

// readCacheCounters asks t's admin console for SHOW CACHE.
func readCacheCounters(ctx context.Context, env *Env, t *Target) (cacheCounters, error) {
	results, err := adminExec(ctx, env, t, "SHOW CACHE")
	if err != nil {
		return cacheCounters{}, err
	}
	if len(results) != 1 {
		return cacheCounters{}, fmt.Errorf("SHOW CACHE: %d results", len(results))
	}
	return parseShowCache(results[0])
}

// flushCache runs CACHE FLUSH on t before a cell: the other targets' cells
// wrote the same tables behind this target's back (their writes never pass
// through it, and the bench runs no logical invalidation), so its entries
// from its previous cell may be older than the writer's first recorded
// version. Counting those as stale reads would measure the bench's setup,
// not the cache.
func flushCache(ctx context.Context, env *Env, t *Target) error {
	_, err := adminExec(ctx, env, t, "CACHE FLUSH")
	return err
}

// adminExec runs one command on t's admin console.
func adminExec(ctx context.Context, env *Env, t *Target, sql string) ([]*pgconn.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, env.dsn(t.Port, "pgone"))
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	results, err := conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", sql, err)
	}
	return results, nil
}

// parseShowCache takes hits and misses from SHOW CACHE's one row, by
// column name; no row means pgone runs without the cache.
func parseShowCache(r *pgconn.Result) (cacheCounters, error) {
	// The totals row: database "*" (one row per database follows it), or
	// the only row of a pgone whose SHOW CACHE has no database column.
	row := -1
	for i, f := range r.FieldDescriptions {
		if f.Name != "database" {
			continue
		}
		for j := range r.Rows {
			if string(r.Rows[j][i]) == "*" {
				row = j
			}
		}
	}
	if row < 0 && len(r.Rows) == 1 {
		row = 0
	}
	if row < 0 {
		return cacheCounters{}, fmt.Errorf("SHOW CACHE: %d rows and no totals row (is cache.mode off?)", len(r.Rows))
	}
	var c cacheCounters
	found := 0
	for i, f := range r.FieldDescriptions {
		var dst *int64
		switch f.Name {
		case "hits":
			dst = &c.hits
		case "misses":
			dst = &c.misses
		default:
			continue
		}
		v, err := strconv.ParseInt(string(r.Rows[row][i]), 10, 64)
		if err != nil {
			return c, fmt.Errorf("SHOW CACHE %s: %w", f.Name, err)
		}
		*dst = v
		found++
	}
	if found != 2 {
		return c, fmt.Errorf("SHOW CACHE has no hits and misses columns")
	}
	return c, nil
}

// hitRatio is hits over lookups; -1 when there was none.
func hitRatio(hits, misses int64) float64 {
	if hits+misses == 0 {
		return -1
	}
	return float64(hits) / float64(hits+misses)
}
