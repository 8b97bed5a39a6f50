package proxy_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/proxy"
)

// The interleaving suite: two or more clients take turns, request by
// request, on one pooled server connection (transaction mode, pool size 1),
// and each client's replies must be what the same requests get from a
// PostgreSQL backend of its own. It covers what a transaction pooler must
// hide: unnamed and named statements and portals, Close, DEALLOCATE,
// DISCARD ALL, errors in the middle of a pipeline, Flush without Sync.
//
// A script switches clients only when the current one holds no server:
// its last ReadyForQuery said I and no Flush-ended pipeline is open. The
// direct run checks that, so a script cannot deadlock the pooled run.

// ilReq is one request of one client: messages up to a Sync, a Query, or a
// Flush (a partial pipeline whose replies are read before going on).
type ilReq struct {
	client int
	msgs   []pgproto3.FrontendMessage
}

// ilCase is one interleaving script.
type ilCase struct {
	name    string
	clients int
	reqs    []ilReq
	// expect lists, per client, substrings that must occur in this order in
	// its direct transcript, so that a case exercises what its name says.
	expect map[int][]string
	// knownBug skips the case: it fails on pgone today for that reason.
	// Set PGONE_RUN_KNOWN_BUGS=1 to run such cases anyway.
	knownBug string
}

// ilTimeout bounds the wait for a reply that should come: a request that
// gets no answer is a finding, and should not cost ioTimeout per case.
const ilTimeout = 5 * time.Second

// ilClientState is what the runner knows of one client from its replies.
type ilClientState struct {
	status  byte // of the last ReadyForQuery
	errored bool // an ErrorResponse since the last ReadyForQuery
	open    bool // a Flush-ended pipeline awaits its Sync
}

func (s ilClientState) holdsServer() bool { return s.status != 'I' || s.open }

// runScript sends tc's requests on conns (one per client) and returns each
// client's normalised transcript. A run that stops early (no reply, or a
// client that holds the server when another must go) ends its transcripts
// with a line saying why; the returned error says it too.
func runScript(tc ilCase, conns []*msgConn) ([][]string, error) {
	out := make([][]string, len(conns))
	state := make([]ilClientState, len(conns))
	for i := range state {
		state[i].status = 'I'
	}
	for i, r := range tc.reqs {
		for other := range conns {
			if other != r.client && state[other].holdsServer() {
				err := fmt.Errorf("request %d (client %s): client %s still holds the server (status %c, open pipeline %v)",
					i, ilName(r.client), ilName(other), state[other].status, state[other].open)
				out[r.client] = append(out[r.client], "<stopped: "+err.Error()+">")
				return out, err
			}
		}
		c := conns[r.client]
		out[r.client] = append(out[r.client], fmt.Sprintf("-- request %d: %s", i, renderMsgs(r.msgs)))
		c.send(r.msgs...)
		got, err := readReplies(c, r.msgs, &state[r.client])
		out[r.client] = append(out[r.client], got...)
		if err != nil {
			err = fmt.Errorf("request %d (client %s): %w", i, ilName(r.client), err)
			out[r.client] = append(out[r.client], "<stopped: "+err.Error()+">")
			return out, err
		}
	}
	for client, st := range state {
		if st.holdsServer() {
			err := fmt.Errorf("the script ends with client %s holding the server", ilName(client))
			out[client] = append(out[client], "<stopped: "+err.Error()+">")
			return out, err
		}
	}
	// A last query per client finds what the script left behind: a server
	// still attached, a broken one, replies out of step.
	for client, c := range conns {
		msgs := []pgproto3.FrontendMessage{ilQuery(fmt.Sprintf("select 'end of %s'", ilName(client)))}
		out[client] = append(out[client], "-- closing query")
		c.send(msgs...)
		got, err := readReplies(c, msgs, &state[client])
		out[client] = append(out[client], got...)
		if err != nil {
			err = fmt.Errorf("closing query (client %s): %w", ilName(client), err)
			out[client] = append(out[client], "<stopped: "+err.Error()+">")
			return out, err
		}
	}
	return out, nil
}

