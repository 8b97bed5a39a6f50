package proxy

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/pgone/pgone/cache"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy/auth"
)

// AdminDatabase is the database name of the admin console.
const AdminDatabase = "pgone"

// WildcardDatabase is the databases key that serves any other database name.
const WildcardDatabase = "*"

// Config is the client-facing part of pgone's configuration.
type Config struct {
	// Listen is the client address.
	Listen string `yaml:"listen"`
	// AuthMethod is the default client authentication method.
	AuthMethod auth.Method `yaml:"auth_method"`
	// Limits bound what one client may do.
	Limits Limits `yaml:"limits"`
	// TLS is the client-side TLS setup.
	TLS ClientTLS `yaml:"tls"`
	// Databases maps client-visible database names to servers.
	Databases map[string]Database `yaml:"databases"`
	// Users are the clients pgone accepts.
	Users map[string]User `yaml:"users"`
	// AdminUsers may use the admin console.
	AdminUsers []string `yaml:"admin_users"`
	// Routing tunes the read/write split.
	Routing Routing `yaml:"routing"`
	// AuthQuery looks up clients missing from Users on the server.
	AuthQuery AuthQuery `yaml:"auth_query"`
}

// DefaultAuthQuery is PgBouncer's default auth_query.
const DefaultAuthQuery = "SELECT usename, passwd FROM pg_shadow WHERE usename=$1"

// AuthQuery is PgBouncer's auth_user/auth_query: a client whose user is not
// in users is authenticated with the secret the query returns for it, so
// users need not be copied into pgone's config. Off while User is empty.
type AuthQuery struct {
	// User is the server login that runs the query (PgBouncer's auth_user).
	User string `yaml:"user"`
	// Password is User's plaintext server password.
	Password string `yaml:"password"`
	// Query takes the user name as $1 and returns one row: name, secret
	// (plaintext, md5 hash or SCRAM verifier); no row or NULL refuses.
	Query string `yaml:"query"`
	// Database is the server database the query runs in; empty means the
	// database the client asked for (its entry's dbname).
	Database string `yaml:"database"`
}

// Routing tunes how statements are sent to the primary or a replica.
type Routing struct {
	// WriteFunctions are functions that write (or must run on the primary
	// for another reason) although pg_proc does not say so: a statement
	// calling one goes to the primary. Names are bare ("f") or
	// schema-qualified ("app.f").
	WriteFunctions []string `yaml:"write_functions"`
	// ReadFunctions are volatile functions that are safe on a replica
	// (they read, and a replica's answer is as good as the primary's).
	// They cannot override WriteFunctions or the built-in write list; they
	// do override server dependence (router/perserver.go) for a function.
	ReadFunctions []string `yaml:"read_functions"`
	// FunctionsRefreshInterval is how often each database's function
	// volatility is read again from pg_proc (also after DDL through pgone).
	FunctionsRefreshInterval time.Duration `yaml:"functions_refresh_interval"`
}

// Consistency is what a client's reads may see on a replica.
type Consistency string

// Consistency levels of a database.
const (
	// ReadYourWrites: a client's reads go to replicas that have applied its
	// last committed write, or to the primary while none has.
	ReadYourWrites Consistency = "read_your_writes"
	// ReadAllWrites: a read goes to replicas that have applied every write
	// committed through pgone to the database before it was sent, by any
	// client: for applications that write on one pooled connection and
	// read on another.
	ReadAllWrites Consistency = "read_all_writes"
	// ReadUserWrites: a read goes to replicas that have applied every write
	// committed through pgone to the database by the same user, on any of
	// its connections: read_all_writes for one application (user) at a
	// time, so one user's writes do not keep another's reads off the
	// replicas.
	ReadUserWrites Consistency = "read_user_writes"
	// Eventual: reads go to any usable replica, possibly before the
	// client's own last write is there.
	Eventual Consistency = "eventual"
	// PrimaryOnly: no read/write split; everything runs on the primary.
	PrimaryOnly Consistency = "primary_only"
)

// Validate reports whether c is a known level; "" means the default,
// read_your_writes.
func (c Consistency) Validate() error {
	switch c {
	case "", ReadYourWrites, ReadUserWrites, ReadAllWrites, Eventual, PrimaryOnly:
		return nil
	}
	return fmt.Errorf("must be read_your_writes, read_user_writes, read_all_writes, eventual or primary_only, got %q", string(c))
}

