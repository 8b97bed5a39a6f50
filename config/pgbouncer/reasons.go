package pgbouncer

// Reasons for [pgbouncer] keys pgone has no equivalent for. A key missing
// here and not translated gets noEquivalent.
const noEquivalent = "no pgone equivalent"

// reasonFor is why key has no pgone equivalent: its entry in reasons, or
// noEquivalent.
func reasonFor(reasons map[string]string, key string) string {
	if r, ok := reasons[key]; ok {
		return r
	}
	return noEquivalent
}

var pgbouncerReasons = map[string]string{
	"logfile":                   "pgone logs to stderr (log.format, log.level)",
	"syslog":                    "pgone logs to stderr (log.format, log.level)",
	"syslog_ident":              "pgone logs to stderr (log.format, log.level)",
	"syslog_facility":           "pgone logs to stderr (log.format, log.level)",
	"log_connections":           "pgone's log level decides what is logged (log.level)",
	"log_disconnections":        "pgone's log level decides what is logged (log.level)",
	"log_pooler_errors":         "pgone's log level decides what is logged (log.level)",
	"log_stats":                 "pgone exports statistics as Prometheus metrics (http.listen) instead of log lines",
	"stats_period":              "pgone exports statistics as Prometheus metrics (http.listen) instead of log lines",
	"verbose":                   "pgone's log level decides what is logged (log.level)",
	"pidfile":                   "pgone writes no pid file; run it under a supervisor",
	"user":                      "pgone does not switch OS user; start it as the user it should run as",
	"unix_socket_dir":           "pgone listens on TCP only",
	"unix_socket_mode":          "pgone listens on TCP only",
	"unix_socket_group":         "pgone listens on TCP only",
	"stats_users":               "pgone has no read-only console role; add these users to admin_users to give them the whole console",
	"auth_hba_file":             "pgone has no pg_hba rules: one auth_method, overridable per user (users.NAME.auth_method)",
	"auth_ident_file":           "pgone has no pg_hba rules: one auth_method, overridable per user (users.NAME.auth_method)",
	"server_reset_query":        "not needed: pgone cleans server connections itself (rolls back abandoned transactions, resets what clients changed)",
	"server_reset_query_always": "not needed: pgone cleans server connections itself (rolls back abandoned transactions, resets what clients changed)",
	"server_check_query":        "pgone runs no check query before handing out a server connection",
	"server_check_delay":        "pgone runs no check query before handing out a server connection",
	"ignore_startup_parameters": "not needed: pgone refuses no startup parameter; it applies each on the server as PostgreSQL would",
	"max_prepared_statements":   "not needed: pgone tracks protocol-level prepared statements in transaction mode itself",
	"max_db_connections":        "pgone limits server connections per pool (pool_size) and in total (pool.max_server_connections), not per database",
	"max_user_connections":      "pgone limits server connections per pool (pool_size) and in total (pool.max_server_connections), not per user",
	"server_tls_cert_file":      "pgone presents no client certificate to servers",
	"server_tls_key_file":       "pgone presents no client certificate to servers",
	"server_tls_protocols":      "pgone has no setting for TLS versions or ciphers (Go's defaults apply)",
	"server_tls_ciphers":        "pgone has no setting for TLS versions or ciphers (Go's defaults apply)",
	"client_tls_protocols":      "pgone has no setting for TLS versions or ciphers (Go's defaults apply)",
	"client_tls_ciphers":        "pgone has no setting for TLS versions or ciphers (Go's defaults apply)",
	"client_tls_ecdhcurve":      "pgone has no setting for TLS versions or ciphers (Go's defaults apply)",
	"client_tls_dheparams":      "pgone has no setting for TLS versions or ciphers (Go's defaults apply)",
	"client_tls_ca_file":        "pgone does not verify client certificates",
}

// Reasons for [databases] entry parameters pgone cannot carry per database.
var databaseReasons = map[string]string{
	"max_db_connections": "pgone limits server connections per pool (pool_size) and in total (pool.max_server_connections), not per database",
	"reserve_pool":       "pgone has only the global pool.reserve_pool_size",
	"reserve_pool_size":  "pgone has only the global pool.reserve_pool_size",
	"min_pool_size":      "pgone has only the global pool.min_pool_size",
	"connect_query":      "pgone runs no query on new server connections",
	"client_encoding":    "pgone sets no per-database startup parameters; use ALTER DATABASE ... SET in PostgreSQL",
	"datestyle":          "pgone sets no per-database startup parameters; use ALTER DATABASE ... SET in PostgreSQL",
	"timezone":           "pgone sets no per-database startup parameters; use ALTER DATABASE ... SET in PostgreSQL",
	"application_name":   "pgone sets no per-database startup parameters; use ALTER DATABASE ... SET in PostgreSQL",
	"auth_user":          "pgone has one auth_query for all databases (auth_query.user)",
	"auth_query":         "pgone has one auth_query for all databases (auth_query.query)",
	"auth_dbname":        "pgone has one auth_query for all databases (auth_query.database)",
}