// readReplies reads the replies to msgs: a ReadyForQuery per Sync and
// Query, then, when msgs end with a Flush, one completion per extended
// message after the last Sync, or nothing more once one of them failed
// (the server then skips to the next Sync).
func readReplies(c *msgConn, msgs []pgproto3.FrontendMessage, st *ilClientState) ([]string, error) {
	syncs, tail := 0, 0
	for _, m := range msgs {
		switch m.(type) {
		case *pgproto3.Sync, *pgproto3.Query:
			syncs++
			tail = 0
		case *pgproto3.Parse, *pgproto3.Bind, *pgproto3.Describe, *pgproto3.Execute, *pgproto3.Close:
			tail++
		}
	}
	_, flushed := msgs[len(msgs)-1].(*pgproto3.Flush)
	if !flushed {
		tail = 0
	}
	var got []string
	rfqs, done := 0, 0
	for rfqs < syncs || (!st.errored && done < tail) {
		m, err := c.receive(ilTimeout)
		if err != nil {
			return got, fmt.Errorf("waiting for a reply: %w", err)
		}
		switch m := m.(type) {
		case *pgproto3.ReadyForQuery:
			rfqs++
			st.status, st.errored = m.TxStatus, false
		case *pgproto3.ErrorResponse:
			st.errored = true
		case *pgproto3.ParseComplete, *pgproto3.BindComplete, *pgproto3.CloseComplete, *pgproto3.RowDescription,
			*pgproto3.NoData, *pgproto3.CommandComplete, *pgproto3.PortalSuspended, *pgproto3.EmptyQueryResponse:
			if rfqs == syncs {
				done++
			}
		}
		if line, keep := normaliseMsg(m); keep {
			got = append(got, line)
		}
	}
	st.open = flushed && (tail > 0 || (st.open && syncs == 0))
	return got, nil
}

// normaliseMsg renders a reply for comparison; keep is false for messages
// that legitimately differ between a direct session and one through a
// pooler (ParameterStatus, BackendKeyData, notices).
func normaliseMsg(m pgproto3.BackendMessage) (line string, keep bool) {
	switch m := m.(type) {
	case *pgproto3.ParameterStatus, *pgproto3.BackendKeyData, *pgproto3.NoticeResponse:
		return "", false
	case *pgproto3.ErrorResponse:
		return fmt.Sprintf("ErrorResponse %s %s", m.Code, m.Message), true
	case *pgproto3.ReadyForQuery:
		return "ReadyForQuery " + string(m.TxStatus), true
	case *pgproto3.CommandComplete:
		return "CommandComplete " + string(m.CommandTag), true
	case *pgproto3.DataRow:
		vals := make([]string, len(m.Values))
		for i, v := range m.Values {
			vals[i] = "NULL"
			if v != nil {
				vals[i] = strconv.Quote(string(v))
			}
		}
		return "DataRow " + strings.Join(vals, " "), true
	case *pgproto3.RowDescription:
		fields := make([]string, len(m.Fields))
		for i, f := range m.Fields {
			fields[i] = fmt.Sprintf("%s:%d/%d", f.Name, f.DataTypeOID, f.Format)
		}
		return "RowDescription " + strings.Join(fields, " "), true
	case *pgproto3.ParameterDescription:
		return fmt.Sprintf("ParameterDescription %v", m.ParameterOIDs), true
	default:
		return strings.TrimPrefix(fmt.Sprintf("%T", m), "*pgproto3."), true
	}
}

// renderMsgs describes a request compactly, for failure messages.
func renderMsgs(msgs []pgproto3.FrontendMessage) string {
	parts := make([]string, len(msgs))
	for i, m := range msgs {
		switch m := m.(type) {
		case *pgproto3.Parse:
			parts[i] = fmt.Sprintf("Parse(%q, %q)", m.Name, m.Query)
		case *pgproto3.Bind:
			ps := make([]string, len(m.Parameters))
			for j, p := range m.Parameters {
				ps[j] = string(p)
			}
			parts[i] = fmt.Sprintf("Bind(%q<-%q %v)", m.DestinationPortal, m.PreparedStatement, ps)
		case *pgproto3.Describe:
			parts[i] = fmt.Sprintf("Describe(%c %q)", m.ObjectType, m.Name)
		case *pgproto3.Execute:
			parts[i] = fmt.Sprintf("Execute(%q %d)", m.Portal, m.MaxRows)
		case *pgproto3.Close:
			parts[i] = fmt.Sprintf("Close(%c %q)", m.ObjectType, m.Name)
		case *pgproto3.Query:
			parts[i] = fmt.Sprintf("Query(%q)", m.String)
		default:
			parts[i] = strings.TrimPrefix(fmt.Sprintf("%T", m), "*pgproto3.")
		}
	}
	return strings.Join(parts, " ")
}

func ilName(client int) string { return string(rune('A' + client)) }

// renderScript lists a script's requests, one a line, for failure messages.
func renderScript(tc ilCase) string {
	var b strings.Builder
	for i, r := range tc.reqs {
		fmt.Fprintf(&b, "  %2d %s: %s\n", i, ilName(r.client), renderMsgs(r.msgs))
	}
	return b.String()
}

