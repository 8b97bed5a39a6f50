package config

import (
	"maps"
	"slices"

	"github.com/pgone/pgone/proxy"
)

// PasswordMask replaces every password in the copy Redacted returns.
const PasswordMask = "***"

// Redacted returns a deep copy of c with every non-empty password replaced by
// "***", safe to print in logs and SHOW CONFIG. An empty password stays empty
// because it means "none set", which is not a secret. c is not modified.
func (c *Config) Redacted() *Config {
	r := *c
	r.Proxy.AdminUsers = slices.Clone(c.Proxy.AdminUsers)
	if c.Proxy.Databases != nil {
		r.Proxy.Databases = make(map[string]proxy.Database, len(c.Proxy.Databases))
		for name, db := range c.Proxy.Databases {
			db.Password = mask(db.Password)
			db.Replicas = slices.Clone(db.Replicas)
			r.Proxy.Databases[name] = db
		}
	}
	r.Proxy.AuthQuery.Password = mask(c.Proxy.AuthQuery.Password)
	r.Cache.ReplicationPassword = mask(c.Cache.ReplicationPassword)
	r.Cache.Redis.Password = mask(c.Cache.Redis.Password)
	if c.Proxy.Users != nil {
		r.Proxy.Users = maps.Clone(c.Proxy.Users)
		for name, u := range r.Proxy.Users {
			u.Password = mask(u.Password)
			r.Proxy.Users[name] = u
		}
	}
	return &r
}

func mask(secret string) string {
	if secret == "" {
		return ""
	}
	return PasswordMask
}
