package proxy

import (
	"time"

	"github.com/pgone/pgone/cache"
)

// Cache admission (cache mode auto): besides the rules and hints, the
// cache admits the statements a CacheAdmission names by fingerprint (the
// tuner's loop 2 picks them from what it measures), for the databases
// whose mode is auto (a database's cache_mode, else cache.mode) only. An admitted statement
// still passes every check of cacheableRead (cacherules.go): the router's
// verdict, no catalogs, no nocache hint, and whatever else it requires;
// the admission only stands in for the rule naming its tables.

// CacheAdmission names the fingerprints the cache admits. Admitted is
// called for every cacheable read that no rule admits, from every
// session: it must be safe for concurrent use and cheap (no lock).
type CacheAdmission interface {
	Admitted(fingerprint uint64) bool
}

// SetCacheAdmission lets a admit statements to the cache (cache.mode
// auto); call it after SetCache and before Serve. Without the cache it
// does nothing.
func (s *Server) SetCacheAdmission(a CacheAdmission) {
	if h := s.hooks.cacheHooks(); h != nil {
		h.admission = a
	}
}

// cacheableRead is the rules' verdict, or, in mode auto, for a statement
// the admission names, the verdict of rules that name its tables.
//
// Admission needs cache.invalidation: logical. A rule is the operator's
// word that every write to its table goes through pgone or is bounded by
// its TTL; nobody gives that word for a table the tuner picks, and writes
// pgone never sees as writes of that table (a trigger or an ON DELETE
// CASCADE fired by a write of another table, a write made directly on the
// primary) would leave its entries stale. Only the replication stream sees
// them all.
func (h *cacheHooks) cacheableRead(st StatementPlan, mode cache.Mode) (time.Duration, bool) {
	ttl, ok := h.rules.cacheableRead(st, false)
	if ok || mode != cache.ModeAuto || h.admission == nil || h.logical == nil || st.Fingerprint == 0 ||
		len(st.ReadTables) == 0 || !h.admission.Admitted(st.Fingerprint) {
		return ttl, ok
	}
	return h.rules.cacheableRead(st, true) // as a fingerprint rule would, a table rule's shorter TTL kept
}
