package cache

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaultsOff(t *testing.T) {
	var c Config
	c.Defaults()
	if c.Mode != ModeOff {
		t.Fatalf("default mode %q, want off", c.Mode)
	}
	if errs := c.Validate(); len(errs) != 0 {
		t.Fatalf("defaults do not validate: %v", errs)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*Config)
		key  string // "" if valid
	}{
		{"rules", func(c *Config) { c.Mode = ModeRules }, ""},
		{"auto", func(c *Config) { c.Mode = ModeAuto }, ""},
		{"unknown mode", func(c *Config) { c.Mode = "on" }, "mode"},
		{"negative max_bytes", func(c *Config) { c.MaxBytes = -1 }, "max_bytes"},
		{"entry over max_bytes", func(c *Config) { c.MaxBytes, c.MaxEntryBytes = 100, 101 }, "max_entry_bytes"},
		{"entry over 4 GiB", func(c *Config) { c.MaxBytes, c.MaxEntryBytes = 1<<40, 1<<33 }, "max_entry_bytes"},
		{"negative ttl", func(c *Config) { c.DefaultTTL = -time.Second }, "default_ttl"},
		{"negative wait", func(c *Config) { c.SingleFlightWait = -time.Second }, "single_flight_wait"},
		{"table rule", func(c *Config) { c.Rules = []Rule{{Table: "public.accounts", TTL: time.Second}} }, ""},
		{"fingerprint rule", func(c *Config) { c.Rules = []Rule{{Fingerprint: "a1b2c3d4e5f60718", TTL: time.Second}} }, ""},
		{"fingerprint rule 0x upper case", func(c *Config) { c.Rules = []Rule{{Fingerprint: "0xA1B2C3D4E5F60718"}} }, ""},
		{"rule naming nothing", func(c *Config) { c.Rules = []Rule{{TTL: time.Second}} }, "rules[0]"},
		{"rule naming both", func(c *Config) { c.Rules = []Rule{{Table: "t"}, {Table: "t", Fingerprint: "a1b2c3d4e5f60718"}} }, "rules[1]"},
		{"fingerprint not hex", func(c *Config) { c.Rules = []Rule{{Fingerprint: "SELECT 1"}} }, "rules[0].fingerprint"},
		{"fingerprint too long", func(c *Config) { c.Rules = []Rule{{Fingerprint: "a1b2c3d4e5f607181"}} }, "rules[0].fingerprint"},
		{"fingerprint zero", func(c *Config) { c.Rules = []Rule{{Fingerprint: "0000000000000000"}} }, "rules[0].fingerprint"},
		{"catalog table rule", func(c *Config) { c.Rules = []Rule{{Table: "pg_class"}} }, "rules[0].table"},
		{"negative rule ttl", func(c *Config) { c.Rules = []Rule{{Fingerprint: "a1b2c3d4e5f60718", TTL: -time.Second}} }, "rules[0].ttl"},
		{"redis host:port", func(c *Config) { c.Redis.Address = "127.0.0.1:6379" }, ""},
		{"redis without port", func(c *Config) { c.Redis.Address = "redis" }, "redis.address"},
		{"redis negative db", func(c *Config) { c.Redis.DB = -1 }, "redis.db"},
		{"redis negative timeout", func(c *Config) { c.Redis.Timeout = -time.Millisecond }, "redis.timeout"},
		{"redis breaker never opening", func(c *Config) { c.Redis.BreakerFailures = -1 }, "redis.breaker_failures"},
		{"redis negative cooldown", func(c *Config) { c.Redis.BreakerCooldown = -time.Second }, "redis.breaker_cooldown"},
		{"redis lease at its minimum", func(c *Config) { c.Redis.Lease = 100 * time.Millisecond }, ""},
		{"redis lease below its minimum", func(c *Config) { c.Redis.Lease = 99 * time.Millisecond }, "redis.lease"},
		{"redis member timeout equal to lease", func(c *Config) { c.Redis.Lease, c.Redis.MemberTimeout = time.Second, time.Second }, ""},
		{"redis member timeout below lease", func(c *Config) { c.Redis.Lease, c.Redis.MemberTimeout = time.Second, 999*time.Millisecond }, "redis.member_timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			c.Defaults()
			tc.set(&c)
			errs := c.Validate()
			if tc.key == "" {
				if len(errs) != 0 {
					t.Fatalf("want valid, got %v", errs)
				}
				return
			}
			if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), tc.key+": ") {
				t.Fatalf("want one error on %s, got %v", tc.key, errs)
			}
		})
	}
}

// TestParseFingerprint: the form SHOW QUERIES prints (%016x) reads back
// to the same value.
func TestParseFingerprint(t *testing.T) {
	for _, fp := range []uint64{1, 0xa1b2c3d4e5f60718, 1<<64 - 1} {
		got, err := ParseFingerprint(fmt.Sprintf("%016x", fp))
		if err != nil || got != fp {
			t.Errorf("%016x: got %x, %v", fp, got, err)
		}
	}
}

// TestRedisDefaults: the Redis section's defaults are the documented ones.
func TestRedisDefaults(t *testing.T) {
	var c Config
	c.Defaults()
	r := c.Redis
	if r.On() || r.Timeout != 5*time.Millisecond || r.Prefix != "pgone:" || r.BreakerFailures != 5 || r.BreakerCooldown != time.Second {
		t.Fatalf("redis defaults %+v", r)
	}
}