// runInterleaving runs tc against PostgreSQL alone (a backend per client)
// and through pgone in transaction mode with pool size 1, and compares
// each client's transcripts.
func runInterleaving(t *testing.T, tc ilCase, directs *ilDirectConns) {
	if tc.knownBug != "" && os.Getenv("PGONE_RUN_KNOWN_BUGS") == "" {
		t.Skip(tc.knownBug)
	}
	t.Parallel()
	direct := make([]*msgConn, tc.clients)
	for i := range direct {
		direct[i] = directs.get(t)
	}
	want, err := runScript(tc, direct)
	if err != nil {
		t.Fatalf("the script fails against PostgreSQL alone: %v\n%s", err, renderScript(tc))
	}
	for _, c := range direct {
		directs.put(c)
	}
	for client, subs := range tc.expect {
		expectInOrder(t, client, want[client], subs)
	}
	// Only a trust user: building password verifiers for the usual users
	// costs more than a whole script.
	p := txProxy(t, 1, func(c *config.Config) {
		c.Proxy.Users = map[string]proxy.User{"trustuser": {AuthMethod: "trust"}}
	})
	dsn := fmt.Sprintf("host=%s port=%d user=trustuser dbname=%s sslmode=disable", p.Host, p.Port, appDB)
	pooled := make([]*msgConn, tc.clients)
	for i := range pooled {
		pooled[i] = connectMsg(t, dsn)
	}
	got, _ := runScript(tc, pooled)
	for client := range want {
		if d := firstDifference(want[client], got[client]); d != "" {
			t.Errorf("client %s: replies through pgone differ from PostgreSQL alone:\n%s\nscript:\n%s", ilName(client), d, renderScript(tc))
		}
	}
}

// ilDirectConns reuses direct connections between scripts: a SCRAM login
// costs more than a script. DISCARD ALL returns a backend to a fresh
// session's state (statements, portals, the unnamed statement).
type ilDirectConns struct {
	parent *testing.T
	mu     sync.Mutex
	idle   []*msgConn
}

func newILDirectConns(parent *testing.T) *ilDirectConns { return &ilDirectConns{parent: parent} }

// get returns an idle connection, or a new one that lives until the end
// of the parent test, for use by t.
func (d *ilDirectConns) get(t *testing.T) *msgConn {
	t.Helper()
	d.mu.Lock()
	if n := len(d.idle); n > 0 {
		c := d.idle[n-1]
		d.idle = d.idle[:n-1]
		d.mu.Unlock()
		c.t = t
		return c
	}
	d.mu.Unlock()
	pc, err := pgconn.Connect(testCtx(t), directDSN())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	if err := pc.SyncConn(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	hc, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	d.parent.Cleanup(func() { _ = hc.Conn.Close() })
	return &msgConn{t: t, nc: hc.Conn, fe: hc.Frontend, params: hc.ParameterStatuses}
}

// put resets c and keeps it for the next script.
func (d *ilDirectConns) put(c *msgConn) {
	c.t.Helper()
	for _, line := range c.simpleQuery(`DISCARD ALL`) {
		if strings.HasPrefix(line, "*pgproto3.ErrorResponse") {
			c.t.Fatalf("DISCARD ALL: %s", line)
		}
	}
	d.mu.Lock()
	d.idle = append(d.idle, c)
	d.mu.Unlock()
}

// expectInOrder checks that subs occur, in order, in the lines of got.
func expectInOrder(t *testing.T, client int, got, subs []string) {
	t.Helper()
	i := 0
	for _, line := range got {
		if i < len(subs) && strings.Contains(line, subs[i]) {
			i++
		}
	}
	if i < len(subs) {
		t.Errorf("client %s: direct transcript lacks %q (after %q):\n%s", ilName(client), subs[i], subs[:i], strings.Join(got, "\n"))
	}
}

// firstDifference shows where two transcripts part, with a little context,
// or returns "" when they are equal.
func firstDifference(want, got []string) string {
	n := min(len(want), len(got))
	i := 0
	for i < n && want[i] == got[i] {
		i++
	}
	if i == len(want) && i == len(got) {
		return ""
	}
	from := i
	for from > 0 && i-from < 6 && !strings.HasPrefix(want[from], "-- request") {
		from--
	}
	to := min(max(len(want), len(got)), i+6)
	return diffTranscripts(want[from:min(to, len(want))], got[from:min(to, len(got))])
}
