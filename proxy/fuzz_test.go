package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/pgerr"
)

// checkStartupError fails unless err is what the startup phase may return:
// a pgone error for the client, or an I/O error from a short stream.
func checkStartupError(t *testing.T, err error) {
	t.Helper()
	var pe *pgerr.Error
	switch {
	case errors.As(err, &pe):
		if pe.Code == "" || pe.Message == "" {
			t.Fatalf("pgerr.Error without code or message: %#v", pe)
		}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
	default:
		t.Fatalf("error %T is neither a *pgerr.Error nor an I/O error: %v", err, err)
	}
}

// FuzzStartupPacket feeds arbitrary bytes through the startup phase's
// decoders as session.startup does: packets until a StartupMessage, which
// is parsed, its options included. The options string is also parsed on
// its own. Nothing may panic, every error must be a *pgerr.Error or an I/O
// error, and what parses must be self-consistent.
func FuzzStartupPacket(f *testing.F) {
	f.Add(packet(version30, startupBody("user", "alice", "database", "db")))
	f.Add(packet(version30, startupBody("user", "u", "options", `-c search_path=a\ b --work-mem=4MB`, "application_name", "x")))
	f.Add(append(packet(pgmsg.SSLRequestCode, nil), packet(version30, startupBody("user", "u"))...))
	f.Add(append(packet(pgmsg.GSSENCRequestCode, nil), packet(3<<16|2, startupBody("user", "u", "_pq_.x", "1"))...))
	f.Add(packet(pgmsg.CancelRequestCode, []byte{0, 0, 0, 1, 0, 0, 0, 2}))
	f.Add(packet(pgmsg.CancelRequestCode, []byte{0, 0}))
	f.Add(packet(version30, startupBody("user", "u", "replication", "true")))
	f.Add(packet(2<<16, startupBody("user", "u")))
	f.Add(packet(version30, []byte("user\x00u")))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{0, 0, 0, 4})
	f.Add(packet(version30, startupBody("user", "u"))[:11])
	f.Fuzz(func(t *testing.T, data []byte) {
		// The options parser on its own, with the input as the string.
		if ps, err := parseOptions(string(data)); err != nil {
			checkStartupError(t, err)
		} else {
			for _, p := range ps {
				if p.name == "" {
					t.Fatalf("parseOptions(%q) gave a parameter without a name", data)
				}
			}
		}

		br := bufio.NewReader(bytes.NewReader(data))
		for {
			code, body, err := readStartupPacket(br)
			if err != nil {
				checkStartupError(t, err)
				return
			}
			if n := 8 + len(body); n > maxStartupPacket {
				t.Fatalf("accepted a packet of %d bytes", n)
			}
			switch code {
			case pgmsg.SSLRequestCode, pgmsg.GSSENCRequestCode:
				continue
			case pgmsg.CancelRequestCode:
				return
			}
			req, err := parseStartup(code, body)
			if err != nil {
				checkStartupError(t, err)
				return
			}
			if req.user == "" || req.database == "" {
				t.Fatalf("accepted a startup without user or database: %+v", req)
			}
			if code>>16 != protocolMajor3 || req.minor != code&0xffff {
				t.Fatalf("accepted version %#x as minor %d", code, req.minor)
			}
			for _, p := range req.params {
				if p.name == "" {
					t.Fatalf("a parameter without a name: %+v", req.params)
				}
			}
			if sql := applyParamsSQL(req.params); len(req.params) > 0 && sql == "" {
				t.Fatal("parameters without a statement to apply them")
			}
			return
		}
	})
}