// Limits bound clients.
type Limits struct {
	MaxClientConn      int           `yaml:"max_client_conn"`
	MaxMessageSize     int           `yaml:"max_message_size"`
	ClientLoginTimeout time.Duration `yaml:"client_login_timeout"`
	// MaxLoginsInProgress bounds the connections that have not finished
	// startup and authentication, so unauthenticated sockets cannot take
	// pgone's memory; clients beyond it get 53300.
	MaxLoginsInProgress int           `yaml:"max_logins_in_progress"`
	ShutdownTimeout     time.Duration `yaml:"shutdown_timeout"`
	// IdleTransactionTimeout closes a client idle inside a transaction
	// (25P03); 0 disables it.
	IdleTransactionTimeout time.Duration `yaml:"idle_transaction_timeout"`
	// ClientIdleTimeout closes a client idle outside a transaction; 0 disables it.
	ClientIdleTimeout time.Duration `yaml:"client_idle_timeout"`
	// QueryTimeout cancels a request that runs longer on its server
	// (57014); 0 disables it. Databases and users may set their
	// own; the user's wins over the database's.
	QueryTimeout time.Duration `yaml:"query_timeout"`
}

// TLSMode says whether clients may, must or cannot use TLS.
type TLSMode string

// Client TLS modes.
const (
	TLSDisable TLSMode = "disable"
	TLSAllow   TLSMode = "allow"
	TLSRequire TLSMode = "require"
)

// ClientTLS configures TLS for clients.
type ClientTLS struct {
	Mode     TLSMode `yaml:"mode"`
	CertFile string  `yaml:"cert_file"`
	KeyFile  string  `yaml:"key_file"`
}

// Database is one client-visible database and the servers behind it.
type Database struct {
	Host string `yaml:"host"`
	Port int    `yaml:"port"`
	// DBName is the server's database name; empty means the client-visible name.
	DBName string `yaml:"dbname"`
	// User and Password log in to the server; empty means the client's user
	// and that user's plaintext password, or, when its secret is a SCRAM
	// verifier, the ClientKey its login proved (SCRAM passthrough); the
	// replica monitor then logs in as the first user with a plaintext
	// password: monitorLogin.
	User     string    `yaml:"user"`
	Password string    `yaml:"password"`
	PoolSize int       `yaml:"pool_size"`
	PoolMode pool.Mode `yaml:"pool_mode"`
	// Replicas are streaming replicas of the primary. In transaction mode
	// reads go to them (the read/write split); in session mode they are
	// only monitored.
	Replicas []Replica `yaml:"replicas"`
	// Servers is the other way to list them, PgDog's: every server with
	// its role. Roles primary and replica fill Host, Port and Replicas;
	// role auto (then on every server) lets the replica monitor find the
	// primary by pg_is_in_recovery() and follow a promotion (failover.go).
	Servers []DatabaseServer `yaml:"servers"`
	// Consistency is what reads sent to replicas may miss (default
	// read_your_writes).
	Consistency Consistency `yaml:"consistency"`
	// QueryTimeout overrides limits.query_timeout for this database; 0
	// keeps it.
	QueryTimeout time.Duration `yaml:"query_timeout"`
	// CacheMode overrides cache.mode for this database: off, rules or
	// auto; empty keeps cache.mode. Off stops lookups and fills only:
	// writes through this database still invalidate what others cache
	// (CacheModeFor).
	CacheMode cache.Mode `yaml:"cache_mode"`
}

// ServerDBName is the database name on the server of the entry named name:
// DBName, or name itself when DBName is empty.
func (d Database) ServerDBName(name string) string {
	if d.DBName == "" {
		return name
	}
	return d.DBName
}

// DatabaseFor returns the entry that serves a client-visible database
// name: its own, else the wildcard's; ok is false when neither exists.
// Every per-database setting (server, pool size and mode, query_timeout)
// is resolved through it, so they cannot disagree on which entry applies.
func (c *Config) DatabaseFor(name string) (db Database, ok bool) {
	if db, ok = c.Databases[name]; ok {
		return db, true
	}
	db, ok = c.Databases[WildcardDatabase]
	return db, ok
}

// PoolModeFor is the pool mode of a client of db logging in as user: the
// user's pool_mode, else the database's, else def (pool.mode).
func (c *Config) PoolModeFor(db Database, user string, def pool.Mode) pool.Mode {
	if u := c.Users[user]; u.PoolMode != "" {
		return u.PoolMode
	}
	if db.PoolMode != "" {
		return db.PoolMode
	}
	return def
}

// CacheModeFor is the result cache's mode for clients of the
// client-visible database name: its entry's cache_mode (the wildcard's
// for a name without its own entry), else def (cache.mode). Mode off
// means nothing of that database is served from or stored in the cache;
// its writes still invalidate, since another database name may cache the
// same PostgreSQL database (the cache keys it by server and dbname).
func (c *Config) CacheModeFor(name string, def cache.Mode) cache.Mode {
	if db, ok := c.DatabaseFor(name); ok && db.CacheMode != "" {
		return db.CacheMode
	}
	return def
}

