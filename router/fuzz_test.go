package router

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// FuzzRoute checks that no text panics or crashes the process (deep
// expressions are seeded: pg_query overflowed its C stack on them) and
// that every Decision keeps the invariants the proxy relies on.
func FuzzRoute(f *testing.F) {
	for _, c := range routeCases {
		f.Add(c.sql)
	}
	f.Add("WITH RECURSIVE a AS (WITH b AS (SELECT * FROM a) SELECT * FROM b) SELECT 1")
	f.Add("SELECT ((((((((((1))))))))))")
	// Deep trees: over the bound (a quarter of the depth that crashed
	// pgone), and under it. The full crashing texts (deepTexts, up to
	// 1.1 MB) are not seeds: TestRouteDeepTextDoesNotCrash and
	// TestRouteUnparsed route them, and the fuzz body, which routes each
	// seed a dozen times, took 7 s on them under -race.
	for _, sh := range crashShapes {
		f.Add(sh.text(sh.crashAt / 4))
		f.Add(sh.text(200))
	}
	for _, text := range trickyTexts {
		f.Add(text)
	}
	for _, text := range normalizedCorpus {
		f.Add(text)
	}
	f.Add("select e'\\'' " + strings.Repeat("+1", 6000))
	f.Add("select '\\' " + strings.Repeat("+1", 6000) + " '")
	f.Add("select $a$ $$ " + strings.Repeat("+1", 6000) + " $a$" + strings.Repeat("||1", 6000))
	cached := NewRouter(128)
	uncached := NewRouter(0)
	sessions := []Session{{}, rwTx, roTx, defRO, withProc, withCfg}
	f.Fuzz(func(t *testing.T, text string) {
		if _, over := overBound(text, parseDepthLimit); !over {
			// The lexical estimate must not fall below the real depth.
			checkDepthEstimate(t, text)
		}
		if NoSessionEffects(text) && hasSessionEffects(uncached.Route(text, Session{})) {
			t.Fatalf("%.100q passes the lexical check but has session effects", text)
		}
		if PlainRead(text) {
			if d := uncached.Route(text, Session{}); d.Target != TargetReplica && d.Reason != ReasonParseError && !unparsedReason(d.Reason) {
				t.Fatalf("%.100q passes the lexical read check but routes to the %s (%s)", text, d.Target, d.Reason)
			}
		}
		for _, s := range sessions {
			d := cached.Route(text, s)
			if diff := diffDecision(uncached.Route(text, s), d); diff != "" {
				t.Fatalf("cached and uncached differ for %.100q:%s", text, diff)
			}
			if d.Target == TargetReplica && (d.Statements != 1 || len(d.WriteTables) > 0 || len(d.Pins) > 0 || d.ChangesSettings) {
				t.Fatalf("%.100q to a replica: %+v", text, d)
			}
			if unparsedReason(d.Reason) &&
				(d.Target != TargetPrimary || d.Cacheable || d.ChangesSettings == NoSessionEffects(text) || d.Fingerprint != 0) {
				t.Fatalf("%.100q unparsed: %+v", text, d)
			}
			if d.Reason == ReasonParseError && d.Fingerprint != 0 {
				t.Fatalf("%.100q: parse error with fingerprint", text)
			}
			if d.Cacheable && (d.Statements != 1 || d.Reason == ReasonHintPrimary) {
				t.Fatalf("%.100q: cacheable %+v", text, d)
			}
			for _, tables := range [][]string{d.ReadTables, d.WriteTables} {
				if !slices.IsSorted(tables) || len(slices.Compact(slices.Clone(tables))) != len(tables) {
					t.Fatalf("%.100q: tables not sorted and unique: %v", text, tables)
				}
			}
		}
		// The normalised level: the text's literal variants, which cached
		// answers from text's analysis when they share its normalised key,
		// are decided exactly as by parsing them.
		for _, v := range variantsOf(text, fuzzLiteralVariants, false) {
			parsed := uncached.analysisFor(v)
			for _, s := range sessions {
				if got, want := cached.Route(v, s), decide(parsed, &s); !reflect.DeepEqual(got, want) {
					t.Fatalf("%.100q (a variant of %.100q): cached %+v, parsed %+v", v, text, got, want)
				}
			}
		}
	})
}

// fuzzLiteralVariants are the values FuzzRoute puts in place of a text's
// literals: one of each placeholder kind, and a time word.
var fuzzLiteralVariants = []string{"0", "2147483648", "1.5e-3", "'x'", "'now'", "$q$z$q$", "B'1'", "X'F'"}

func unparsedReason(r Reason) bool { return r == ReasonTooLong || r == ReasonTooComplex }
