package auth

import "fmt"

// Method is how pgone authenticates a client.
type Method string

// Client authentication methods, named as in pg_hba.conf.
const (
	SCRAM     Method = "scram-sha-256"
	MD5       Method = "md5"
	Password  Method = "password"
	Trust     Method = "trust"
	Inherited Method = "" // a user without a method uses the global one
)

// Validate reports whether m names a supported method.
func (m Method) Validate() error {
	switch m {
	case SCRAM, MD5, Password, Trust:
		return nil
	}
	return fmt.Errorf("must be scram-sha-256, md5, password or trust; got %q", string(m))
}