// CacheModes are the modes of every configured database under def
// (cache.mode), wildcard included: what cmd needs to know whether to
// build the cache at all, and the tuner's admission.
func (c *Config) CacheModes(def cache.Mode) map[cache.Mode]bool {
	modes := map[cache.Mode]bool{}
	for _, db := range c.Databases {
		m := db.CacheMode
		if m == "" {
			m = def
		}
		modes[m] = true
	}
	return modes
}

// Replica is a streaming replica of a database's primary.
type Replica struct {
	Host string `yaml:"host"`
	Port int    `yaml:"port"`
	// Weight is the replica's share of reads relative to the others (default 1).
	Weight int `yaml:"weight"`
}

// ServerRole is a server's role in a database's servers list.
type ServerRole string

const (
	RolePrimary ServerRole = "primary"
	RoleReplica ServerRole = "replica"
	// RoleAuto: the replica monitor decides, from pg_is_in_recovery().
	RoleAuto ServerRole = "auto"
)

// DatabaseServer is one entry of a database's servers list.
type DatabaseServer struct {
	Host   string     `yaml:"host"`
	Port   int        `yaml:"port"`
	Role   ServerRole `yaml:"role"`
	Weight int        `yaml:"weight"`
}

// Auto reports whether the database's primary is found, not configured:
// its servers all have role auto.
func (d Database) Auto() bool {
	if len(d.Servers) == 0 {
		return false
	}
	for _, s := range d.Servers {
		if s.Role != RoleAuto {
			return false
		}
	}
	return true
}

// User is a client login.
type User struct {
	// Password is plaintext, an "md5..." hash or a "SCRAM-SHA-256$..." verifier.
	Password   string      `yaml:"password"`
	AuthMethod auth.Method `yaml:"auth_method"`
	PoolMode   pool.Mode   `yaml:"pool_mode"`
	// QueryTimeout overrides the database's and limits.query_timeout for
	// this user; 0 keeps them.
	QueryTimeout time.Duration `yaml:"query_timeout"`
}

// Defaults fills every zero field with its default.
func (c *Config) Defaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:6432"
	}
	if c.AuthMethod == auth.Inherited {
		c.AuthMethod = auth.SCRAM
	}
	if c.Limits.MaxClientConn == 0 {
		c.Limits.MaxClientConn = 10000
	}
	if c.Limits.MaxMessageSize == 0 {
		c.Limits.MaxMessageSize = 256 << 20
	}
	if c.Limits.ClientLoginTimeout == 0 {
		c.Limits.ClientLoginTimeout = 60 * time.Second
	}
	if c.Limits.MaxLoginsInProgress == 0 {
		c.Limits.MaxLoginsInProgress = 1000
	}
	if c.Limits.ShutdownTimeout == 0 {
		c.Limits.ShutdownTimeout = 30 * time.Second
	}
	if c.TLS.Mode == "" {
		c.TLS.Mode = TLSDisable
		if c.TLS.CertFile != "" {
			c.TLS.Mode = TLSAllow
		}
	}
	for name, db := range c.Databases {
		db.serversDefaults()
		if db.Port == 0 {
			db.Port = 5432
		}
		for i := range db.Replicas {
			if db.Replicas[i].Port == 0 {
				db.Replicas[i].Port = 5432
			}
			if db.Replicas[i].Weight == 0 {
				db.Replicas[i].Weight = 1
			}
		}
		if db.Consistency == "" {
			db.Consistency = ReadYourWrites
		}
		c.Databases[name] = db
	}
	if c.Routing.FunctionsRefreshInterval == 0 {
		c.Routing.FunctionsRefreshInterval = time.Minute
	}
	if c.AuthQuery.Query == "" {
		c.AuthQuery.Query = DefaultAuthQuery
	}
}

