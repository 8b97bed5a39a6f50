package proxy

import (
	"slices"
	"testing"
)

// TestCacheCatalogRefusalAndNames: the catalog's never-cache rules, seen
// through views and partitions, and the names a read or write counts for.
func TestCacheCatalogRefusalAndNames(t *testing.T) {
	rels := [][]string{
		// name, relkind, relpersistence, relrowsecurity, system
		{"plain", "r", "p", "false", "false"},
		{"rls", "r", "p", "true", "false"},
		{"tmp", "r", "t", "false", "false"},
		{"ft", "f", "p", "false", "false"},
		{"pg_class", "r", "p", "false", "true"},
		{"parent", "p", "p", "false", "false"},
		{"child1", "r", "p", "false", "false"},
		{"child2", "r", "p", "false", "false"},
		{"mixed", "p", "p", "false", "false"},
		{"mixed_local", "r", "p", "false", "false"},
		{"mixed_remote", "f", "p", "false", "false"},
		{"v_plain", "v", "p", "false", "false"},
		{"v_rls", "v", "p", "false", "false"},
		{"v_v", "v", "p", "false", "false"},
		{"v_now", "v", "p", "false", "false"},
		{"dup", "r", "p", "false", "false"},
		{"dup", "r", "p", "true", "false"}, // same name, another schema
		{"unlogged", "r", "u", "false", "false"},
		{"mv", "m", "p", "false", "false"},
	}
	reads := [][]string{
		{"parent", "child1"}, {"parent", "child2"},
		{"mixed", "mixed_local"}, {"mixed", "mixed_remote"},
		{"v_plain", "plain"}, {"v_rls", "rls"}, {"v_v", "v_plain"},
	}
	c := buildCacheCatalog(rels, reads, [][]string{{"v_now"}}, nil)
	for _, tc := range []struct {
		table string
		ok    bool
	}{
		{"plain", true}, {"rls", false}, {"tmp", false}, {"ft", false}, {"pg_class", false},
		{"parent", true}, {"child1", true}, {"mixed", false}, {"mixed_local", true},
		{"v_plain", true}, {"v_rls", false}, {"v_v", true}, {"v_now", false},
		{"dup", false}, {"unknown", false}, {"unlogged", true}, {"mv", true},
	} {
		if why := c.refusal(tc.table); (why == "") != tc.ok {
			t.Errorf("refusal(%s) = %q, want cacheable %v", tc.table, why, tc.ok)
		}
	}
	for _, tc := range []struct {
		table string
		want  []string
	}{
		{"plain", []string{"plain", "v_plain", "v_v"}},
		{"child1", []string{"child1", "child2", "parent"}},
		{"parent", []string{"child1", "child2", "parent"}},
		{"v_v", []string{"plain", "v_plain", "v_v"}},
		{"tmp", []string{"tmp"}},
		{"unknown", []string{"unknown"}},
	} {
		if got := c.names(nil, tc.table); !slices.Equal(got, tc.want) {
			t.Errorf("names(%s) = %v, want %v", tc.table, got, tc.want)
		}
	}
	var none *cacheCatalog // not loaded: the bare name
	if got := none.names(nil, "child1"); !slices.Equal(got, []string{"child1"}) {
		t.Errorf("names before a load = %v", got)
	}
	if buildCacheCatalog(rels, reads, nil, nil).sum == c.sum {
		t.Error("a changed catalog has the same sum")
	}
	// With logical invalidation, what the stream never carries is refused.
	lc := buildCacheCatalog(rels, reads, nil, &streamCoverage{all: true})
	for _, table := range []string{"unlogged", "mv"} {
		if lc.refusal(table) == "" {
			t.Errorf("logical: %s may be cached; its writes are not in the stream", table)
		}
	}
	if lc.refusal("plain") != "" {
		t.Error("logical: plain refused")
	}
	// A publication of some tables: the others are refused, and a parent
	// with a partition outside it.
	pc := buildCacheCatalog(rels, reads, nil, &streamCoverage{tables: map[string]bool{"plain": true, "child1": true}})
	for table, ok := range map[string]bool{"plain": true, "v_plain": true, "child1": true, "child2": false, "parent": false, "dup": false} {
		if why := pc.refusal(table); (why == "") != ok {
			t.Errorf("publication of plain, child1: refusal(%s) = %q, want cacheable %v", table, why, ok)
		}
	}
}
