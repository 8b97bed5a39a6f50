package config

import "github.com/pgone/pgone/cache"

// CacheOn reports whether any database caches: cache.mode, or a
// database's cache_mode overriding it, is rules or auto. cmd builds the
// result cache only then; once built, every database's writes invalidate
// it, whatever its own mode.
func (c *Config) CacheOn() bool {
	modes := c.Proxy.CacheModes(c.Cache.Mode)
	return modes[cache.ModeRules] || modes[cache.ModeAuto]
}

// CacheAuto reports whether any database is in cache mode auto: the
// tuner's cache admission has something to admit to.
func (c *Config) CacheAuto() bool {
	return c.Proxy.CacheModes(c.Cache.Mode)[cache.ModeAuto]
}
