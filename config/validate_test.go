package config

import (
	"strings"
	"testing"
)

// Valid password forms for bob, who is used in the user rules below.
const (
	bobMD5 = "md50b9789f4aeea4f6c7edf16192882e9aa" // md5("bob-secret" + "bob")
	scram  = "SCRAM-SHA-256$4096:AQIDBAUGBwgJCgsMDQ4PEA==$mGG3LFkLrXT8tgW8HJIC6t3ylYQajN2QySybnuj4dic=:t4Cj/hJJjWo3Z2g4KGOaKmGjPy0jmBwUbcXxByOnRBM="
)

// withUsers is a config whose users section is the given text.
func withUsers(users string) string {
	return "databases: {app: {host: h}}\nusers:\n" + users
}

// withDatabases is a config whose databases section is the given text.
func withDatabases(dbs string) string {
	return "users: {alice: {password: p}}\ndatabases:\n" + dbs
}

// TestValidateRules has at least one case per rule of proxy.Config,
// pool.Config and this package's own sections, each checked for the exact set
// of problem keys so a rule cannot also fire elsewhere unnoticed.
func TestValidateRules(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []Problem // Key and a substring of Message, in order
	}{
		// proxy: top level
		{"listen without port", withMinimal("listen: localhost\n"),
			[]Problem{{Key: "listen", Message: `must be host:port, got "localhost"`}}},
		{"unknown auth_method", withMinimal("auth_method: ldap\n"),
			[]Problem{{Key: "auth_method", Message: `got "ldap"`}}},
		// proxy: limits
		{"max_client_conn below 1", withMinimal("limits: {max_client_conn: -1}\n"),
			[]Problem{{Key: "limits.max_client_conn", Message: "must be at least 1, got -1"}}},
		{"max_message_size below 1024", withMinimal("limits: {max_message_size: 100}\n"),
			[]Problem{{Key: "limits.max_message_size", Message: "must be at least 1024 bytes, got 100"}}},
		{"negative client_login_timeout", withMinimal("limits: {client_login_timeout: -1s}\n"),
			[]Problem{{Key: "limits.client_login_timeout", Message: "must not be negative"}}},
		{"negative shutdown_timeout", withMinimal("limits: {shutdown_timeout: -1m}\n"),
			[]Problem{{Key: "limits.shutdown_timeout", Message: "must not be negative"}}},
		{"negative query_timeout", withMinimal("limits: {query_timeout: -1s}\n"),
			[]Problem{{Key: "limits.query_timeout", Message: "must not be negative"}}},
		{"negative database query_timeout", withDatabases("  app: {host: h, query_timeout: -1s}\n"),
			[]Problem{{Key: "databases.app.query_timeout", Message: "must not be negative"}}},
		{"negative user query_timeout", withUsers("  bob: {password: p, query_timeout: -1s}\n"),
			[]Problem{{Key: "users.bob.query_timeout", Message: "must not be negative"}}},
		// proxy: tls
		{"tls require without files", withMinimal("tls: {mode: require}\n"),
			[]Problem{{Key: "tls.cert_file", Message: "is required with mode require"}, {Key: "tls.key_file", Message: "is required with mode require"}}},
		{"tls cert_file alone defaults to allow and needs key_file", withMinimal("tls: {cert_file: server.crt}\n"),
			[]Problem{{Key: "tls.key_file", Message: "is required with mode allow"}}},
		{"unknown tls mode", withMinimal("tls: {mode: maybe}\n"),
			[]Problem{{Key: "tls.mode", Message: `must be disable, allow or require, got "maybe"`}}},
		// proxy: databases
		{"no databases", "users: {alice: {password: p}}\n",
			[]Problem{{Key: "databases", Message: "at least one database is required"}}},
		{"empty databases", "users: {alice: {password: p}}\ndatabases: {}\n",
			[]Problem{{Key: "databases", Message: "at least one database is required"}}},
		{"unknown consistency", withDatabases("  app: {host: h, consistency: strong}\n"),
			[]Problem{{Key: "databases.app.consistency", Message: `must be read_your_writes, read_user_writes, read_all_writes, eventual or primary_only, got "strong"`}}},
		{"routing refresh below 1s", withMinimal("routing: {functions_refresh_interval: 100ms}\n"),
			[]Problem{{Key: "routing.functions_refresh_interval", Message: "must be at least 1s"}}},
		{"empty routing function name", withMinimal("routing: {write_functions: [f, ' '], read_functions: ['']}\n"),
			[]Problem{{Key: "routing.write_functions[1]", Message: "must not be empty"}, {Key: "routing.read_functions[0]", Message: "must not be empty"}}},
		{"reserved database name", withDatabases("  pgone: {host: h}\n"),
			[]Problem{{Key: "databases.pgone", Message: "reserved for the admin console"}}},
		{"database without host", withDatabases("  app: {port: 5433}\n"),
			[]Problem{{Key: "databases.app.host", Message: "is required"}}},
		{"database port too high", withDatabases("  app: {host: h, port: 70000}\n"),
			[]Problem{{Key: "databases.app.port", Message: "must be 1-65535, got 70000"}}},
		{"database port negative", withDatabases("  app: {host: h, port: -1}\n"),
			[]Problem{{Key: "databases.app.port", Message: "must be 1-65535, got -1"}}},
		{"database negative pool_size", withDatabases("  app: {host: h, pool_size: -3}\n"),
			[]Problem{{Key: "databases.app.pool_size", Message: "must not be negative, got -3"}}},
		{"database unknown pool_mode", withDatabases("  app: {host: h, pool_mode: statement}\n"),
			[]Problem{{Key: "databases.app.pool_mode", Message: `must be session or transaction, got "statement"`}}},
		{"database password without user", withDatabases("  app: {host: h, password: s}\n"),
			[]Problem{{Key: "databases.app.user", Message: "is required when password is set"}}},
		{"wildcard database without host", withDatabases("  \"*\": {port: 5432}\n"),
			[]Problem{{Key: "databases.*.host", Message: "is required"}}},
		// proxy: replicas
		{"replica without host", withDatabases("  app: {host: h, replicas: [{port: 5432}]}\n"),
			[]Problem{{Key: "databases.app.replicas[0].host", Message: "is required"}}},
		{"replica port out of range", withDatabases("  app: {host: h, replicas: [{host: r, port: 5432}, {host: r, port: 70000}]}\n"),
			[]Problem{{Key: "databases.app.replicas[1].port", Message: "must be 1-65535, got 70000"}}},
		{"replica negative weight", withDatabases("  app: {host: h, replicas: [{host: r, port: 5432, weight: -1}]}\n"),
			[]Problem{{Key: "databases.app.replicas[0].weight", Message: "must not be negative, got -1"}}},
		// proxy: servers (the role form)
		{"servers and host both", withDatabases("  app: {host: h, servers: [{host: a, role: auto}]}\n"),
			[]Problem{{Key: "databases.app.servers", Message: "not both"}}},
		{"auto next to a fixed role", withDatabases("  app: {servers: [{host: a, role: auto}, {host: b, role: replica}]}\n"),
			[]Problem{{Key: "databases.app.servers[0].role", Message: "auto must be on every server"}, {Key: "databases.app.servers", Message: "exactly one server with role primary"}}},
		{"two fixed primaries", withDatabases("  app: {servers: [{host: a, role: primary}, {host: b, role: primary}]}\n"),
			[]Problem{{Key: "databases.app.servers", Message: "got 2"}}},
		{"unknown role", withDatabases("  app: {servers: [{host: a, role: primary}, {host: b, role: standby}]}\n"),
			[]Problem{{Key: "databases.app.servers[1].role", Message: `must be primary, replica or auto, got "standby"`}}},
		{"server without host", withDatabases("  app: {servers: [{port: 5432}]}\n"),
			[]Problem{{Key: "databases.app.servers[0].host", Message: "is required"}}},
		{"auto on the wildcard", withDatabases("  \"*\": {servers: [{host: a, role: auto}]}\n"),
			[]Problem{{Key: "databases.*.servers", Message: "needs a named database"}}},
		{"auto without a login to monitor with", "users: {alice: {password: " + bobMD5 + "}}\ndatabases:\n  app: {servers: [{host: a, role: auto}]}\n",
			[]Problem{{Key: "databases.app.user", Message: "role auto needs a login"}}},
		// proxy: users
		{"no users", "databases: {app: {host: h}}\n",
			[]Problem{{Key: "users", Message: "at least one user is required (or auth_query.user)"}}},
		{"user unknown auth_method", withUsers("  bob: {password: p, auth_method: kerberos}\n"),
			[]Problem{{Key: "users.bob.auth_method", Message: `got "kerberos"`}}},
		{"user without password under scram", withUsers("  bob: {}\n"),
			[]Problem{{Key: "users.bob.password", Message: "is required with auth_method scram-sha-256"}}},
		{"user without password under global md5", "auth_method: md5\n" + withUsers("  bob: {pool_mode: session}\n"),
			[]Problem{{Key: "users.bob.password", Message: "is required with auth_method md5"}}},
		{"md5 hash of the wrong length", withUsers("  bob: {password: md5abc123}\n"),
			[]Problem{{Key: "users.bob.password", Message: "md5 hash must be"}}},
		{"malformed SCRAM verifier", withUsers("  bob: {password: \"SCRAM-SHA-256$4096:c2FsdA==\"}\n"),
			[]Problem{{Key: "users.bob.password", Message: "SCRAM verifier"}}},
		{"user unknown pool_mode", withUsers("  bob: {password: p, pool_mode: statement}\n"),
			[]Problem{{Key: "users.bob.pool_mode", Message: `must be session or transaction, got "statement"`}}},
		{"admin user not in users", withMinimal("admin_users: [alice, root]\n"),
			[]Problem{{Key: "admin_users[1]", Message: `user "root" is not in users`}}},
		// cache
		{"unknown cache mode", withMinimal("cache: {mode: on}\n"),
			[]Problem{{Key: "cache.mode", Message: `must be off, rules or auto`}}},
		{"unknown database cache_mode", withDatabases("  app: {host: h, cache_mode: on}\n"),
			[]Problem{{Key: "databases.app.cache_mode", Message: `must be off, rules or auto, got "on"`}}},
		{"cache rule naming nothing", withMinimal("cache: {rules: [{table: t}, {ttl: 30s}]}\n"),
			[]Problem{{Key: "cache.rules[1]", Message: "must name a table or a fingerprint"}}},
		{"cache rule naming table and fingerprint", withMinimal("cache: {rules: [{table: t, fingerprint: a1b2c3d4e5f60718}]}\n"),
			[]Problem{{Key: "cache.rules[0]", Message: "a rule names one"}}},
		{"cache rule fingerprint not hex", withMinimal("cache: {rules: [{fingerprint: \"SELECT 1\"}]}\n"),
			[]Problem{{Key: "cache.rules[0].fingerprint", Message: "16 hex digits"}}},
		{"cache entry over max_bytes", withMinimal("cache: {max_bytes: 1000, max_entry_bytes: 2000}\n"),
			[]Problem{{Key: "cache.max_entry_bytes", Message: "must not exceed max_bytes (1000), got 2000"}}},
		// pool
		{"pool unknown mode", withMinimal("pool: {mode: statement}\n"),
			[]Problem{{Key: "pool.mode", Message: `must be session or transaction, got "statement"`}}},
		{"pool_size below 1", withMinimal("pool: {pool_size: -1}\n"),
			[]Problem{{Key: "pool.pool_size", Message: "must be at least 1, got -1"}}},
		{"max_server_connections below 1", withMinimal("pool: {max_server_connections: -5}\n"),
			[]Problem{{Key: "pool.max_server_connections", Message: "must be at least 1, got -5"}}},
		{"negative query_wait_timeout", withMinimal("pool: {query_wait_timeout: -1s}\n"),
			[]Problem{{Key: "pool.query_wait_timeout", Message: "must not be negative, got -1s"}}},
		{"negative server_connect_timeout", withMinimal("pool: {server_connect_timeout: -1s}\n"),
			[]Problem{{Key: "pool.server_connect_timeout", Message: "must not be negative, got -1s"}}},
		{"negative server_idle_timeout", withMinimal("pool: {server_idle_timeout: -1s}\n"),
			[]Problem{{Key: "pool.server_idle_timeout", Message: "must not be negative, got -1s"}}},
		{"negative server_lifetime", withMinimal("pool: {server_lifetime: -1s}\n"),
			[]Problem{{Key: "pool.server_lifetime", Message: "must not be negative, got -1s"}}},
		{"all pool durations negative, sorted by key", withMinimal("pool: {server_lifetime: -1s, query_wait_timeout: -1s, server_idle_timeout: -1s, server_connect_timeout: -1s}\n"),
			[]Problem{{Key: "pool.query_wait_timeout"}, {Key: "pool.server_connect_timeout"}, {Key: "pool.server_idle_timeout"}, {Key: "pool.server_lifetime"}}},
		{"unknown sslmode", withMinimal("pool: {server_tls: {sslmode: on}}\n"),
			[]Problem{{Key: "pool.server_tls.sslmode", Message: `got "on"`}}},
		{"verify-ca without root_cert", withMinimal("pool: {server_tls: {sslmode: verify-ca}}\n"),
			[]Problem{{Key: "pool.server_tls.root_cert", Message: "is required with sslmode verify-ca"}}},
		{"verify-full without root_cert", withMinimal("pool: {server_tls: {sslmode: verify-full}}\n"),
			[]Problem{{Key: "pool.server_tls.root_cert", Message: "is required with sslmode verify-full"}}},
		// config's own sections
		{"unknown log format", withMinimal("log: {format: xml}\n"),
			[]Problem{{Key: "log.format", Message: `must be text or json, got "xml"`}}},
		{"unknown log level", withMinimal("log: {level: verbose}\n"),
			[]Problem{{Key: "log.level", Message: `must be debug, info, warn or error, got "verbose"`}}},
		{"http listen without port", withMinimal("http: {listen: localhost}\n"),
			[]Problem{{Key: "http.listen", Message: `must be host:port, got "localhost"`}}},
		{"http listen bad port", withMinimal("http: {listen: \"127.0.0.1:99999\"}\n"),
			[]Problem{{Key: "http.listen", Message: `port must be 0-65535, got "99999"`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustFail(t, tt.text)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%s", len(got), len(tt.want), &Error{got})
			}
			for i, w := range tt.want {
				if got[i].Key != w.Key || !strings.Contains(got[i].Message, w.Message) {
					t.Errorf("problem %d = %q, want key %q and message containing %q", i, got[i], w.Key, w.Message)
				}
			}
		})
	}
}

