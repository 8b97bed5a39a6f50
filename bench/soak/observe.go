package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pgone/pgone/internal/pgtest"
)

// admin runs a command on pgone's admin console and returns its rows by
// column name.
func (e *Env) admin(ctx context.Context, sql string) ([]map[string]string, error) {
	res, err := lastResult(ctx, e.adminDSN(), sql)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]string, len(res.Rows))
	for i, r := range res.Rows {
		out[i] = map[string]string{}
		for j, f := range res.FieldDescriptions {
			out[i][f.Name] = string(r[j])
		}
	}
	return out, nil
}

// sample is what pgone's metrics say at one moment.
type sample struct {
	At         time.Duration // since the load began
	RSS        int64         // process_resident_memory_bytes
	Goroutines int64         // go_goroutines
}

// scrape reads pgone's RSS and goroutine count from its /metrics.
func (e *Env) scrape(ctx context.Context) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/metrics", e.httpPort), nil)
	if err != nil {
		return sample{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return sample{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return sample{}, fmt.Errorf("/metrics: %s", resp.Status)
	}
	var s sample
	found := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		var dst *int64
		switch name {
		case "process_resident_memory_bytes":
			dst = &s.RSS
		case "go_goroutines":
			dst = &s.Goroutines
		default:
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return sample{}, fmt.Errorf("/metrics: %s %q: %v", name, value, err)
		}
		*dst = int64(f)
		found++
	}
	if err := sc.Err(); err != nil {
		return sample{}, err
	}
	if found != 2 {
		return sample{}, fmt.Errorf("/metrics lacks process_resident_memory_bytes or go_goroutines")
	}
	return s, nil
}

// serverSide is one PostgreSQL server as the leak check sees it.
type serverSide struct {
	Name     string
	Addr     string // host:port as SHOW SERVERS and SHOW POOLS name it
	PgPids   []int  // backends of pgone's pool login in pg_stat_activity
	Listed   []int  // remote_pid of SHOW SERVERS rows for this server
	PoolConn int    // sv_active+sv_idle+sv_used+sv_tested+sv_login of SHOW POOLS
}

// leakState compares, per server, the backends of the pool login with
// what pgone's admin console says it holds.
type leakState struct {
	Servers []serverSide
}

// Leaked are backends pgone does not list: server connections it lost
// track of. Phantom are ones it lists that the server no longer has.
func (l leakState) counts() (leaked, phantom, pooled int) {
	for _, s := range l.Servers {
		in := map[int]bool{}
		for _, p := range s.Listed {
			in[p] = true
		}
		pg := map[int]bool{}
		for _, p := range s.PgPids {
			pg[p] = true
			if !in[p] {
				leaked++
			}
		}
		for _, p := range s.Listed {
			if !pg[p] {
				phantom++
			}
		}
		pooled += s.PoolConn
	}
	return leaked, phantom, pooled
}

func (l leakState) String() string {
	var b strings.Builder
	for _, s := range l.Servers {
		fmt.Fprintf(&b, "%s %s: pg_stat_activity %v, SHOW SERVERS %v, SHOW POOLS %d; ", s.Name, s.Addr, s.PgPids, s.Listed, s.PoolConn)
	}
	return strings.TrimSuffix(b.String(), "; ")
}

// observeLeaks takes one reading of both sides.
func (e *Env) observeLeaks(ctx context.Context) (leakState, error) {
	var st leakState
	servers, err := e.admin(ctx, "SHOW SERVERS")
	if err != nil {
		return st, err
	}
	pools, err := e.admin(ctx, "SHOW POOLS")
	if err != nil {
		return st, err
	}
	for _, s := range []struct {
		name string
		srv  *pgtest.Server
	}{{"primary", e.cluster.Primary}, {"replica", e.cluster.Replica}} {
		side := serverSide{Name: s.name, Addr: fmt.Sprintf("%s:%d", s.srv.Host, s.srv.Port)}
		rows, err := query(ctx, directDSN(s.srv, "postgres"), fmt.Sprintf(
			"SELECT pid FROM pg_stat_activity WHERE usename = '%s' AND backend_type = 'client backend'", clientUser))
		if err != nil {
			return st, fmt.Errorf("%s: %w", s.name, err)
		}
		for _, r := range rows {
			pid, _ := strconv.Atoi(r[0])
			side.PgPids = append(side.PgPids, pid)
		}
		port := strconv.Itoa(s.srv.Port)
		for _, r := range servers {
			if r["user"] == clientUser && r["port"] == port {
				pid, _ := strconv.Atoi(r["remote_pid"])
				side.Listed = append(side.Listed, pid)
			}
		}
		for _, r := range pools {
			if r["user"] == clientUser && r["server"] == side.Addr {
				for _, col := range []string{"sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login"} {
					n, _ := strconv.Atoi(r[col])
					side.PoolConn += n
				}
			}
		}
		sort.Ints(side.PgPids)
		sort.Ints(side.Listed)
		st.Servers = append(st.Servers, side)
	}
	return st, nil
}

// settleLeaks polls until pgone and the servers agree (no leaked and no
// phantom connection) or timeout passes, and returns the last reading.
func (e *Env) settleLeaks(ctx context.Context, timeout time.Duration, empty bool) (leakState, error) {
	deadline := time.Now().Add(timeout)
	for {
		st, err := e.observeLeaks(ctx)
		if err == nil {
			leaked, phantom, pooled := st.counts()
			if leaked == 0 && phantom == 0 && (!empty || pooled == 0 && len(st.Servers[0].PgPids)+len(st.Servers[1].PgPids) == 0) {
				return st, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return st, err
		}
		pause(ctx, 200*time.Millisecond)
	}
}
