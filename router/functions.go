package router

import "strings"

// funcRef is one function a statement calls, named three ways so the
// per-call lookups need no string building.
// The built-in lookups depend on the name only, so they are done once.
type funcRef struct {
	name         string // as resolved from the text: "lower", "app.f", "pg_catalog.now"
	unqualified  string // without schema: "lower", "f", "now"
	builtin      string // unqualified if the schema is empty or pg_catalog, else ""
	builtinWrite bool   // isBuiltinWrite(builtin)
	builtinVol   byte   // builtinVolatility[builtin], 0 if not listed
	server       bool   // isServerFunc(builtin): the answer depends on the server
}

func newFuncRef(parts []string) funcRef {
	f := funcRef{name: strings.Join(parts, "."), unqualified: parts[len(parts)-1]}
	if len(parts) == 1 || (len(parts) == 2 && parts[0] == "pg_catalog") {
		f.builtin = f.unqualified
		f.builtinWrite = isBuiltinWrite(f.builtin)
		f.builtinVol = builtinVolatility[f.builtin]
		f.server = isServerFunc(f.builtin)
	}
	return f
}

// volClass orders what a function call means for routing and caching, from
// harmless to forcing the primary.
type volClass uint8

const (
	volImmutable volClass = iota // replica, cacheable
	volStable                    // replica, not cacheable
	volVolatile                  // primary (ReasonVolatileFunction)
	volWrite                     // primary (ReasonWriteFunction)
)

// classify decides one call's class in one session. Order: config
// WriteFunctions, the built-in write list, pg_proc (s.Functions), the
// built-in volatility list, then config ReadFunctions for what is still
// volatile or unknown. Unknown functions are volatile.
func classify(f funcRef, s *Session) volClass {
	if s.WriteFunctions != nil && (s.WriteFunctions[f.name] || s.WriteFunctions[f.unqualified]) {
		return volWrite
	}
	if f.builtinWrite {
		return volWrite
	}
	v, ok := byte(0), false
	if s.Functions != nil {
		v, ok = s.Functions.Volatility(f.name)
		if !ok && f.builtin != "" && f.builtin != f.name {
			v, ok = s.Functions.Volatility(f.builtin)
		}
	}
	if !ok && f.builtinVol != 0 {
		v, ok = f.builtinVol, true
	}
	c := volVolatile
	if ok {
		switch v {
		case 'i':
			c = volImmutable
		case 's':
			c = volStable
		}
	}
	if c == volVolatile && s.ReadFunctions != nil && (s.ReadFunctions[f.name] || s.ReadFunctions[f.unqualified]) {
		c = volStable
	}
	return c
}

// isBuiltinWrite reports functions that write, take locks, change settings
// or fail on a hot standby. No config can send them to a replica.
func isBuiltinWrite(name string) bool {
	return builtinWrite[name] || hasAnyPrefix(name, builtinWritePrefixes)
}

var builtinWritePrefixes = []string{"pg_advisory_", "pg_try_advisory_", "lo_", "dblink", "pg_stat_reset"}

var builtinWrite = map[string]bool{
	"nextval": true, "setval": true, "set_config": true, "pg_notify": true,
	"lowrite": true, "loread": true,
	"txid_current": true, "pg_current_xact_id": true, "pg_current_wal_lsn": true,
	"pg_current_wal_insert_lsn": true, "pg_switch_wal": true, "pg_create_restore_point": true,
	"pg_backup_start": true, "pg_backup_stop": true, "pg_reload_conf": true,
	"pg_rotate_logfile": true, "pg_terminate_backend": true, "pg_cancel_backend": true,
	"pg_create_physical_replication_slot": true, "pg_create_logical_replication_slot": true,
	"pg_drop_replication_slot": true, "pg_replication_slot_advance": true,
	"pg_logical_emit_message": true, "pg_logical_slot_get_changes": true,
	"pg_logical_slot_get_binary_changes": true, "pg_import_system_collations": true,
	"pg_promote": true,
}

// sessionAdvisoryLocks take locks held until session end: they pin.
var sessionAdvisoryLocks = map[string]bool{
	"pg_advisory_lock": true, "pg_advisory_lock_shared": true,
	"pg_try_advisory_lock": true, "pg_try_advisory_lock_shared": true,
}

