package cache

import (
	"encoding/binary"
	"errors"
	"math"
	"time"
)

// remoteToken is what Redis said about a read's tables when it was looked
// up (before the read is sent): Redis's incarnation, its flush counter,
// the database's epoch and each table's version, in the order of the
// local token's sorted tables. An L2 entry is valid only if it recorded
// exactly these; a fill is stored in L2 only if Redis still holds them.
type remoteToken struct {
	gen      string // Redis's incarnation (gen key); "" if Redis had none
	all      uint64
	epoch    uint64
	versions []uint64
}

// remoteEntry is an L2 entry decoded.
type remoteEntry struct {
	gen        string
	all, epoch uint64
	db         string
	tables     []TableVersion
	ttl        time.Duration
	reply      []byte
}

// l2Magic and l2Format start every L2 value, so a value of another
// format (another pgone version sharing the Redis) is never misread.
const (
	l2Magic  = 'P'
	l2Format = 1
)

var errL2Format = errors.New("cache: L2 entry of an unknown format")

// encodeRemote is the L2 value of reply read in db under tables (sorted,
// as in the local token) and rt, to live ttl. Redis versions, not local
// ones: every instance reads them.
func encodeRemote(db string, tables []TableVersion, rt *remoteToken, ttl time.Duration, reply []byte) []byte {
	n := 2 + 2 + len(rt.gen) + 8 + 8 + 4 + len(db) + 4 + 8 + len(reply)
	for _, t := range tables {
		n += 4 + len(t.Table) + 8
	}
	b := make([]byte, 0, n)
	b = append(b, l2Magic, l2Format)
	b = binary.BigEndian.AppendUint16(b, uint16(len(rt.gen)))
	b = append(b, rt.gen...)
	b = binary.BigEndian.AppendUint64(b, rt.all)
	b = binary.BigEndian.AppendUint64(b, rt.epoch)
	b = appendString32(b, db)
	b = binary.BigEndian.AppendUint32(b, uint32(len(tables)))
	for i, t := range tables {
		b = appendString32(b, t.Table)
		b = binary.BigEndian.AppendUint64(b, rt.versions[i])
	}
	b = binary.BigEndian.AppendUint64(b, uint64(ttl.Milliseconds()))
	return append(b, reply...)
}

func appendString32(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// decodeRemote reads an L2 value; the reply aliases b.
func decodeRemote(b []byte) (*remoteEntry, error) {
	d := decoder{b: b}
	if m, f := d.byte(), d.byte(); d.bad || m != l2Magic || f != l2Format {
		return nil, errL2Format
	}
	e := &remoteEntry{}
	e.gen = string(d.bytes(int(d.uint16())))
	e.all, e.epoch = d.uint64(), d.uint64()
	e.db = string(d.bytes(int(d.uint32())))
	n := d.uint32()
	if d.bad || int(n) > len(d.b) {
		return nil, errL2Format
	}
	e.tables = make([]TableVersion, 0, n)
	for i := uint32(0); i < n && !d.bad; i++ {
		name := string(d.bytes(int(d.uint32())))
		e.tables = append(e.tables, TableVersion{Table: name, Version: d.uint64()})
	}
	ms := d.uint64()
	e.ttl = time.Duration(ms) * time.Millisecond
	if d.bad || ms > math.MaxInt64/uint64(time.Millisecond) {
		return nil, errL2Format
	}
	e.reply = d.b
	return e, nil
}

// validFor says whether e was stored under exactly what Redis says now
// (rt, for the sorted tables of db): same incarnation, flush counter,
// epoch, tables and versions.
func (e *remoteEntry) validFor(db string, tables []TableVersion, rt *remoteToken) bool {
	if rt.gen == "" || e.gen != rt.gen || e.all != rt.all || e.epoch != rt.epoch ||
		e.db != db || len(e.tables) != len(tables) {
		return false
	}
	for i, t := range e.tables {
		if t.Table != tables[i].Table || t.Version != rt.versions[i] {
			return false
		}
	}
	return true
}

// decoder reads big-endian fields; a short read sets bad.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) bytes(n int) []byte {
	if d.bad || n < 0 || n > len(d.b) {
		d.bad = true
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if v := d.bytes(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) uint16() uint16 {
	if v := d.bytes(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (d *decoder) uint32() uint32 {
	if v := d.bytes(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) uint64() uint64 {
	if v := d.bytes(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}
