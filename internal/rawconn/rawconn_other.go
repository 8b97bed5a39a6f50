//go:build !linux

package rawconn

const supported = false

// ReadLent reads once into a buffer lent by l (held while waiting here).
func (c *Conn) ReadLent(l Lender) (int, error) { return c.Conn.Read(l.Lend()) }
