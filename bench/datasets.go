package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// The seed's data, made by the bench on the primary with generate_series
// before any target starts (the replica follows by streaming). Sizes scale
// with -seed-rows (events; documents get a twentieth, JSON documents a
// tenth). Generation is seeded (setseed) so every run reads the same
// distribution. The events span seedDays days from seedStart; dashboards
// read the last hours of it and the writer inserts into the last hour, as
// a live system's newest data.

const seedDays = 7

var seedStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// seedEnd is where the events end: the dashboards' "now".
var seedEnd = seedStart.AddDate(0, 0, seedDays)

// datasets make the named data; each runs once per bench run.
var datasets = map[string]func(rows int) []string{
	"version":   versionSQL,
	"events":    eventsSQL,
	"documents": documentsSQL,
	"jsondocs":  jsondocsSQL,
}

// prepareData makes every dataset the plan's workloads name, in first-use
// order, as the bench user on the primary.
func prepareData(ctx context.Context, env *Env, plan []Cell, rows int) error {
	done := map[string]bool{}
	var conn *pgconn.PgConn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	for _, c := range plan {
		for _, name := range c.W.Data {
			if done[name] {
				continue
			}
			done[name] = true
			gen, ok := datasets[name]
			if !ok {
				return fmt.Errorf("workload %s: unknown dataset %q", c.W.Name, name)
			}
			if conn == nil {
				var err error
				if conn, err = pgconn.Connect(ctx, env.dsn(env.cluster.Primary.Port, env.db)); err != nil {
					return err
				}
			}
			began := time.Now()
			for _, sql := range gen(rows) {
				if _, err := conn.Exec(ctx, sql).ReadAll(); err != nil {
					return fmt.Errorf("dataset %s: %s: %w", name, truncate(sql, 60), err)
				}
			}
			env.logf("dataset %s made in %s", name, time.Since(began).Round(100*time.Millisecond))
		}
	}
	return nil
}

// versionSQL adds the row the cache workload's writer bumps: account 0,
// outside pgbench's 1..N, so pgbench's own scripts never touch it.
func versionSQL(int) []string {
	return []string{`INSERT INTO pgbench_accounts (aid, bid, abalance, filler) VALUES (0, 0, 0, '') ON CONFLICT (aid) DO NOTHING`}
}

// eventsSQL makes a table partitioned by day (declarative partitioning,
// standing in for TimescaleDB's hypertables) with rows spread evenly over
// seedDays days; kinds and users are skewed so top-N lists are meaningful.
func eventsSQL(rows int) []string {
	sql := []string{
		`DROP TABLE IF EXISTS events`,
		`CREATE TABLE events (ts timestamp NOT NULL, kind text NOT NULL, user_id int NOT NULL, value float8 NOT NULL) PARTITION BY RANGE (ts)`,
	}
	for d := range seedDays {
		from := seedStart.AddDate(0, 0, d)
		sql = append(sql, fmt.Sprintf(`CREATE TABLE events_%s PARTITION OF events FOR VALUES FROM ('%s') TO ('%s')`,
			from.Format("20060102"), pgTimestamp(from), pgTimestamp(from.AddDate(0, 0, 1))))
	}
	step := float64(seedDays*86400) / float64(max(rows, 1))
	return append(sql,
		`SELECT setseed(0.17)`,
		fmt.Sprintf(`INSERT INTO events SELECT timestamp '%s' + make_interval(secs => (g - 1) * %g), %s, %s, %s FROM generate_series(1, %d) g`,
			pgTimestamp(seedStart), step, eventKindSQL, eventUserSQL, eventValueSQL, rows),
		`CREATE INDEX ON events (ts)`,
		`ANALYZE events`,
	)
}

// The generated columns of an event; the writer's inserts use them too.
const (
	eventKindSQL  = `'kind_' || lpad(floor(20 * power(random(), 2))::int::text, 2, '0')`
	eventUserSQL  = `floor(100000 * power(random(), 3))::int`
	eventValueSQL = `round((random() * 1000)::numeric, 2)::float8`
)

