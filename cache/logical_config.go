package cache

import (
	"fmt"
	"regexp"
	"time"
)

// Invalidation is what besides writes through pgone invalidates entries.
type Invalidation string

const (
	// InvalidationNone: only writes through pgone (and the TTL backstop).
	InvalidationNone Invalidation = "none"
	// InvalidationLogical: also every change committed on the primary, read
	// from a logical replication stream (pgoutput).
	InvalidationLogical Invalidation = "logical"
)

// DefaultPublication is the publication pgone creates (FOR ALL TABLES)
// when none is configured.
const DefaultPublication = "pgone_cache"

// identifierRE is what a publication or slot name may be: it is written
// into replication commands unquoted.
var identifierRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func (c *Config) logicalDefaults() {
	if c.Invalidation == "" {
		c.Invalidation = InvalidationNone
	}
	if c.ReplicationMaxLag == 0 {
		c.ReplicationMaxLag = time.Second
	}
}

func (c *Config) validateLogical() []error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	switch c.Invalidation {
	case InvalidationNone, InvalidationLogical:
	default:
		add("invalidation", "must be none or logical, got %q", c.Invalidation)
	}
	if c.Publication != "" && !identifierRE.MatchString(c.Publication) {
		add("publication", "must be a lower-case identifier, got %q", c.Publication)
	}
	if c.Slot != "" && !identifierRE.MatchString(c.Slot) {
		add("slot", "must be a lower-case identifier, got %q", c.Slot)
	}
	if c.ReplicationMaxLag < 10*time.Millisecond {
		add("replication_max_lag", "must be at least 10ms, got %s", c.ReplicationMaxLag)
	}
	return errs
}
