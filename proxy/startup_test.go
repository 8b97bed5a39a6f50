package proxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/pgerr"
)

// QuoteLiteral and ApplyParamsSQL expose the SQL builders to the
// integration tests (package proxy_test), which run what they build on
// PostgreSQL. ApplyParamsSQL takes name, value pairs.
func QuoteLiteral(s string) string { return quoteLiteral(s) }

func ApplyParamsSQL(kv ...string) string {
	var ps []param
	for i := 0; i+1 < len(kv); i += 2 {
		ps = append(ps, param{kv[i], kv[i+1]})
	}
	return applyParamsSQL(ps)
}

// startupBody encodes name, value pairs as a StartupMessage body after the
// version: each a C string, then the final terminator.
func startupBody(kv ...string) []byte {
	var b []byte
	for _, s := range kv {
		b = append(append(b, s...), 0)
	}
	return append(b, 0)
}

// packet encodes a startup-phase packet: length, code, body.
func packet(code uint32, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(8+len(body)))
	b = binary.BigEndian.AppendUint32(b, code)
	return append(b, body...)
}

const version30 = 3 << 16

func wantCode(t *testing.T, err error, code pgerr.Code) {
	t.Helper()
	var pe *pgerr.Error
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v (%T), want a *pgerr.Error with %s", err, err, code)
	}
	if pe.Code != code {
		t.Fatalf("err = %v, want SQLSTATE %s", err, code)
	}
}

func TestParseStartup(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		version uint32
		body    []byte
		want    *startupRequest
		code    pgerr.Code // when an error is expected
	}{
		{
			name: "user and database", version: version30,
			body: startupBody("user", "alice", "database", "shop"),
			want: &startupRequest{user: "alice", database: "shop"},
		},
		{
			name: "database defaults to the user", version: version30,
			body: startupBody("user", "alice"),
			want: &startupRequest{user: "alice", database: "alice"},
		},
		{
			name: "empty database defaults to the user", version: version30,
			body: startupBody("user", "alice", "database", ""),
			want: &startupRequest{user: "alice", database: "alice"},
		},
		{
			name: "options first, then the other parameters sorted", version: version30,
			body: startupBody("user", "u", "search_path", "a, b", "application_name", "x",
				"options", "-c work_mem=4MB --statement-timeout=5s"),
			want: &startupRequest{user: "u", database: "u", params: []param{
				{"work_mem", "4MB"}, {"statement_timeout", "5s"},
				{"application_name", "x"}, {"search_path", "a, b"},
			}},
		},
		{
			name: "newer minor and protocol options are kept for negotiation", version: 3<<16 | 2,
			body: startupBody("user", "u", "_pq_.compression", "on", "_pq_.other", "1"),
			want: &startupRequest{minor: 2, user: "u", database: "u", pqOptions: []string{"_pq_.compression", "_pq_.other"}},
		},
		{
			name: "replication off is a normal connection", version: version30,
			body: startupBody("user", "u", "replication", "false"),
			want: &startupRequest{user: "u", database: "u"},
		},
		{name: "protocol 2", version: 2 << 16, body: startupBody("user", "u"), code: pgerr.FeatureNotSupported},
		{name: "protocol 4", version: 4 << 16, body: startupBody("user", "u"), code: pgerr.FeatureNotSupported},
		{name: "replication", version: version30, body: startupBody("user", "u", "replication", "database"), code: pgerr.FeatureNotSupported},
		{name: "no user", version: version30, body: startupBody("database", "d"), code: pgerr.InvalidAuthorizationSpecification},
		{name: "empty user", version: version30, body: startupBody("user", ""), code: pgerr.InvalidAuthorizationSpecification},
		{name: "empty body", version: version30, body: nil, code: pgerr.ProtocolViolation},
		{name: "no final terminator", version: version30, body: []byte("user\x00u\x00"), code: pgerr.ProtocolViolation},
		{name: "bytes after the terminator", version: version30, body: []byte("user\x00u\x00\x00x"), code: pgerr.ProtocolViolation},
		{name: "name without terminator", version: version30, body: []byte("user"), code: pgerr.ProtocolViolation},
		{name: "value without terminator", version: version30, body: []byte("user\x00u"), code: pgerr.ProtocolViolation},
		{name: "bad options", version: version30, body: startupBody("user", "u", "options", "-c"), code: pgerr.SyntaxError},
	} {
		got, err := parseStartup(tc.version, tc.body)
		if tc.code != "" {
			if got != nil {
				t.Errorf("%s: got %+v with an error expected", tc.name, got)
			}
			t.Run(tc.name, func(t *testing.T) { wantCode(t, err, tc.code) })
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, tc.want)
		}
	}
}

func TestParseOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want []param
		code pgerr.Code
	}{
		{in: "", want: nil},
		{in: "   \t ", want: nil},
		{in: "-c a=b", want: []param{{"a", "b"}}},
		{in: "-ca=b", want: []param{{"a", "b"}}},
		{in: "--a=b", want: []param{{"a", "b"}}},
		{in: "--work-mem=64kB -c search-path=x", want: []param{{"work_mem", "64kB"}, {"search_path", "x"}}},
		{in: "-c a=", want: []param{{"a", ""}}},
		{in: "-c a=b=c", want: []param{{"a", "b=c"}}},
		{in: " \t-c\ta=b\n\r\f\v-c c=d ", want: []param{{"a", "b"}, {"c", "d"}}},
		{in: `-c application_name=two\ words`, want: []param{{"application_name", "two words"}}},
		{in: `-c a=back\\slash`, want: []param{{"a", `back\slash`}}},
		{in: `-c a=\x\y`, want: []param{{"a", "xy"}}},
		{in: `-c a=trailing\`, want: []param{{"a", "trailing"}}},
		// 42601, as PostgreSQL's process_postgres_switches raises;
		// TestStartupParametersParity compares them with the server's.
		{in: "-c", code: pgerr.SyntaxError},
		{in: "-c a", code: pgerr.SyntaxError},
		{in: "-c =b", code: pgerr.SyntaxError},
		{in: "--a", code: pgerr.SyntaxError},
		{in: "-d 5", code: pgerr.FeatureNotSupported},
		{in: "a=b", code: pgerr.FeatureNotSupported},
	} {
		got, err := parseOptions(tc.in)
		if tc.code != "" {
			t.Run(tc.in, func(t *testing.T) { wantCode(t, err, tc.code) })
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
}

// unquoteEString reverses quoteLiteral's escaping of an escape string
// constant: a doubled quote is a quote, a doubled backslash a backslash. It
// fails on anything quoteLiteral must never produce (a lone quote, another
// escape).
func unquoteEString(t *testing.T, q string) string {
	t.Helper()
	inner, ok := strings.CutPrefix(q, "E'")
	if !ok || !strings.HasSuffix(inner, "'") || len(inner) < 1 {
		t.Fatalf("%q is not an E'' literal", q)
	}
	inner = inner[:len(inner)-1]
	var b strings.Builder
	for i := 0; i < len(inner); i++ {
		switch c := inner[i]; {
		case c == '\'' && i+1 < len(inner) && inner[i+1] == '\'':
			b.WriteByte('\'')
			i++
		case c == '\\' && i+1 < len(inner) && inner[i+1] == '\\':
			b.WriteByte('\\')
			i++
		case c == '\'' || c == '\\':
			t.Fatalf("%q: unescaped %q at %d ends or escapes the literal early", q, c, i)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func TestQuoteLiteral(t *testing.T) {
	t.Parallel()
	// PostgreSQL itself evaluates these in the integration test
	// TestQuoteLiteralOnPostgreSQL; here the escaping rules are checked.
	for _, s := range []string{"", "plain", "it's", "''", `\`, `\'`, `'\`, `a\\b`, "$$", "line\nbreak", "tab\t", "ünï", "E'x'"} {
		q := quoteLiteral(s)
		if got := unquoteEString(t, q); got != s {
			t.Errorf("quoteLiteral(%q) = %s, which reads back as %q", s, q, got)
		}
	}
}

func TestApplyParamsSQL(t *testing.T) {
	t.Parallel()
	if got := applyParamsSQL(nil); got != "" {
		t.Fatalf("no params: %q, want no statement", got)
	}
	got := applyParamsSQL([]param{{"search_path", `"my schema", public`}, {"application_name", `it's \ me`}})
	want := `SELECT pg_catalog.set_config(E'search_path', E'"my schema", public', false), ` +
		`pg_catalog.set_config(E'application_name', E'it''s \\ me', false)`
	if got != want {
		t.Fatalf("\n got %s\nwant %s", got, want)
	}
}

func TestReadStartupPacket(t *testing.T) {
	t.Parallel()
	body := startupBody("user", "u")
	code, got, err := readStartupPacket(bufio.NewReader(bytes.NewReader(packet(version30, body))))
	if err != nil || code != version30 || !bytes.Equal(got, body) {
		t.Fatalf("got %d %q %v", code, got, err)
	}
	// A packet of exactly 8 bytes (SSLRequest) has an empty body.
	code, got, err = readStartupPacket(bufio.NewReader(bytes.NewReader(packet(pgmsg.SSLRequestCode, nil))))
	if err != nil || code != pgmsg.SSLRequestCode || len(got) != 0 {
		t.Fatalf("SSLRequest: got %d %q %v", code, got, err)
	}
	// The largest allowed packet passes, one byte more does not.
	big := packet(version30, make([]byte, maxStartupPacket-8))
	if _, _, err := readStartupPacket(bufio.NewReader(bytes.NewReader(big))); err != nil {
		t.Fatalf("packet of %d bytes: %v", maxStartupPacket, err)
	}
	for _, n := range []uint32{0, 4, 7, maxStartupPacket + 1, 0x7fffffff, 0x80000000, 0xffffffff} {
		b := binary.BigEndian.AppendUint32(nil, n)
		_, _, err := readStartupPacket(bufio.NewReader(bytes.NewReader(append(b, make([]byte, 16)...))))
		t.Run(fmt.Sprintf("length %d", n), func(t *testing.T) { wantCode(t, err, pgerr.ProtocolViolation) })
	}
	// Ends of stream.
	if _, _, err := readStartupPacket(bufio.NewReader(bytes.NewReader(nil))); !errors.Is(err, io.EOF) {
		t.Fatalf("empty stream: %v, want io.EOF", err)
	}
	if _, _, err := readStartupPacket(bufio.NewReader(bytes.NewReader([]byte{0, 0}))); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("half a length: %v, want io.ErrUnexpectedEOF", err)
	}
	truncated := packet(version30, body)[:10]
	if _, _, err := readStartupPacket(bufio.NewReader(bytes.NewReader(truncated))); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated packet: %v, want io.ErrUnexpectedEOF", err)
	}
}