// eventsInsertSQL is the writer's batch: 100 events in the last hour.
func eventsInsertSQL() string {
	return fmt.Sprintf(`INSERT INTO events SELECT timestamp '%s' - random() * interval '1 hour', %s, %s, %s FROM generate_series(1, 100)`,
		pgTimestamp(seedEnd), eventKindSQL, eventUserSQL, eventValueSQL)
}

// dashboardWindow returns the parameters of one of a dashboard's panels:
// the last 1, 6 or 24 hours of the events.
func dashboardWindow(r *rand.Rand) []string {
	hours := []int{1, 6, 24}[r.IntN(3)]
	return []string{pgTimestamp(seedEnd.Add(-time.Duration(hours) * time.Hour)), pgTimestamp(seedEnd)}
}

func pgTimestamp(t time.Time) string { return t.Format("2006-01-02 15:04:05") }

// vocabulary is the words documents are made of; earlier words are more
// frequent (drawn with a squared uniform), so searches range from common
// to rare terms.
var vocabulary = strings.Fields(`
database query index cache server client replica primary pool connection
transaction commit latency throughput partition table column row vacuum
backup restore schema tuple page buffer checkpoint replication failover
network socket protocol message parser planner executor statistics join
aggregate window function trigger constraint sequence extension cluster
storage memory disk snapshot isolation lock deadlock timeout retry
monitor metric alert dashboard report analytics search ranking document
vector lexeme dictionary stemming token phrase weight score relevance
archive stream logical physical consistency durability availability
benchmark workload scale shard router proxy gateway balancer session
cursor portal prepared statement parameter binding encoding collation
timezone interval timestamp numeric integer boolean text json array range
geometry network address hostname certificate password authentication role
privilege policy audit compliance migration upgrade release patch kernel
compiler runtime garbage collector goroutine channel mutex atomic`)

// documentsSQL makes documents with a generated tsvector column and a GIN
// index on it.
func documentsSQL(rows int) []string {
	docs := max(rows/20, 100)
	words := sqlTextArray(vocabulary)
	// "+ 0 * i" names the inner row: an aggregate whose arguments name
	// only outer columns belongs to the outer query.
	pick := fmt.Sprintf("w.v[1 + floor(power(random(), 2) * %d)::int + 0 * i]", len(vocabulary))
	return []string{
		`DROP TABLE IF EXISTS documents`,
		`CREATE TABLE documents (id bigserial PRIMARY KEY, title text NOT NULL, body text NOT NULL,
			tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', title || ' ' || body)) STORED)`,
		`SELECT setseed(0.23)`,
		// The subqueries name g, so they run per row (an uncorrelated one
		// would run once and give every document the same text).
		fmt.Sprintf(`WITH w AS (SELECT %s AS v)
			INSERT INTO documents (title, body)
			SELECT (SELECT string_agg(%s, ' ') FROM generate_series(1, 3 + g %% 4) i),
			       (SELECT string_agg(%s, ' ') FROM generate_series(1, 30 + g %% 40) i)
			FROM generate_series(1, %d) g, w`, words, pick, pick, docs),
		`CREATE INDEX ON documents USING gin (tsv)`,
		`ANALYZE documents`,
		// Saved searches: each term with its parsed query, so a search can
		// be a read of tables and immutable functions only (pgone judges a
		// function's volatility by its name, and websearch_to_tsquery's
		// one-argument form is stable).
		`DROP TABLE IF EXISTS search_terms`,
		fmt.Sprintf(`CREATE TABLE search_terms AS SELECT t AS term, websearch_to_tsquery('english', t) AS q FROM unnest(%s::text[]) t`, sqlTextArray(searchTerms)),
		`ALTER TABLE search_terms ADD PRIMARY KEY (term)`,
	}
}

// sqlTextArray is an ARRAY[...] literal of vals.
func sqlTextArray(vals []string) string {
	q := make([]string, len(vals))
	for i, v := range vals {
		q[i] = "'" + strings.ReplaceAll(v, "'", "''") + "'"
	}
	return "ARRAY[" + strings.Join(q, ",") + "]"
}