// builtinVolatility is the fallback when Functions is nil or does not know a
// name. Volatility is by name, so a name is listed at the most volatile of
// its overloads (generate_series is stable because of its timestamptz form).
var builtinVolatility = map[string]byte{}

func init() {
	for _, n := range strings.Fields(immutableNames) {
		builtinVolatility[n] = 'i'
	}
	for _, n := range strings.Fields(stableNames) {
		builtinVolatility[n] = 's'
	}
	for _, n := range strings.Fields(volatileNames) {
		builtinVolatility[n] = 'v'
	}
}

const immutableNames = `
abs acos asin atan atan2 cos sin tan cot degrees radians pi ceil ceiling floor
round trunc sign sqrt cbrt exp ln log log10 power pow mod div gcd lcm factorial
width_bucket scale min_scale trim_scale
lower upper initcap length char_length character_length octet_length bit_length
substr substring left right lpad rpad btrim ltrim rtrim replace reverse repeat
split_part strpos position translate ascii chr md5 sha224 sha256 sha384 sha512
encode decode starts_with overlay quote_ident
regexp_replace regexp_match regexp_matches regexp_split_to_array
regexp_split_to_table regexp_count regexp_instr regexp_like regexp_substr
array_length array_upper array_lower array_ndims array_dims cardinality
array_append array_prepend array_cat array_position array_positions
array_remove array_replace unnest string_to_array string_to_table
count sum avg min max bool_and bool_or every array_agg string_agg
stddev stddev_pop stddev_samp variance var_pop var_samp bit_and bit_or bit_xor
corr covar_pop covar_samp regr_avgx regr_avgy regr_count regr_intercept
regr_r2 regr_slope regr_sxx regr_sxy regr_syy percentile_cont percentile_disc mode
row_number rank dense_rank percent_rank cume_dist ntile lag lead
first_value last_value nth_value
json_typeof jsonb_typeof json_array_length jsonb_array_length
json_extract_path json_extract_path_text jsonb_extract_path jsonb_extract_path_text
json_array_elements json_array_elements_text jsonb_array_elements
jsonb_array_elements_text json_each json_each_text jsonb_each jsonb_each_text
json_object_keys jsonb_object_keys jsonb_set jsonb_insert jsonb_strip_nulls
jsonb_pretty jsonb_path_exists jsonb_path_query jsonb_path_query_array
jsonb_path_query_first jsonb_path_match
num_nonnulls num_nulls pg_size_pretty pg_size_bytes
like_escape similar_to_escape similar_escape is_normalized normalize
`

const stableNames = `
now transaction_timestamp statement_timestamp current_setting current_database
current_schema current_schemas current_user session_user current_role user version
pg_backend_pid inet_client_addr inet_client_port inet_server_addr inet_server_port
pg_postmaster_start_time pg_conf_load_time
has_table_privilege has_schema_privilege has_database_privilege has_column_privilege
has_function_privilege has_sequence_privilege pg_has_role row_security_active
pg_get_viewdef pg_get_indexdef pg_get_constraintdef pg_get_functiondef pg_get_expr
pg_get_userbyid pg_get_serial_sequence pg_table_is_visible pg_type_is_visible
pg_function_is_visible pg_typeof format_type obj_description col_description
shobj_description pg_encoding_to_char pg_collation_for
to_char to_date to_number to_timestamp date_trunc date_part extract age timezone
make_timestamptz date_bin isfinite justify_days justify_hours justify_interval
generate_series generate_subscripts format concat concat_ws quote_literal quote_nullable
to_json to_jsonb row_to_json array_to_json array_to_string
json_build_object jsonb_build_object json_build_array jsonb_build_array
json_agg jsonb_agg json_object_agg jsonb_object_agg json_object jsonb_object
txid_current_snapshot pg_current_snapshot txid_snapshot_xmin txid_snapshot_xmax
`

const volatileNames = `
random random_normal setseed clock_timestamp timeofday gen_random_uuid
uuid_generate_v1 uuid_generate_v1mc uuid_generate_v4 pg_sleep pg_sleep_for
pg_sleep_until currval lastval pg_relation_size pg_total_relation_size
pg_table_size pg_indexes_size pg_database_size pg_tablespace_size pg_is_in_recovery
pg_last_wal_replay_lsn pg_last_wal_receive_lsn pg_last_xact_replay_timestamp
current_query pg_read_file pg_read_binary_file pg_ls_dir pg_stat_file
`
