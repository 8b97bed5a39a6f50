package proxy

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/pgerr"
)

// Startup packet codes (the int32 after the length).
const (
	protocolMajor3 = 3

	// maxStartupPacket is PostgreSQL's MAX_STARTUP_PACKET_LENGTH.
	maxStartupPacket = 10000
)

// errCancelHandled ends a connection that carried a CancelRequest.
var errCancelHandled = errors.New("cancel request handled")

// startupRequest is what a client asked for in its StartupMessage.
type startupRequest struct {
	minor    uint32
	user     string
	database string
	// params are the run-time parameters to apply to the server, in the
	// order PostgreSQL applies them: -c settings from options first, then
	// the other parameters (sorted, for a stable order).
	params []param
	// pqOptions are the _pq_.* protocol options, which pgone does not know.
	pqOptions []string
}

type param struct{ name, value string }

// readStartupPacket reads one length-prefixed startup-phase packet.
func readStartupPacket(br io.Reader) (uint32, []byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(br, hdr[:4]); err != nil {
		return 0, nil, err
	}
	n := int(int32(binary.BigEndian.Uint32(hdr[:4])))
	if n < 8 || n > maxStartupPacket {
		return 0, nil, pgerr.Fatal(pgerr.ProtocolViolation, "invalid length of startup packet")
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(br, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, fmt.Errorf("incomplete startup packet: %w", err)
	}
	return binary.BigEndian.Uint32(body[:4]), body[4:], nil
}

// parseStartup decodes a StartupMessage body (after the version) as
// PostgreSQL 15's ProcessStartupPacket does.
func parseStartup(version uint32, body []byte) (*startupRequest, error) {
	major, minor := version>>16, version&0xffff
	if major != protocolMajor3 {
		return nil, pgerr.Fatal(pgerr.FeatureNotSupported,
			"unsupported frontend protocol %d.%d: server supports 3.0 to 3.0", major, minor)
	}
	req := &startupRequest{minor: minor}
	var options string
	other := map[string]string{}
	for len(body) > 0 && body[0] != 0 {
		name, rest, ok := cutCString(body)
		if !ok {
			return nil, pgerr.Fatal(pgerr.ProtocolViolation, "invalid startup packet layout: expected terminator as last byte")
		}
		value, rest2, ok := cutCString(rest)
		if !ok {
			return nil, pgerr.Fatal(pgerr.ProtocolViolation, "invalid startup packet layout: expected terminator as last byte")
		}
		body = rest2
		switch {
		case name == "user":
			req.user = value
		case name == "database":
			req.database = value
		case name == "options":
			options = value
		case name == "replication":
			if value != "false" && value != "off" && value != "no" && value != "0" {
				return nil, pgerr.Fatal(pgerr.FeatureNotSupported, "pgone does not support replication connections")
			}
		case strings.HasPrefix(name, "_pq_."):
			req.pqOptions = append(req.pqOptions, name)
		default:
			other[name] = value
		}
	}
	if len(body) != 1 {
		return nil, pgerr.Fatal(pgerr.ProtocolViolation, "invalid startup packet layout: expected terminator as last byte")
	}
	if req.user == "" {
		return nil, pgerr.Fatal(pgerr.InvalidAuthorizationSpecification, "no PostgreSQL user name specified in startup packet")
	}
	if req.database == "" {
		req.database = req.user
	}
	opts, err := parseOptions(options)
	if err != nil {
		return nil, err
	}
	req.params = opts
	names := make([]string, 0, len(other))
	for k := range other {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		req.params = append(req.params, param{k, other[k]})
	}
	return req, nil
}

func cutCString(b []byte) (string, []byte, bool) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), b[i+1:], true
		}
	}
	return "", nil, false
}

// parseOptions reads the options startup parameter: whitespace-separated
// switches, backslash escaping the next character (pg_split_opts). Only the
// run-time parameter forms are supported: "-c name=value", "-cname=value"
// and "--name=value".
func parseOptions(s string) ([]param, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			// As pg_split_opts, a trailing backslash escapes nothing and is dropped.
			if i+1 < len(s) {
				i++
				cur.WriteByte(s[i])
			}
			inWord = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	var out []param
	for i := 0; i < len(words); i++ {
		w := words[i]
		var setting string
		switch {
		case w == "-c":
			if i+1 >= len(words) {
				return nil, pgerr.Fatal(pgerr.SyntaxError, "invalid command-line argument for server process: -c")
			}
			i++
			setting = words[i]
		case strings.HasPrefix(w, "-c"):
			setting = w[2:]
		case strings.HasPrefix(w, "--"):
			setting = w[2:]
		default:
			return nil, pgerr.Fatal(pgerr.FeatureNotSupported,
				"unsupported switch %q in options: pgone passes only -c name=value settings", w)
		}
		name, value, ok := strings.Cut(setting, "=")
		if !ok || name == "" {
			return nil, pgerr.Fatal(pgerr.SyntaxError, "-c %s requires a value", setting)
		}
		out = append(out, param{strings.ReplaceAll(name, "-", "_"), value})
	}
	return out, nil
}