// TestValidConfigs are accepted: the edges of each rule on the valid side.
func TestValidConfigs(t *testing.T) {
	tests := []struct {
		name string
		text string
	}{
		{"minimal", minimal},
		{"trust user without password", "auth_method: trust\n" + withUsers("  bob: {}\n")},
		{"per-user trust without password", withUsers("  bob: {auth_method: trust}\n")},
		{"md5 hash with md5", withUsers("  bob: {auth_method: md5, password: " + bobMD5 + "}\n")},
		{"md5 hash with scram falls back to md5", withUsers("  bob: {password: " + bobMD5 + "}\n")},
		{"SCRAM verifier with scram", withUsers("  bob: {password: \"" + scram + "\"}\n")},
		{"cleartext method", withUsers("  bob: {auth_method: password, password: p}\n")},
		{"wildcard database", withDatabases("  \"*\": {host: h}\n")},
		{"database cache modes", withDatabases("  a: {host: h, cache_mode: rules}\n  b: {host: h, cache_mode: \"off\"}\n  c: {host: h, cache_mode: auto}\n  d: {host: h, cache_mode: \"\"}\n")},
		{"cache rules by table and by fingerprint", withMinimal("cache: {rules: [{table: public.accounts, ttl: 30s}, {fingerprint: a1b2c3d4e5f60718, ttl: 5s}, {fingerprint: \"0x00000000000000ff\"}]}\n")},
		{"database with user and password", withDatabases("  app: {host: h, user: u, password: s, pool_size: 0, pool_mode: transaction}\n")},
		{"replica with zero weight", withDatabases("  app: {host: h, replicas: [{host: r, port: 1, weight: 0}]}\n")},
		{"auto servers", withDatabases("  app: {servers: [{host: a, role: auto}, {host: b}]}\n")},
		{"fixed roles as servers", withDatabases("  app: {servers: [{host: a, role: primary}, {host: b, role: replica}]}\n")},
		{"ports at the edges", withDatabases("  a: {host: h, port: 1}\n  b: {host: h, port: 65535}\n")},
		{"tls with both files", withMinimal("tls: {mode: require, cert_file: c, key_file: k}\n")},
		{"smallest limits", withMinimal("limits: {max_client_conn: 1, max_message_size: 1024}\n")},
		{"verify-full with root_cert", withMinimal("pool: {server_tls: {sslmode: verify-full, root_cert: ca.pem}}\n")},
		{"json debug log", withMinimal("log: {format: json, level: debug}\n")},
		{"http on any port", withMinimal("http: {listen: \":0\"}\n")},
		{"admin user", withMinimal("admin_users: [alice]\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustParse(t, tt.text)
		})
	}
}
