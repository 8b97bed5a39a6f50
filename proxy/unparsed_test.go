package proxy_test

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestDeepQueryDoesNotCrashPgone: a select of 30,000 terms (60 KB) killed
// pgone with SIGSEGV inside pg_query when it routed the text (issue 11,
// item 1), as a simple Query or a Parse, in transaction mode with a
// replica; with "as temp" the pin check parsed it even without one. Now
// such texts, and texts over the length bound (item 6), go to the primary
// unparsed: pgone answers exactly what PostgreSQL answers, counts them,
// and keeps serving its other clients.
func TestDeepQueryDoesNotCrashPgone(t *testing.T) {
	t.Parallel()
	const db = "unparsedq"
	replicaDatabase(t, cluster, db)
	p := splitProxy(t, cluster, db, nil)
	bystander := connect(t, p.DSN(appUser, appPassword, db))
	waitForReplicaReads(t, bystander, cluster)

	deep := "select (1" + strings.Repeat("+1", 29999) + ")"
	long := "select length('" + strings.Repeat("x", 2<<20) + "')"
	direct := connectMsg(t, cluster.Primary.DSN(appUser, appPassword, db))
	for _, tc := range []struct{ name, text string }{
		{"deep", deep},
		{"long_literal", long},
		// "temp" pins the client (unparsed, the word may make a temp table).
		{"deep_as_temp", deep + " as temp"},
	} {
		// A client per text: a pinned one is not routed any more.
		viaPgone := connectMsg(t, p.DSN(appUser, appPassword, db))
		for _, extended := range []bool{false, true} {
			got, want := runText(viaPgone, tc.text, extended), runText(direct, tc.text, extended)
			if !slices.Equal(got, want) {
				t.Errorf("%s (extended %v) through pgone:\n%s\nPostgreSQL:\n%s", tc.name, extended, shorten(got), shorten(want))
			}
			var n int
			if err := bystander.QueryRow(testCtx(t), "SELECT 1").Scan(&n); err != nil || n != 1 {
				t.Fatalf("after %s (extended %v), another client: %d, %v", tc.name, extended, n, err)
			}
			if got := viaPgone.simpleQuery("SELECT 2"); !strings.Contains(strings.Join(got, " "), `"CommandTag":"SELECT 1"`) {
				t.Fatalf("after %s (extended %v), the same client: %s", tc.name, extended, shorten(got))
			}
		}
	}
	body := p.scrape(t)
	for reason, min := range map[string]float64{"too_complex": 2, "too_long": 1} {
		if v := metricValue(t, body, `pgone_router_unparsed_total{reason="`+reason+`"}`); v < min {
			t.Errorf("pgone_router_unparsed_total{reason=%q} = %v, want at least %v", reason, v, min)
		}
	}
	for _, reason := range []string{"too_complex", "too_long"} {
		want := `pgone_route_requests_total{database="` + db + `",reason="` + reason + `",route="primary"}`
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// runText runs text with the simple protocol or as Parse, Bind, Execute,
// Sync, and returns the recorded replies up to ReadyForQuery.
func runText(c *msgConn, text string, extended bool) []string {
	c.t.Helper()
	if !extended {
		return c.simpleQuery(text)
	}
	c.send(&pgproto3.Parse{Query: text}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	return c.readUntil(isRFQ)
}

// shorten keeps a transcript readable in a failure message.
func shorten(msgs []string) string {
	var out []string
	for _, m := range msgs {
		if len(m) > 300 {
			m = m[:300] + "..."
		}
		out = append(out, m)
	}
	return strings.Join(out, "\n")
}

// metricValue reads one sample's value from a scrape (0 when absent).
func metricValue(t *testing.T, body, series string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("%s: %v", series, err)
	}
	return v
}