// searchTerms are the FTS workload's queries (websearch_to_tsquery syntax):
// common and rare words, pairs, a phrase and an exclusion.
var searchTerms = []string{
	"database", "cache", "replica failover", "index", "vacuum checkpoint",
	"\"connection pool\"", "latency -throughput", "snapshot isolation", "goroutine",
	"dashboard analytics", "logical replication", "certificate authentication",
	"partition", "deadlock timeout", "json array", "mutex atomic",
}

// documentArgs is one new document for the FTS writer: title and body.
func documentArgs(r *rand.Rand) []string {
	words := func(n int) string {
		w := make([]string, n)
		for i := range w {
			w[i] = vocabulary[int(math.Pow(r.Float64(), 2)*float64(len(vocabulary)))]
		}
		return strings.Join(w, " ")
	}
	return []string{words(4), words(40)}
}

// The JSON documents' value lists.
var (
	jsonTypes     = []string{"order", "refund", "view", "cart", "review"}
	jsonStatuses  = []string{"open", "paid", "shipped", "closed"}
	jsonCountries = []string{"de", "fr", "us", "jp", "br", "in", "gb", "es"}
	jsonTags      = []string{"red", "green", "blue", "sale", "new", "gift", "eco", "bulk"}
)

// jsondocsSQL makes JSON documents with a jsonb_path_ops GIN index.
func jsondocsSQL(rows int) []string {
	docs := max(rows/10, 100)
	pick := func(vals []string) string {
		return fmt.Sprintf("(ARRAY['%s'])[1 + floor(random() * %d)::int]", strings.Join(vals, "','"), len(vals))
	}
	return []string{
		`DROP TABLE IF EXISTS jsondocs`,
		`CREATE TABLE jsondocs (id bigserial PRIMARY KEY, body jsonb NOT NULL)`,
		`SELECT setseed(0.29)`,
		fmt.Sprintf(`INSERT INTO jsondocs (body) SELECT %s FROM generate_series(1, %d) g`, jsonDocSQL(pick), docs),
		`CREATE INDEX ON jsondocs USING gin (body jsonb_path_ops)`,
		`ANALYZE jsondocs`,
	}
}

// jsonDocSQL is one generated document; pick draws from a value list.
func jsonDocSQL(pick func([]string) string) string {
	return fmt.Sprintf(`jsonb_build_object('type', %s, 'status', %s,
		'user', jsonb_build_object('id', 1 + floor(power(random(), 2) * 10000)::int, 'country', %s),
		'tags', jsonb_build_array(%s, %s), 'total', round((random() * 500)::numeric, 2))`,
		pick(jsonTypes), pick(jsonStatuses), pick(jsonCountries), pick(jsonTags), pick(jsonTags))
}

// jsonInsertSQL is the JSONB writer's insert of one generated document.
func jsonInsertSQL() string {
	pick := func(vals []string) string {
		return fmt.Sprintf("(ARRAY['%s'])[1 + floor(random() * %d)::int]", strings.Join(vals, "','"), len(vals))
	}
	return "INSERT INTO jsondocs (body) SELECT " + jsonDocSQL(pick)
}

// jsonUserArgs is a containment lookup of one user's documents; users are
// skewed (a cubed uniform over 10,000), as a few customers are busiest.
func jsonUserArgs(r *rand.Rand) []string {
	id := 1 + int(math.Pow(r.Float64(), 3)*10000)
	return []string{fmt.Sprintf(`{"user": {"id": %d}}`, id)}
}

// jsonFacetArgs is a containment filter on type and status.
func jsonFacetArgs(r *rand.Rand) []string {
	return []string{fmt.Sprintf(`{"type": %q, "status": %q}`, jsonTypes[r.IntN(len(jsonTypes))], jsonStatuses[r.IntN(len(jsonStatuses))])}
}

// jsonPathArgs is a jsonpath equality test, which jsonb_path_ops indexes.
func jsonPathArgs(r *rand.Rand) []string {
	if r.IntN(2) == 0 {
		return []string{fmt.Sprintf(`$.tags[*] ? (@ == %q)`, jsonTags[r.IntN(len(jsonTags))])}
	}
	return []string{fmt.Sprintf(`$.user ? (@.country == %q)`, jsonCountries[r.IntN(len(jsonCountries))])}
}
