package router

import "strings"

// Server-dependent reads: functions and views whose answer depends on which
// server runs them, not only on the replicated data. A replica has its own
// backends, locks, statistics counters, WAL position, start time, files and
// settings, so a client asking "this server" about its own session (its
// query in pg_stat_activity, its locks, pg_backend_pid()) or about the
// primary (pg_is_in_recovery(), WAL positions) would get another server's
// answer. Route sends a read that uses any of them to the primary with
// ReasonServerDependent. A /* pgone:replica */ hint sends it to a replica
// (to watch a replica's own activity through pgone), and so does listing a
// function in config read_functions (an operator's explicit choice, e.g.
// inet_server_port to see which server answers). Only built-in names
// count: unqualified or in pg_catalog, as functions are matched elsewhere.
//
// The functions are serverFuncs (exact names) and serverFuncPrefixes
// (pg_current_*, pg_last_*, pg_is_*, pg_stat_*...); the views serverViews
// and serverViewPrefixes (pg_stat_*, pg_statio_*), below.
//
// inet_client_addr/port are listed with inet_server_addr/port: the client
// of a server connection is pgone, on another socket per server.
//
// Functions that write or fail on a standby (pg_current_wal_lsn,
// txid_current, pg_current_xact_id, pg_cancel_backend,
// pg_terminate_backend, pg_stat_reset*...) are in the write list and take
// ReasonWriteFunction first; a read that also calls a volatile function
// is ReasonVolatileFunction (it may write); otherwise ReasonServerDependent,
// which tells the proxy the statement only reads.
//
// Not listed: SHOW and current_setting() (session settings, which pgone
// replays on every server), version(), catalog tables (pg_class... are
// replicated), sizes (pg_relation_size... are volatile already).

var serverFuncs = setOf(`
pg_backend_pid pg_blocking_pids pg_safe_snapshot_blocking_pids
pg_isolation_test_session_is_blocked pg_my_temp_schema
pg_postmaster_start_time pg_conf_load_time pg_jit_available
pg_listening_channels pg_notification_queue_usage pg_trigger_depth
txid_current_if_assigned txid_current_snapshot txid_status
pg_xact_status pg_xact_commit_timestamp pg_xact_commit_timestamp_origin
pg_last_committed_xact inet_client_addr inet_client_port inet_server_addr
inet_server_port
pg_get_wal_replay_pause_state pg_get_replication_slots pg_lock_status
pg_prepared_xact pg_cursor pg_prepared_statement
pg_get_backend_memory_contexts pg_get_shmem_allocations
pg_show_all_settings pg_show_all_file_settings pg_hba_file_rules
pg_ident_file_mappings pg_replication_origin_progress
pg_replication_origin_session_progress pg_tablespace_location
`)

var serverFuncPrefixes = []string{
	"pg_current_", "pg_last_", "pg_is_", "pg_stat_", "pg_control_", "pg_ls_",
	"pg_read_", "pg_wal_replay_",
}

var serverViews = setOf(`
pg_locks pg_prepared_xacts pg_replication_slots pg_replication_origin_status
pg_backend_memory_contexts pg_shmem_allocations pg_file_settings
pg_hba_file_rules pg_ident_file_mappings pg_settings pg_cursors
pg_prepared_statements
`)

var serverViewPrefixes = []string{"pg_stat_", "pg_statio_"}

// isServerFunc reports a built-in function (name without schema, empty
// for a function outside pg_catalog) whose answer depends on the server.
func isServerFunc(builtin string) bool {
	return builtin != "" && (serverFuncs[builtin] || hasAnyPrefix(builtin, serverFuncPrefixes))
}

// isServerView reports a relation, unqualified or in pg_catalog, whose
// contents depend on the server.
func isServerView(schema, rel string) bool {
	if schema != "" && schema != "pg_catalog" {
		return false
	}
	return serverViews[rel] || hasAnyPrefix(rel, serverViewPrefixes)
}

// serverWord reports a word that may name a server-dependent view, for
// the lexical checks (a word longer than lexWord keeps is its prefix).
// PlainRead asks it of every word of every simple-protocol read: the
// "pg_" test, which every such view passes, spares most words the map
// lookup and the prefix scans.
func serverWord(w string) bool {
	return strings.HasPrefix(w, "pg_") && (serverViews[w] || hasAnyPrefix(w, serverViewPrefixes))
}

// isServerCall reports a call of a server-dependent built-in that the
// session's config read_functions does not list.
func isServerCall(f funcRef, s *Session) bool {
	return f.server && !(s.ReadFunctions[f.name] || s.ReadFunctions[f.unqualified])
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func setOf(names string) map[string]bool {
	m := map[string]bool{}
	for _, n := range strings.Fields(names) {
		m[n] = true
	}
	return m
}
