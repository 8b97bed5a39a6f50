package router

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
)

const benchQuery = "SELECT o.id, o.total, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.created_at > $1 AND lower(c.email) = $2 ORDER BY o.id LIMIT 50"

func BenchmarkRouteCached(b *testing.B) {
	r := NewRouter(1000)
	s := Session{Functions: pgProc}
	r.Route(benchQuery, s)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if d := r.Route(benchQuery, s); d.Target != TargetReplica {
			b.Fatal(d.Reason)
		}
	}
}

func BenchmarkRouteCachedParallel(b *testing.B) {
	r := NewRouter(1000)
	qs := make([]string, 64)
	for i := range qs {
		qs[i] = benchQuery + " OFFSET " + strconv.Itoa(i)
		r.Route(qs[i], Session{})
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			r.Route(qs[i%len(qs)], Session{})
			i++
		}
	})
}

func BenchmarkRouteUncached(b *testing.B) {
	r := NewRouter(0)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r.Route(benchQuery, Session{})
	}
}

func BenchmarkNoSessionEffects(b *testing.B) {
	const q = "UPDATE pgbench_accounts SET abalance = abalance + -3105 WHERE aid = 61234;"
	for i := 0; i < b.N; i++ {
		if !NoSessionEffects(q) {
			b.Fatal("not plain")
		}
	}
}

func BenchmarkPlainRead(b *testing.B) {
	const q = "SELECT abalance FROM pgbench_accounts WHERE aid = 61234;"
	for i := 0; i < b.N; i++ {
		if !PlainRead(q) {
			b.Fatal("not a plain read")
		}
	}
}

// pgbenchTexts returns n simple-protocol texts of one pgbench statement,
// with aid (and delta) drawn as pgbench draws them at scale 10.
func pgbenchTexts(n int, update bool) []string {
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([]string, n)
	for i := range out {
		aid := 1 + rng.IntN(1000000)
		if update {
			out[i] = fmt.Sprintf("UPDATE pgbench_accounts SET abalance = abalance + %d WHERE aid = %d;", rng.IntN(10001)-5000, aid)
		} else {
			out[i] = fmt.Sprintf("SELECT abalance FROM pgbench_accounts WHERE aid = %d;", aid)
		}
	}
	return out
}

// BenchmarkRouteSimpleProtocol routes pgbench's -S SELECT and TPC-B
// UPDATE with a new aid every call, as pgbench -M simple sends them, with
// the proxy's cache size: "exact" without the normalised level (as before
// it), "normalized" with it.
func BenchmarkRouteSimpleProtocol(b *testing.B) {
	for _, st := range []struct {
		name   string
		update bool
	}{{"select", false}, {"update", true}} {
		texts := pgbenchTexts(1<<16, st.update)
		for _, level := range []string{"exact", "normalized"} {
			b.Run(st.name+"/"+level, func(b *testing.B) {
				r := NewRouter(10000)
				if level == "exact" {
					r.norm = nil
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					r.Route(texts[i%len(texts)], Session{})
				}
			})
		}
	}
}
