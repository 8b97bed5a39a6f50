package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// Key names one cached result: the SHA-256 of every input that can change
// the reply bytes or who may see them (KeyInput). A cryptographic hash,
// because two inputs sharing a key would hand one role's rows to another:
// a client must not be able to craft a collision.
type Key [sha256.Size]byte

// String is the key in hex, for logs and tests.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// Shape is how a request asked for its result, opaque to the cache: the
// proxy sets one value per reply sequence it can produce (a simple Query;
// Parse/Bind/Execute with or without Describe ...), since the same result
// sent on different paths is different bytes.
type Shape uint8

// Output is the session settings that change how values are written as
// text, or which text is valid. Each is the setting's value as the server
// reports it (ParameterStatus or SHOW), not as the client typed it.
type Output struct {
	TimeZone                  string
	DateStyle                 string
	IntervalStyle             string
	ExtraFloatDigits          string
	ByteaOutput               string
	ClientEncoding            string
	LcMonetary                string
	LcNumeric                 string
	StandardConformingStrings string
}

// KeyInput is everything that can change a read's reply bytes or who may
// see them. Params[i] == nil is SQL NULL, distinct from an empty value.
// Formats are the Bind message's codes as sent (an empty list, one code
// for all, or one per column), so equal meaning sent differently gives two
// keys: harmless, only a second entry.
type KeyInput struct {
	Database   string
	Role       string // the effective role: after SET ROLE / SET SESSION AUTHORIZATION
	SearchPath string
	// Settings is every session-level setting as one canonical string, for
	// a caller that tracks settings as a whole rather than one by one (the
	// proxy's settings snapshot); empty when the fields above are used.
	Settings      string
	Output        Output
	Shape         Shape
	Text          string
	ParamFormats  []int16
	Params        [][]byte
	ResultFormats []int16
}

// keyVersion starts every encoding, so a change of the encoding below
// cannot meet keys written by an older pgone in a shared L2.
const keyVersion = 2

// KeyBuilder turns KeyInputs into Keys without allocating once its buffer
// has grown to the largest input seen. It is not safe for concurrent use:
// each session owns one.
type KeyBuilder struct {
	buf []byte
}

// Key returns in's key. Every field is written with its length first (and
// lists with their count first), so the encoding is injective: ("ab","c")
// and ("a","bc") differ, as do a NULL and an empty parameter.
func (b *KeyBuilder) Key(in *KeyInput) Key {
	b.buf = appendInput(b.buf[:0], in)
	return sha256.Sum256(b.buf)
}

func appendInput(buf []byte, in *KeyInput) []byte {
	buf = append(buf, keyVersion)
	for _, s := range [...]string{in.Database, in.Role, in.SearchPath, in.Settings,
		in.Output.TimeZone, in.Output.DateStyle, in.Output.IntervalStyle,
		in.Output.ExtraFloatDigits, in.Output.ByteaOutput, in.Output.ClientEncoding,
		in.Output.LcMonetary, in.Output.LcNumeric, in.Output.StandardConformingStrings} {
		buf = appendString(buf, s)
	}
	buf = append(buf, byte(in.Shape))
	buf = appendString(buf, in.Text)
	buf = appendCodes(buf, in.ParamFormats)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(in.Params)))
	for _, p := range in.Params {
		if p == nil {
			buf = binary.BigEndian.AppendUint64(buf, ^uint64(0)) // NULL: no length is this large
			continue
		}
		buf = binary.BigEndian.AppendUint64(buf, uint64(len(p)))
		buf = append(buf, p...)
	}
	return appendCodes(buf, in.ResultFormats)
}

func appendString(buf []byte, s string) []byte {
	buf = binary.BigEndian.AppendUint64(buf, uint64(len(s)))
	return append(buf, s...)
}

func appendCodes(buf []byte, codes []int16) []byte {
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(codes)))
	for _, c := range codes {
		buf = binary.BigEndian.AppendUint16(buf, uint16(c))
	}
	return buf
}
