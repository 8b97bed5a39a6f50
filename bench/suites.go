package main

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// The cache suite (issue 13, make bench-cache) and the seed suite (issue
// 17, make bench-seed). Both are meant for the targets direct, pgbouncer,
// pgone and pgone-cache: pgone with the cache off and on, in one
// interleaved run.

// hotRows is how many accounts the hot point reads touch.
const hotRows = 1000

// hotScript is pgbench's select-only script over the first hotRows
// accounts: a small, hot working set, the cache's best case.
var hotScript = fmt.Sprintf(`\set aid random(1, %d)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
`, hotRows)

// The aggregates the cache workload repeats. Each returns, in its first
// column and the same snapshot, the version the writer bumps (account 0's
// balance), so every read can be checked for staleness (stale.go).
const versionCol = `(SELECT abalance FROM pgbench_accounts WHERE aid = 0) AS version`

// hotGoals: the cache must not make hot point reads slower than PostgreSQL
// itself (PgBouncer is about 0.8× direct there).
var hotGoals = []SeedTarget{{Kind: SeedXDirect, Limit: 1, Goal: "cache on ≥ 1.0× direct"}}

var cacheWorkloads = []Workload{
	{
		Name: "cache-aggregates", Title: "expensive reads while writes go on (aggregates over pgbench_accounts)",
		Suite: SuiteCache, Mode: Transaction, Clients: []int{10}, QuickClients: []int{10},
		Data: []string{"version"}, Unit: "stmt/s",
		Seed: []SeedTarget{
			{Kind: SeedXDirect, Limit: 20, Goal: "cache on ≥ 20× direct"},
			{Kind: SeedHitRatio, Limit: 0.98, Goal: "hit ratio ≥ 98%"},
			{Kind: SeedNoStale, Goal: "0 stale reads"},
		},
		Mix: &Mix{
			Ops: []Op{
				{Name: "accounts-total", Weight: 33, Version: true,
					SQL: `SELECT ` + versionCol + `, count(*), sum(abalance), avg(abalance) FROM pgbench_accounts`},
				{Name: "accounts-by-branch", Weight: 33, Version: true,
					SQL: `SELECT ` + versionCol + `, bid, count(*), sum(abalance) FROM pgbench_accounts GROUP BY bid ORDER BY bid`},
				{Name: "accounts-spread", Weight: 33, Version: true,
					SQL: `SELECT ` + versionCol + `, min(abalance), max(abalance), count(*) FILTER (WHERE abalance <> 0) FROM pgbench_accounts`},
				// 1% of the statements write a table the reads do not.
				{Name: "write-tellers", Weight: 1, SQL: `UPDATE pgbench_tellers SET tbalance = tbalance + 1 WHERE tid = $1`,
					Args: func(r *rand.Rand) []string { return []string{fmt.Sprint(1 + r.IntN(10))} }},
			},
			Writer: &Writer{Name: "version", Every: time.Second, Version: true,
				SQL:        `UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 0 RETURNING abalance`,
				VersionSQL: `SELECT abalance FROM pgbench_accounts WHERE aid = 0`},
		},
		Note: "Go clients, three aggregates over all of pgbench_accounts (99% of statements) and an update of pgbench_tellers (1%); " +
			"a writer updates account 0 in pgbench_accounts once a second. Every read returns account 0's balance, the writer's version, " +
			"and is checked: a read older than a version committed before it began is stale.",
	},
	{
		Name: "cache-hot-simple", Title: fmt.Sprintf("hot point reads, simple protocol (pgbench -S over %d rows, -M simple)", hotRows),
		Suite: SuiteCache, Mode: Transaction, Clients: []int{10, 100}, QuickClients: []int{10},
		Pgbench: []string{"-M", "simple"}, Script: hotScript, Seed: hotGoals,
	},
	{
		Name: "cache-hot-extended", Title: fmt.Sprintf("hot point reads, extended protocol (pgbench -S over %d rows, -M extended)", hotRows),
		Suite: SuiteCache, Mode: Transaction, Clients: []int{10, 100}, QuickClients: []int{10},
		Pgbench: []string{"-M", "extended"}, Script: hotScript, Seed: hotGoals,
	},
}

