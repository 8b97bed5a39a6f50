package pool

import (
	"fmt"
	"time"
)

// Mode is how long a client keeps a server connection.
type Mode string

// Pool modes.
const (
	ModeSession     Mode = "session"
	ModeTransaction Mode = "transaction"
)

// Config is the server-side part of pgone's configuration.
type Config struct {
	// Mode is the default pool mode; databases and users may override it.
	Mode Mode `yaml:"mode"`
	// PoolSize is the default number of server connections per (database, user).
	PoolSize int `yaml:"pool_size"`
	// MinPoolSize keeps at least this many server connections open in each
	// pool that has been used, dialed in the background.
	MinPoolSize int `yaml:"min_pool_size"`
	// ReservePoolSize is how many connections a pool may open beyond its
	// size for clients that have waited ReservePoolTimeout.
	ReservePoolSize int `yaml:"reserve_pool_size"`
	// ReservePoolTimeout is the wait after which the reserve may be used.
	ReservePoolTimeout time.Duration `yaml:"reserve_pool_timeout"`
	// WaitNoticeAfter sends a NOTICE to a client that has waited this long
	// for a server connection (transaction mode).
	WaitNoticeAfter time.Duration `yaml:"wait_notice_after"`
	// MaxServerConnections caps server connections across all pools.
	MaxServerConnections int `yaml:"max_server_connections"`
	// QueryWaitTimeout ends a client's wait for a server connection with 53300.
	QueryWaitTimeout time.Duration `yaml:"query_wait_timeout"`
	// ServerConnectTimeout bounds dialing and authenticating one server connection.
	ServerConnectTimeout time.Duration `yaml:"server_connect_timeout"`
	// ServerIdleTimeout closes server connections idle for longer.
	ServerIdleTimeout time.Duration `yaml:"server_idle_timeout"`
	// ServerLifetime closes server connections older than this when released.
	ServerLifetime time.Duration `yaml:"server_lifetime"`
	// ServerTLS is how pgone connects to PostgreSQL.
	ServerTLS ServerTLS `yaml:"server_tls"`
	// ReplicaCheckInterval is how often each database's replicas are checked.
	ReplicaCheckInterval time.Duration `yaml:"replica_check_interval"`
	// MaxReplicaLag takes a replica out of rotation while the last
	// transaction it applied is older than this and it is behind.
	MaxReplicaLag time.Duration `yaml:"max_replica_lag"`
}

// ServerTLS configures TLS towards PostgreSQL servers, as libpq's sslmode.
type ServerTLS struct {
	SSLMode  string `yaml:"sslmode"`
	RootCert string `yaml:"root_cert"`
}

// Defaults fills every zero field with its default.
func (c *Config) Defaults() {
	if c.Mode == "" {
		c.Mode = ModeSession
	}
	if c.PoolSize == 0 {
		c.PoolSize = 20
	}
	if c.ReservePoolTimeout == 0 {
		c.ReservePoolTimeout = 5 * time.Second
	}
	if c.WaitNoticeAfter == 0 {
		c.WaitNoticeAfter = 5 * time.Second
	}
	if c.MaxServerConnections == 0 {
		c.MaxServerConnections = 300
	}
	if c.QueryWaitTimeout == 0 {
		c.QueryWaitTimeout = 120 * time.Second
	}
	if c.ServerConnectTimeout == 0 {
		c.ServerConnectTimeout = 15 * time.Second
	}
	if c.ServerIdleTimeout == 0 {
		c.ServerIdleTimeout = 600 * time.Second
	}
	if c.ServerLifetime == 0 {
		c.ServerLifetime = 3600 * time.Second
	}
	if c.ServerTLS.SSLMode == "" {
		c.ServerTLS.SSLMode = "prefer"
	}
	if c.ReplicaCheckInterval == 0 {
		c.ReplicaCheckInterval = time.Second
	}
	if c.MaxReplicaLag == 0 {
		c.MaxReplicaLag = 10 * time.Second
	}
}

// Validate reports every problem with c; each error's text starts with the
// key path below the pool section, so config can prefix it.
func (c *Config) Validate() []error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if err := c.Mode.Validate(); err != nil {
		add("mode", "%v", err)
	}
	if c.PoolSize < 1 {
		add("pool_size", "must be at least 1, got %d", c.PoolSize)
	}
	if c.MinPoolSize < 0 || (c.PoolSize >= 1 && c.MinPoolSize > c.PoolSize) {
		add("min_pool_size", "must be between 0 and pool_size (%d), got %d", c.PoolSize, c.MinPoolSize)
	}
	if c.ReservePoolSize < 0 {
		add("reserve_pool_size", "must not be negative, got %d", c.ReservePoolSize)
	}
	if c.MaxServerConnections < 1 {
		add("max_server_connections", "must be at least 1, got %d", c.MaxServerConnections)
	}
	for _, d := range []struct {
		key string
		val time.Duration
	}{
		{"query_wait_timeout", c.QueryWaitTimeout},
		{"reserve_pool_timeout", c.ReservePoolTimeout},
		{"wait_notice_after", c.WaitNoticeAfter},
		{"server_connect_timeout", c.ServerConnectTimeout},
		{"server_idle_timeout", c.ServerIdleTimeout},
		{"server_lifetime", c.ServerLifetime},
		{"replica_check_interval", c.ReplicaCheckInterval},
		{"max_replica_lag", c.MaxReplicaLag},
	} {
		if d.val < 0 {
			add(d.key, "must not be negative, got %s", d.val)
		}
	}
	switch c.ServerTLS.SSLMode {
	case "disable", "allow", "prefer", "require", "verify-ca", "verify-full":
	default:
		add("server_tls.sslmode", "must be one of disable, allow, prefer, require, verify-ca, verify-full; got %q", c.ServerTLS.SSLMode)
	}
	if (c.ServerTLS.SSLMode == "verify-ca" || c.ServerTLS.SSLMode == "verify-full") && c.ServerTLS.RootCert == "" {
		add("server_tls.root_cert", "is required with sslmode %s", c.ServerTLS.SSLMode)
	}
	return errs
}

// Validate reports whether m names a known mode.
func (m Mode) Validate() error {
	switch m {
	case ModeSession, ModeTransaction:
		return nil
	}
	return fmt.Errorf("must be session or transaction, got %q", string(m))
}
