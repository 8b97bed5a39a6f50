//go:build !linux

package rawconn

const supported = false

// readState and writeState are unused here: Wrap returns conns unchanged.
type (
	readState  struct{}
	writeState struct{}
)

func (*readState) step(uintptr) bool  { return true }
func (*writeState) step(uintptr) bool { return true }

// ReadLent reads once into a buffer lent by l (held while waiting here).
func (c *Conn) ReadLent(l Lender) (int, error) { return c.Conn.Read(l.Lend()) }