// Validate reports every problem with c; each error's text starts with its key path.
func (c *Config) Validate() []error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.Listen == "" || !strings.Contains(c.Listen, ":") {
		add("listen", "must be host:port, got %q", c.Listen)
	}
	if err := c.AuthMethod.Validate(); err != nil {
		add("auth_method", "%v", err)
	}
	if c.Limits.MaxClientConn < 1 {
		add("limits.max_client_conn", "must be at least 1, got %d", c.Limits.MaxClientConn)
	}
	if c.Limits.MaxMessageSize < 1024 {
		add("limits.max_message_size", "must be at least 1024 bytes, got %d", c.Limits.MaxMessageSize)
	}
	if c.Limits.MaxLoginsInProgress < 1 {
		add("limits.max_logins_in_progress", "must be at least 1, got %d", c.Limits.MaxLoginsInProgress)
	}
	if c.Limits.ClientLoginTimeout < 0 {
		add("limits.client_login_timeout", "must not be negative")
	}
	if c.Limits.ShutdownTimeout < 0 {
		add("limits.shutdown_timeout", "must not be negative")
	}
	if c.Limits.IdleTransactionTimeout < 0 {
		add("limits.idle_transaction_timeout", "must not be negative")
	}
	if c.Limits.ClientIdleTimeout < 0 {
		add("limits.client_idle_timeout", "must not be negative")
	}
	if c.Limits.QueryTimeout < 0 {
		add("limits.query_timeout", "must not be negative")
	}
	switch c.TLS.Mode {
	case TLSDisable:
	case TLSAllow, TLSRequire:
		if c.TLS.CertFile == "" {
			add("tls.cert_file", "is required with mode %s", c.TLS.Mode)
		}
		if c.TLS.KeyFile == "" {
			add("tls.key_file", "is required with mode %s", c.TLS.Mode)
		}
	default:
		add("tls.mode", "must be disable, allow or require, got %q", c.TLS.Mode)
	}
	if len(c.Databases) == 0 {
		add("databases", "at least one database is required")
	}
	for _, name := range sortedKeys(c.Databases) {
		db := c.Databases[name]
		key := "databases." + name
		if name == AdminDatabase {
			add(key, "the name %q is reserved for the admin console", AdminDatabase)
		}
		if len(db.Servers) > 0 {
			validateServers(db, key, add)
			validateAuto(c, name, db, key, add)
		} else if db.Host == "" {
			add(key+".host", "is required")
		}
		if db.Port < 1 || db.Port > 65535 {
			add(key+".port", "must be 1-65535, got %d", db.Port)
		}
		if db.PoolSize < 0 {
			add(key+".pool_size", "must not be negative, got %d", db.PoolSize)
		}
		if db.PoolMode != "" {
			if err := db.PoolMode.Validate(); err != nil {
				add(key+".pool_mode", "%v", err)
			}
		}
		if db.Password != "" && db.User == "" {
			add(key+".user", "is required when password is set")
		}
		for i, r := range db.Replicas {
			if len(db.Servers) > 0 {
				break // made from servers, checked there
			}
			rk := fmt.Sprintf("%s.replicas[%d]", key, i)
			if r.Host == "" {
				add(rk+".host", "is required")
			}
			if r.Port < 1 || r.Port > 65535 {
				add(rk+".port", "must be 1-65535, got %d", r.Port)
			}
			if r.Weight < 0 {
				add(rk+".weight", "must not be negative, got %d", r.Weight)
			}
		}
		if err := db.Consistency.Validate(); err != nil {
			add(key+".consistency", "%v", err)
		}
		if db.QueryTimeout < 0 {
			add(key+".query_timeout", "must not be negative")
		}
		if db.CacheMode != "" {
			if err := db.CacheMode.Validate(); err != nil {
				add(key+".cache_mode", "%v", err)
			}
		}
	}
	if c.Routing.FunctionsRefreshInterval < time.Second {
		add("routing.functions_refresh_interval", "must be at least 1s, got %s", c.Routing.FunctionsRefreshInterval)
	}
	for _, list := range []struct {
		key   string
		names []string
	}{{"write_functions", c.Routing.WriteFunctions}, {"read_functions", c.Routing.ReadFunctions}} {
		for i, f := range list.names {
			if strings.TrimSpace(f) == "" {
				add(fmt.Sprintf("routing.%s[%d]", list.key, i), "must not be empty")
			}
		}
	}
	if len(c.Users) == 0 && c.AuthQuery.User == "" {
		add("users", "at least one user is required (or auth_query.user)")
	}
	for _, name := range sortedKeys(c.Users) {
		u := c.Users[name]
		key := "users." + name
		if err := u.AuthMethod.Validate(); err != nil && u.AuthMethod != auth.Inherited {
			add(key+".auth_method", "%v", err)
		}
		method := u.AuthMethod
		if method == auth.Inherited {
			method = c.AuthMethod
		}
		if method != auth.Trust && u.Password == "" {
			add(key+".password", "is required with auth_method %s", method)
		}
		if _, err := auth.ParseSecret(name, u.Password); err != nil {
			add(key+".password", "%v", err)
		}
		if u.PoolMode != "" {
			if err := u.PoolMode.Validate(); err != nil {
				add(key+".pool_mode", "%v", err)
			}
		}
		if u.QueryTimeout < 0 {
			add(key+".query_timeout", "must not be negative")
		}
	}
	if c.AuthQuery.Password != "" && c.AuthQuery.User == "" {
		add("auth_query.user", "is required when password is set")
	}
	if c.AuthQuery.User != "" && strings.TrimSpace(c.AuthQuery.Query) == "" {
		add("auth_query.query", "must not be empty")
	}
	for i, name := range c.AdminUsers {
		if _, ok := c.Users[name]; !ok {
			add(fmt.Sprintf("admin_users[%d]", i), "user %q is not in users", name)
		}
	}
	return errs
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
