package proxy

import (
	"bytes"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/internal/wire"
)

// FuzzFrameRewrites feeds arbitrary message bodies to the decoders and
// rewriters pgone applies to client frames in transaction mode, with
// pgproto3 as the oracle: what pgone decodes must be what pgproto3
// decodes, and a rewritten frame must decode to the same message with only
// the statement name changed.
func FuzzFrameRewrites(f *testing.F) {
	seed := func(m pgproto3.FrontendMessage) {
		b, err := m.Encode(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(&pgproto3.Parse{Name: "s1", Query: "select $1::int", ParameterOIDs: []uint32{23}})
	seed(&pgproto3.Parse{Query: "select 1"})
	seed(&pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "s1", ParameterFormatCodes: []int16{1}, Parameters: [][]byte{{0, 0, 0, 1}}, ResultFormatCodes: []int16{0}})
	seed(&pgproto3.Bind{})
	seed(&pgproto3.Describe{ObjectType: 'S', Name: "s1"})
	seed(&pgproto3.Close{ObjectType: 'P', Name: ""})
	f.Add([]byte{'P', 0, 0, 0, 4})
	f.Add([]byte{'B', 0, 0, 0, 6, 0})
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) < wire.HeaderLen {
			return
		}
		body := wire.Body(frame)
		// A request's frames are decoded once (frameView); decoded again,
		// through the session's memo of texts, a frame must read the same.
		var p plan
		v := p.decodeFrame(frame)
		if again := p.decodeFrame(frame); again.name != v.name || again.text != v.text || again.ok != v.ok {
			t.Fatalf("decodeFrame through the memo = %+v, first %+v", again, v)
		}
		switch frame[0] {
		case 'P':
			var want pgproto3.Parse
			if want.Decode(body) != nil || !v.ok {
				return // pgone forwards what it cannot decode untouched
			}
			if v.name != want.Name || v.text != want.Query {
				t.Fatalf("decodeFrame(Parse) = %q %q, pgproto3 %q %q", v.name, v.text, want.Name, want.Query)
			}
			out := encodeParse(nil, "pgone_x", v.text, v.rest)
			var got pgproto3.Parse
			if err := got.Decode(wire.Body(out)); err != nil {
				t.Fatalf("re-encoded Parse does not decode: %v", err)
			}
			if got.Name != "pgone_x" || got.Query != want.Query || len(got.ParameterOIDs) != len(want.ParameterOIDs) {
				t.Fatalf("re-encoded Parse %+v, want %+v renamed", got, want)
			}
		case 'B':
			pe, name, se, ok := bindStatement(frame)
			var want pgproto3.Bind
			if want.Decode(body) != nil || !ok {
				return
			}
			if name != want.PreparedStatement {
				t.Fatalf("bindStatement = %q, pgproto3 %q", name, want.PreparedStatement)
			}
			if !v.ok || v.name != name || v.portalEnd != pe || v.stmtEnd != se {
				t.Fatalf("decodeFrame(Bind) = %+v, bindStatement %q %d %d", v, name, pe, se)
			}
			out := rewriteBind(nil, frame, pe, se, "pgone_y")
			var got pgproto3.Bind
			if err := got.Decode(wire.Body(out)); err != nil {
				t.Fatalf("rewritten Bind does not decode: %v", err)
			}
			if got.PreparedStatement != "pgone_y" || got.DestinationPortal != want.DestinationPortal ||
				len(got.Parameters) != len(want.Parameters) || !bytes.Equal(wire.Body(out)[pe+len("pgone_y")+1:], body[se:]) {
				t.Fatalf("rewritten Bind %+v, want %+v renamed", got, want)
			}
		case 'D', 'C':
			kind, name, ok := targetOf(frame)
			if !ok {
				return
			}
			var d pgproto3.Describe
			if err := d.Decode(body); err != nil {
				t.Fatalf("targetOf accepted a body pgproto3 rejects: %v", err)
			}
			if kind != d.ObjectType || name != d.Name {
				t.Fatalf("targetOf = %c %q, pgproto3 %c %q", kind, name, d.ObjectType, d.Name)
			}
			if !v.ok || v.kind != kind || v.name != name {
				t.Fatalf("decodeFrame = %+v, targetOf %c %q", v, kind, name)
			}
			if out := encodeTarget(nil, frame[0], kind, name); !bytes.Equal(wire.Body(out), body) {
				t.Fatalf("encodeTarget does not round-trip: %q vs %q", out, frame)
			}
		}
	})
}

// FuzzConsoleCommand feeds arbitrary text to the admin console's parser:
// nothing may panic, a verb is lower case, and an error is a pgone error.
func FuzzConsoleCommand(f *testing.F) {
	for _, s := range []string{"SHOW POOLS;", "show clients", "PAUSE \"my db\"", "RELOAD", "", ";;", "KILL a b c", "show;show"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		cmd, err := parseConsoleCommand(text)
		if err != nil {
			checkStartupError(t, err)
			return
		}
		if cmd.verb != strings.ToLower(cmd.verb) {
			t.Fatalf("verb %q is not lower case", cmd.verb)
		}
		if cmd.verb == "" && cmd.arg != "" {
			t.Fatalf("argument %q without a verb", cmd.arg)
		}
	})
}
