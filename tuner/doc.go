// Package tuner keeps per-query statistics and runs the control loops that
// change pgone's knobs from what it measures: pool sizes (loop "pool"),
// cache admission ("cache"), replica weights ("replica") and PostgreSQL
// settings advice ("settings"). Samples come in (Tuner.Record, fed by
// the proxy's after-reply hook through cmd/pgone), pool observations come
// in through the Knobs interface the tuner declares, and decisions go out
// through the same Knobs: the tuner imports no other part of pgone. Loop
// 3 sets replica weights (ReplicaKnobs), loop 4 advises PostgreSQL
// settings and applies the reloadable ones when allowed (SettingsSource);
// cache admission is read by the proxy through Tuner.Admitted.
//
// Lifecycle: New builds a Tuner from its Config (the `tuner:` section);
// Step(now) runs every loop once and is what tests call with a fake
// clock; Run calls Step on a ticker until its context ends (its owner is
// cmd/pgone), and every settingsEvery intervals loop 4's StepSettings,
// which does its I/O outside the tuner's lock. The decision logic is
// pure: each loop reads its inputs and its own state and returns a
// Decision; only Step applies it (mode on),
// logs it once with its inputs and counts it in
// pgone_tuner_decisions_total{loop,action}. Mode dry-run logs and counts
// what it would do without acting.
//
// Concurrency: Record is called by every session's pump and is safe for
// concurrent use (one short lock per sample, no allocation once a
// fingerprint is known). Step, Run and the read side (Queries, Status)
// may run concurrently with Record.
//
// Bounds: statistics are kept for at most 2×top_queries fingerprints
// (the entry with the least total time makes room); SHOW QUERIES and the
// metrics show the top top_queries by total time, so label cardinality is
// bounded. Statement text is normalised (constants replaced by $n) once
// per fingerprint, through a function cmd/pgone passes in (the router's
// bounded pg_query call), and kept only up to 1 KiB.
package tuner
