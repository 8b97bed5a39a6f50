package cache

import "testing"

// TestResolveUnknownLSN: an invalidation with an unknown LSN refuses
// replica fills until a primary LSN read after it resolves it, and never
// lowers a known LSN.
func TestResolveUnknownLSN(t *testing.T) {
	const db = "app"
	for _, tc := range []struct {
		name   string
		steps  func(v *Versions)
		replay LSN
		want   Refusal
	}{
		{"unresolved", func(v *Versions) { v.Bump(db, []string{"a"}, UnknownLSN) }, 1 << 60, RefuseReplicaLSN},
		{"resolved, replica there", func(v *Versions) {
			v.Bump(db, []string{"a"}, UnknownLSN)
			v.ResolveUnknownLSN(v.UnknownMark(), 500)
		}, 500, RefuseNone},
		{"resolved, replica behind", func(v *Versions) {
			v.Bump(db, []string{"a"}, UnknownLSN)
			v.ResolveUnknownLSN(v.UnknownMark(), 500)
		}, 499, RefuseReplicaLSN},
		{"unknown after the mark stays unresolved", func(v *Versions) {
			mark := v.UnknownMark()
			v.Bump(db, []string{"a"}, UnknownLSN)
			v.ResolveUnknownLSN(mark, 500)
		}, 1 << 60, RefuseReplicaLSN},
		{"a newer unknown is not resolved by an older mark", func(v *Versions) {
			v.Bump(db, []string{"a"}, UnknownLSN)
			mark := v.UnknownMark()
			v.Bump(db, []string{"a"}, UnknownLSN)
			v.ResolveUnknownLSN(mark, 500)
		}, 1 << 60, RefuseReplicaLSN},
		{"a known LSN above the resolving one stays", func(v *Versions) {
			v.Bump(db, []string{"a"}, UnknownLSN)
			mark := v.UnknownMark()
			v.Bump(db, []string{"a"}, 900) // committed after the primary LSN below was read
			v.ResolveUnknownLSN(mark, 800)
		}, 850, RefuseReplicaLSN},
		{"an epoch bump resolves too", func(v *Versions) {
			var tx Tx
			tx.MarkAll(v, db)
			tx.Commit(UnknownLSN, nil)
			v.ResolveUnknownLSN(v.UnknownMark(), 700)
		}, 700, RefuseNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := NewVersions()
			tc.steps(v)
			tok := v.Token(db, []string{"a"})
			if got := v.Check(&tok, true, tc.replay); got != tc.want {
				t.Fatalf("Check = %s, want %s", got, tc.want)
			}
		})
	}
}
