package proxy_test

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

const (
	sslRequestCode    = 80877103
	gssencRequestCode = 80877104
)

// negotiationTranscript sends the encryption requests codes one by one to
// addr, then a StartupMessage, and describes each answer: N for a refusal,
// the SQLSTATE and text of an error (which must end the connection), R for
// an authentication request.
func negotiationTranscript(t *testing.T, addr string, codes ...uint32) string {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(ioTimeout))
	var out []string
	readError := func() string {
		var hdr [4]byte
		if _, err := io.ReadFull(nc, hdr[:]); err != nil {
			t.Fatal(err)
		}
		body := make([]byte, binary.BigEndian.Uint32(hdr[:])-4)
		if _, err := io.ReadFull(nc, body); err != nil {
			t.Fatal(err)
		}
		var er pgproto3.ErrorResponse
		if err := er.Decode(body); err != nil {
			t.Fatal(err)
		}
		if n, err := nc.Read(hdr[:1]); n != 0 || !isClosed(err) {
			t.Fatalf("after %s: connection still open", er.Message)
		}
		return fmt.Sprintf("%s %s %s", er.Severity, er.Code, er.Message)
	}
	one := make([]byte, 1)
	for _, code := range codes {
		pkt := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 8), code)
		if _, err := nc.Write(pkt); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(nc, one); err != nil {
			t.Fatal(err)
		}
		switch one[0] {
		case 'N':
			out = append(out, "N")
		case 'E':
			return strings.Join(append(out, readError()), "; ")
		default:
			t.Fatalf("answer %q to request %d", one[0], code)
		}
	}
	if _, err := nc.Write(rawStartupPacket(pgproto3.ProtocolVersionNumber, "user", appUser, "database", appDB)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(nc, one); err != nil {
		t.Fatal(err)
	}
	if one[0] == 'E' {
		return strings.Join(append(out, readError()), "; ")
	}
	return strings.Join(append(out, string(one)), "; ")
}

// TestEncryptionRequestsAtMostOnce checks that SSLRequest and GSSENCRequest
// are each answered at most once, a GSSENCRequest only before or after a
// refused SSLRequest, as PostgreSQL does: a repeat ends the connection
// with PostgreSQL's error.
func TestEncryptionRequestsAtMostOnce(t *testing.T) {
	t.Parallel()
	p := startProxy(t, nil)
	pgoneAddr := net.JoinHostPort(p.Host, strconv.Itoa(p.Port))
	directAddr := net.JoinHostPort(cluster.Primary.Host, strconv.Itoa(cluster.Primary.Port))
	// PostgreSQL built with GSSAPI accepts GSSENCRequest, so the cases with
	// one state the answer: a repeat gets PostgreSQL's error for a repeated
	// request. (PostgreSQL lets SSL and GSS requests alternate without end,
	// its ssl_done/gss_done flags resetting each other; pgone answers each
	// at most once.)
	const (
		repeatedSSL = "FATAL 0A000 unsupported frontend protocol 1234.5679: server supports 3.0 to 3.0"
		repeatedGSS = "FATAL 0A000 unsupported frontend protocol 1234.5680: server supports 3.0 to 3.0"
	)
	for _, tc := range []struct {
		name  string
		codes []uint32
		want  string // "": as PostgreSQL answers
	}{
		{"ssl", []uint32{sslRequestCode}, ""},
		{"ssl twice", []uint32{sslRequestCode, sslRequestCode}, ""},
		{"ssl many times", []uint32{sslRequestCode, sslRequestCode, sslRequestCode, sslRequestCode}, ""},
		{"gss twice", []uint32{gssencRequestCode, gssencRequestCode}, "N; " + repeatedGSS},
		{"gss then ssl", []uint32{gssencRequestCode, sslRequestCode}, "N; N; R"},
		{"ssl then gss", []uint32{sslRequestCode, gssencRequestCode}, "N; N; R"},
		{"ssl, gss, ssl", []uint32{sslRequestCode, gssencRequestCode, sslRequestCode}, "N; N; " + repeatedSSL},
		{"gss, ssl, gss", []uint32{gssencRequestCode, sslRequestCode, gssencRequestCode}, "N; N; " + repeatedGSS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := negotiationTranscript(t, pgoneAddr, tc.codes...)
			want := tc.want
			if want == "" {
				want = negotiationTranscript(t, directAddr, tc.codes...)
			}
			if got != want {
				t.Fatalf("pgone: %s\nwant (PostgreSQL): %s", got, want)
			}
		})
	}
}