// startup runs the startup phase up to a StartupMessage: it answers
// SSLRequest and GSSENCRequest, upgrades to TLS, and handles CancelRequest
// (returning errCancelHandled).
//
// Each of SSLRequest and GSSENCRequest is answered at most once; a repeat
// is read as a StartupMessage of an unknown protocol version and ends the
// connection as PostgreSQL ends it for a repeated request (PostgreSQL
// itself lets the two alternate without end).
func (ss *session) startup(snap *snapshot) (*startupRequest, error) {
	sslDone, gssDone := false, false
	for {
		code, body, err := readStartupPacket(ss.br)
		if err != nil {
			return nil, err
		}
		if (code == pgmsg.SSLRequestCode && sslDone) || (code == pgmsg.GSSENCRequestCode && gssDone) {
			_, err := parseStartup(code, body) // "unsupported frontend protocol 1234.5679"
			return nil, err
		}
		switch code {
		case pgmsg.SSLRequestCode:
			sslDone = true
			if snap.tls == nil {
				if err := ss.writeRaw([]byte{pgmsg.EncryptionRefused}); err != nil {
					return nil, err
				}
				continue
			}
			if ss.br.Buffered() > 0 {
				// Bytes sent after SSLRequest but before the handshake could be
				// injected by a man in the middle (CVE-2021-23214).
				return nil, pgerr.Fatal(pgerr.ProtocolViolation, "received unencrypted data after SSL request")
			}
			if err := ss.writeRaw([]byte{pgmsg.SSLAccepted}); err != nil {
				return nil, err
			}
			tc := tls.Server(ss.nc, snap.tls)
			if err := tc.Handshake(); err != nil {
				return nil, fmt.Errorf("tls handshake: %w", err)
			}
			ss.setConn(tc)
			ss.tls = true
			gssDone = true // no GSS encryption inside TLS
		case pgmsg.GSSENCRequestCode:
			gssDone = true
			if err := ss.writeRaw([]byte{pgmsg.EncryptionRefused}); err != nil {
				return nil, err
			}
		case pgmsg.CancelRequestCode:
			if len(body) < 8 {
				// As PostgreSQL: a cancel connection gets no reply, not even an error.
				ss.log.Info("invalid length of cancel request", "sqlstate", pgerr.ProtocolViolation)
				return nil, errCancelHandled
			}
			ss.srv.cancelRequest(cancelKey{
				pid:    binary.BigEndian.Uint32(body[:4]),
				secret: binary.BigEndian.Uint32(body[4:8]),
			}, ss.log)
			return nil, errCancelHandled
		default:
			req, err := parseStartup(code, body)
			if err != nil {
				return nil, err
			}
			if req.minor > 0 || len(req.pqOptions) > 0 {
				// As PostgreSQL 15: name the newest version we speak and the
				// protocol options we do not know, then carry on with 3.0.
				// The field holds the whole version number (3.0 = 196608),
				// as PostgreSQL sends it and libpq reads it, not the minor.
				msg := &pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: protocolMajor3 << 16, UnrecognizedOptions: req.pqOptions}
				if err := ss.send(msg); err != nil {
					return nil, err
				}
			}
			return req, nil
		}
	}
}

// applyParamsSQL is the statement that brings a server session to the
// client's startup parameters. set_config parses values as a startup
// parameter would (list settings such as search_path included).
func applyParamsSQL(params []param) string {
	if len(params) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("SELECT ")
	for i, p := range params {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("pg_catalog.set_config(")
		b.WriteString(quoteLiteral(p.name))
		b.WriteString(", ")
		b.WriteString(quoteLiteral(p.value))
		b.WriteString(", false)")
	}
	return b.String()
}

// reapplyStartupSQL is the statement that brings back the startup value of
// every startup parameter that is no longer set in the session (a RESET
// took it to the server default), as PostgreSQL would have: there the
// startup values are the session's reset values.
func reapplyStartupSQL(params []param) string {
	var b strings.Builder
	b.WriteString("SELECT pg_catalog.set_config(p.name, p.value, false) FROM (VALUES ")
	for i, p := range params {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(" + quoteLiteral(p.name) + ", " + quoteLiteral(p.value) + ")")
	}
	b.WriteString(") AS p(name, value) WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_settings s" +
		" WHERE lower(s.name) = lower(p.name) AND s.source = 'session')")
	return b.String()
}

// quoteLiteral quotes s as an escape string constant, which means the same
// whatever standard_conforming_strings is.
func quoteLiteral(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 4)
	b.WriteString("E'")
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\'':
			b.WriteString("''")
		case '\\':
			b.WriteString(`\\`)
		default:
			b.WriteByte(s[i])
		}
	}
	b.WriteByte('\'')
	return b.String()
}
