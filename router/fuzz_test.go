package router

import (
	"slices"
	"testing"
)

// FuzzRoute checks that no text panics and that every Decision keeps the
// invariants the proxy relies on.
func FuzzRoute(f *testing.F) {
	for _, c := range routeCases {
		f.Add(c.sql)
	}
	f.Add("WITH RECURSIVE a AS (WITH b AS (SELECT * FROM a) SELECT * FROM b) SELECT 1")
	f.Add("SELECT ((((((((((1))))))))))")
	cached := NewRouter(128)
	uncached := NewRouter(0)
	sessions := []Session{{}, rwTx, roTx, defRO, withProc, withCfg}
	f.Fuzz(func(t *testing.T, text string) {
		if NoSessionEffects(text) && hasSessionEffects(uncached.Route(text, Session{})) {
			t.Fatalf("%q passes the lexical check but has session effects", text)
		}
		if PlainRead(text) {
			if d := uncached.Route(text, Session{}); d.Target != TargetReplica && d.Reason != ReasonParseError {
				t.Fatalf("%q passes the lexical read check but routes to the %s (%s)", text, d.Target, d.Reason)
			}
		}
		for _, s := range sessions {
			d := cached.Route(text, s)
			if diff := diffDecision(uncached.Route(text, s), d); diff != "" {
				t.Fatalf("cached and uncached differ for %q:%s", text, diff)
			}
			if d.Target == TargetReplica && (d.Statements != 1 || len(d.WriteTables) > 0 || len(d.Pins) > 0 || d.ChangesSettings) {
				t.Fatalf("%q to a replica: %+v", text, d)
			}
			if d.Reason == ReasonParseError && d.Fingerprint != 0 {
				t.Fatalf("%q: parse error with fingerprint", text)
			}
			if d.Cacheable && (d.Statements != 1 || d.Reason == ReasonHintPrimary) {
				t.Fatalf("%q: cacheable %+v", text, d)
			}
			for _, tables := range [][]string{d.ReadTables, d.WriteTables} {
				if !slices.IsSorted(tables) || len(slices.Compact(slices.Clone(tables))) != len(tables) {
					t.Fatalf("%q: tables not sorted and unique: %v", text, tables)
				}
			}
		}
	})
}
