package proxy

import "fmt"

// The servers form of a database entry (PgDog's role = primary, replica or
// auto). Defaults turns it into the host/port/replicas form the rest of
// pgone reads: with fixed roles exactly that; with role auto the first
// server stands as Host and Port (the entry's name for the cache and the
// console; where writes go is the monitor's word, failover.go) and every
// server is also a replica slot, so that whichever servers are in
// recovery serve reads.

// serversDefaults fills the defaults of the servers list and, when the
// entry uses it alone, Host, Port and Replicas from it.
func (d *Database) serversDefaults() {
	if len(d.Servers) == 0 {
		return
	}
	for i := range d.Servers {
		s := &d.Servers[i]
		if s.Port == 0 {
			s.Port = 5432
		}
		if s.Weight == 0 {
			s.Weight = 1
		}
		if s.Role == "" {
			s.Role = RoleAuto
		}
	}
	if d.Host != "" || len(d.Replicas) > 0 {
		return // both forms: Validate says so
	}
	auto := d.Auto()
	for _, s := range d.Servers {
		switch {
		case auto:
			if d.Host == "" {
				d.Host, d.Port = s.Host, s.Port
			}
			d.Replicas = append(d.Replicas, Replica{Host: s.Host, Port: s.Port, Weight: s.Weight})
		case s.Role == RolePrimary:
			d.Host, d.Port = s.Host, s.Port
		case s.Role == RoleReplica:
			d.Replicas = append(d.Replicas, Replica{Host: s.Host, Port: s.Port, Weight: s.Weight})
		}
	}
}

// validateServers checks a database's servers list (key is the entry's
// key path). Roles are all auto, or exactly one primary and replicas: a
// fixed primary next to auto servers would leave two sources of truth for
// where writes go.
func validateServers(d Database, key string, add func(key, format string, args ...any)) {
	auto := d.Auto()
	if !filledFromServers(d) {
		add(key+".servers", "use either servers or host/port/replicas, not both")
		return
	}
	primaries := 0
	for i, s := range d.Servers {
		sk := fmt.Sprintf("%s.servers[%d]", key, i)
		if s.Host == "" {
			add(sk+".host", "is required")
		}
		if s.Port < 1 || s.Port > 65535 {
			add(sk+".port", "must be 1-65535, got %d", s.Port)
		}
		if s.Weight < 0 {
			add(sk+".weight", "must not be negative, got %d", s.Weight)
		}
		switch s.Role {
		case RoleAuto:
			if !auto {
				add(sk+".role", "auto must be on every server of the database or on none")
			}
		case RolePrimary:
			primaries++
		case RoleReplica:
		default:
			add(sk+".role", "must be primary, replica or auto, got %q", s.Role)
		}
	}
	if !auto && primaries != 1 {
		add(key+".servers", "needs exactly one server with role primary (or role auto on every server), got %d", primaries)
	}
}

// validateAuto checks what role auto needs beyond the list: a login the
// monitor can check the servers with (without a monitor nobody would know
// the primary, and writes must not go to a guess), and a named entry (the
// wildcard has no monitor).
func validateAuto(c *Config, name string, d Database, key string, add func(key, format string, args ...any)) {
	if !d.Auto() {
		return
	}
	if name == WildcardDatabase {
		add(key+".servers", "role auto needs a named database; the wildcard entry has no monitor to find its primary")
		return
	}
	if _, _, ok := monitorLogin(d, *c); !ok {
		add(key+".user", "role auto needs a login to check the servers with: set user and password (or configure a user with a plaintext password)")
	}
}

// filledFromServers reports whether Host, Port and Replicas are what
// serversDefaults makes of the servers list alone: not also set by hand.
func filledFromServers(d Database) bool {
	var p Database
	p.Servers = d.Servers
	p.serversDefaults()
	if p.Port == 0 {
		p.Port = 5432 // as Defaults does after
	}
	if p.Host != d.Host || p.Port != d.Port || len(p.Replicas) != len(d.Replicas) {
		return false
	}
	for i := range p.Replicas {
		if p.Replicas[i].Host != d.Replicas[i].Host || p.Replicas[i].Port != d.Replicas[i].Port {
			return false
		}
	}
	return true
}