// The seed's targets (issue 17).
var (
	// seedOLTP: TPC-B's reads run inside its transactions, which the
	// cache never serves, so it has no hit-ratio goal.
	seedOLTP = []SeedTarget{
		{Kind: SeedP99, Limit: 50, Goal: "OLTP p99 < 50 ms"},
		{Kind: SeedTPS, Limit: 15000, Goal: "15,000 TPS"},
		{Kind: SeedConns, Limit: 300, Goal: "300 connections"},
	}
	seedHit = SeedTarget{Kind: SeedHitRatio, Limit: 0.98, Goal: "cache hit ratio > 98%"}
)

// The Go-client seed workloads run 20 clients: on two cores at the
// default -seed-rows a dashboard aggregate takes PostgreSQL ~0.2 s of CPU
// (measured at a tenth of the rows: ~18 ms), so 20 clients already queue
// for seconds, near the analytics target, and a 4s run completes enough
// statements for each one's percentiles.
var seedWorkloads = []Workload{
	{
		Name: "seed-tpcb", Title: "seed OLTP: TPC-B-like read/write at 300 clients (pgbench default script, -M simple)",
		Suite: SuiteSeed, Mode: Transaction, Clients: []int{300}, QuickClients: []int{100},
		Pgbench: []string{"-M", "simple"}, Seed: seedOLTP,
		Note: "Latency is pgbench's per transaction (BEGIN, three updates, a select, an insert, END), stricter than per query.",
	},
	{
		Name: "seed-select", Title: "seed OLTP: select-only at 300 clients (pgbench -S -M simple)",
		Suite: SuiteSeed, Mode: Transaction, Clients: []int{300}, QuickClients: []int{100},
		Pgbench: []string{"-S", "-M", "simple"}, Seed: append(slices.Clone(seedOLTP), seedHit),
		Note: "pgone-cache caches these reads (pgbench_accounts has a rule): random rows over the whole table, the cache's worst case.",
	},
	{
		Name: "seed-analytics", Title: "seed analytics: dashboard aggregates over a partitioned events table while inserts go on",
		Suite: SuiteSeed, Mode: Transaction, Clients: []int{20}, QuickClients: []int{10},
		Data: []string{"events"}, Unit: "stmt/s",
		Seed: []SeedTarget{{Kind: SeedP99, Limit: 3000, Goal: "analytics < 3 s (p99 of each query)"}, seedHit},
		Mix: &Mix{
			Ops: []Op{
				{Name: "events-per-hour", Weight: 1, Args: dashboardWindow,
					SQL: `SELECT date_trunc('hour', ts) AS hour, count(*) FROM events WHERE ts >= $1 AND ts < $2 GROUP BY 1 ORDER BY 1`},
				{Name: "events-top-kinds", Weight: 1, Args: dashboardWindow,
					SQL: `SELECT kind, count(*) AS n FROM events WHERE ts >= $1 AND ts < $2 GROUP BY kind ORDER BY n DESC, kind LIMIT 10`},
				{Name: "events-top-users", Weight: 1, Args: dashboardWindow,
					SQL: `SELECT user_id, count(*) AS n, sum(value) FROM events WHERE ts >= $1 AND ts < $2 GROUP BY user_id ORDER BY n DESC, user_id LIMIT 10`},
				{Name: "events-percentiles", Weight: 1, Args: dashboardWindow,
					SQL: `SELECT kind, percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY value) FROM events WHERE ts >= $1 AND ts < $2 GROUP BY kind ORDER BY kind`},
			},
			Writer: &Writer{Name: "events-insert", Every: time.Second, SQL: eventsInsertSQL()},
		},
		Note: fmt.Sprintf("Go clients; events partitioned by day over %d days (-seed-rows rows), each panel over the last 1, 6 or 24 hours; "+
			"a writer inserts 100 events into the last hour once a second (through the target, so pgone-cache sees it).", seedDays),
	},
	{
		Name: "seed-fts", Title: "seed full-text search: documents with a tsvector column and a GIN index, @@ with ts_rank",
		Suite: SuiteSeed, Mode: Transaction, Clients: []int{20}, QuickClients: []int{10},
		Data: []string{"documents"}, Unit: "stmt/s",
		Seed: []SeedTarget{{Kind: SeedP99, Limit: 500, Goal: "full-text search < 500 ms (p99 of each query)"}, seedHit},
		Mix: &Mix{
			Ops: []Op{
				{Name: "fts-ranked", Weight: 3, Args: searchArgs,
					SQL: `SELECT id, title, ts_rank(tsv, q) AS rank FROM documents, websearch_to_tsquery('english', $1) AS q WHERE tsv @@ q ORDER BY rank DESC, id LIMIT 20`},
				{Name: "fts-count", Weight: 1, Args: searchArgs,
					SQL: `SELECT count(*) FROM documents WHERE tsv @@ websearch_to_tsquery('english', $1)`},
				{Name: "fts-saved-search", Weight: 2, Args: searchArgs,
					SQL: `SELECT d.id, d.title, ts_rank(d.tsv, s.q) AS rank FROM documents d JOIN search_terms s ON d.tsv @@ s.q WHERE s.term = $1 ORDER BY rank DESC, d.id LIMIT 20`},
			},
			Writer: &Writer{Name: "documents-insert", Every: time.Second, Args: documentArgs,
				SQL: `INSERT INTO documents (title, body) VALUES ($1, $2)`},
		},
		Note: fmt.Sprintf("Go clients; -seed-rows/20 documents of 33-72 words from a %d-word vocabulary (skewed), %d search terms; a writer adds a document once a second. "+
			"fts-ranked and fts-count parse the term with websearch_to_tsquery('english', $1); fts-saved-search ranks by a query parsed once (table search_terms), the form pgone can cache (it judges volatility by function name, and websearch_to_tsquery(text) is stable).",
			len(vocabulary), len(searchTerms)),
	},
	{
		Name: "seed-jsonb", Title: "seed JSONB: documents with a jsonb_path_ops GIN index, containment and path queries",
		Suite: SuiteSeed, Mode: Transaction, Clients: []int{20}, QuickClients: []int{10},
		Data: []string{"jsondocs"}, Unit: "stmt/s",
		Seed: []SeedTarget{{Kind: SeedP99, Limit: 50, Goal: "OLTP p99 < 50 ms (the seed set none for JSONB)"}, seedHit},
		Mix: &Mix{
			Ops: []Op{
				{Name: "json-user", Weight: 2, Args: jsonUserArgs,
					SQL: `SELECT id, body FROM jsondocs WHERE body @> $1::jsonb ORDER BY id LIMIT 20`},
				{Name: "json-facet", Weight: 1, Args: jsonFacetArgs,
					SQL: `SELECT body->'user'->>'country' AS country, count(*), sum((body->>'total')::numeric) FROM jsondocs WHERE body @> $1::jsonb GROUP BY 1 ORDER BY 2 DESC, 1`},
				{Name: "json-path", Weight: 1, Args: jsonPathArgs,
					SQL: `SELECT count(*) FROM jsondocs WHERE body @? $1::jsonpath`},
			},
			Writer: &Writer{Name: "jsondocs-insert", Every: time.Second, SQL: jsonInsertSQL()},
		},
		Note: "Go clients; -seed-rows/10 documents; lookups by user id (10,000 users, skewed), containment on type and status, jsonpath equality on tags and country; a writer adds a document once a second.",
	},
}

// searchArgs is one of the search terms.
func searchArgs(r *rand.Rand) []string { return []string{searchTerms[r.IntN(len(searchTerms))]} }
