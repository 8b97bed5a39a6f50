package config

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"sort"
	"strings"

	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy"
	"github.com/pgone/pgone/proxy/auth"
)

// Warnings lists settings that are valid but risky or without effect: the
// file loads and pgone serves, yet an operator would want to know. `pgone
// check` prints them and `pgone serve` logs them at start. Each text starts
// with its key path, as a Problem's does.
func (c *Config) Warnings() []string {
	var out []string
	out = append(out, c.trustBeyondLoopback()...)
	out = append(out, c.httpBeyondLoopback()...)
	out = append(out, c.splitImpossible()...)
	out = append(out, c.Proxy.SplitWarnings()...)
	return out
}

// trustBeyondLoopback: a trust user logs in with no password at all, which
// is tolerable only when nothing but this host can reach the listener.
func (c *Config) trustBeyondLoopback() []string {
	if loopbackOnly(c.Proxy.Listen) {
		return nil
	}
	var trusted []string
	for name, u := range c.Proxy.Users {
		method := u.AuthMethod
		if method == auth.Inherited {
			method = c.Proxy.AuthMethod
		}
		if method == auth.Trust {
			trusted = append(trusted, name)
		}
	}
	if len(trusted) == 0 {
		return nil
	}
	sort.Strings(trusted)
	key := "users." + trusted[0] + ".auth_method"
	if c.Proxy.AuthMethod == auth.Trust {
		key = "auth_method"
	}
	return []string{fmt.Sprintf("%s: listen %q is reachable beyond loopback and user(s) %s log in with auth_method trust, without a password; listen on 127.0.0.1 or use scram-sha-256",
		key, c.Proxy.Listen, strings.Join(trusted, ", "))}
}

// httpBeyondLoopback: /metrics (and /debug/pprof when on) have no
// authentication; they expose pool, user and database names and, with
// pprof, memory contents to anyone who can reach the address.
func (c *Config) httpBeyondLoopback() []string {
	if loopbackOnly(c.HTTP.Listen) {
		return nil
	}
	what := "/metrics, /healthz and /readyz"
	if c.HTTP.Pprof {
		what += " and /debug/pprof"
	}
	return []string{fmt.Sprintf("http.listen: %q is reachable beyond loopback and serves %s without authentication; listen on 127.0.0.1 or restrict it with a firewall",
		c.HTTP.Listen, what)}
}

// splitImpossible lists databases whose replicas can never take a read.
// Reads are split only in transaction mode, and pool.mode defaults to
// session: a database with replicas whose every client ends up in session
// mode silently sends all reads to the primary. The wildcard database's
// replicas are never monitored, so never used.
func (c *Config) splitImpossible() []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(c.Proxy.Databases)) {
		db := c.Proxy.Databases[name]
		if len(db.Replicas) == 0 || db.Consistency == proxy.PrimaryOnly || db.Auto() {
			continue // role auto: the servers are there for failover in any mode
		}
		if name == proxy.WildcardDatabase {
			out = append(out, fmt.Sprintf("databases.%s.replicas: the read/write split is off: replicas of the wildcard database are never used; list the database by name", name))
			continue
		}
		if c.anyUserInTransactionMode(db) {
			continue
		}
		mode := db.PoolMode
		key := "databases." + name + ".pool_mode"
		if mode == "" {
			mode, key = c.Pool.Mode, "pool.mode"
		}
		out = append(out, fmt.Sprintf("databases.%s.replicas: the read/write split is off: %s is %s and no user overrides it with transaction; replicas are split only in transaction mode (set pool_mode: transaction, or consistency: primary_only to say the replicas are for failover only)",
			name, key, mode))
	}
	return out
}

// anyUserInTransactionMode reports whether some user's clients of db get
// transaction mode, as the session chooses it (proxy.Config.PoolModeFor).
func (c *Config) anyUserInTransactionMode(db proxy.Database) bool {
	for name := range c.Proxy.Users {
		if c.Proxy.PoolModeFor(db, name, c.Pool.Mode) == pool.ModeTransaction {
			return true
		}
	}
	return false
}

// loopbackOnly reports whether addr (host:port) accepts connections only
// from this host. An empty host, an unspecified address (0.0.0.0, ::) and
// any host name but localhost count as beyond loopback: a name can
// resolve to anything.
func loopbackOnly(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
