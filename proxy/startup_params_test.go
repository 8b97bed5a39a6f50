package proxy_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
)

func TestStartupOptionsTakeEffect(t *testing.T) {
	t.Parallel()
	p := startProxy(t, nil)
	const opts = ` options='-c search_path=clstartup_schema,public -c statement_timeout=1s -c work_mem=3MB'`
	for _, tc := range []struct{ name, dsn string }{
		{"pgone", p.AppDSN() + opts},
		{"direct", directDSN() + opts},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			conn := connect(t, tc.dsn)
			for setting, want := range map[string]string{
				"search_path":       "clstartup_schema,public",
				"statement_timeout": "1s",
				"work_mem":          "3MB",
			} {
				if got := scanSingle[string](t, conn, "SHOW "+setting); got != want {
					t.Errorf("SHOW %s = %q, want %q", setting, got, want)
				}
			}
			start := time.Now()
			_, err := conn.Exec(testCtx(t), "SELECT pg_sleep(2)")
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "57014" || pe.Message != "canceling statement due to statement timeout" {
				t.Fatalf("pg_sleep(2) under statement_timeout=1s: %v", err)
			}
			if d := time.Since(start); d > 1900*time.Millisecond {
				t.Errorf("statement timeout hit after %s", d)
			}
			requireConnUsable(t, conn)
		})
	}
}

// pgconnStartupConfig is a pgconn config with startup parameters set as a
// client sends them (not through SET).
func pgconnStartupConfig(t *testing.T, dsn string, params map[string]string) *pgconn.Config {
	t.Helper()
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range params {
		cfg.RuntimeParams[k] = v
	}
	return cfg
}

// TestStartupParametersReported: parameters from the startup packet take
// effect and the client gets the same ParameterStatus values PostgreSQL
// sends for the same startup packet.
func TestStartupParametersReported(t *testing.T) {
	t.Parallel()
	p := startProxy(t, nil)
	params := map[string]string{
		"application_name":   "clstartup app",
		"TimeZone":           "America/New_York",
		"DateStyle":          "SQL, DMY",
		"client_encoding":    "LATIN1",
		"IntervalStyle":      "iso_8601",
		"extra_float_digits": "0",
	}
	type observed struct {
		status map[string]string
		shown  []string
		rows   []string
	}
	observe := func(dsn string) observed {
		pc, err := pgconn.ConnectConfig(testCtx(t), pgconnStartupConfig(t, dsn, params))
		if err != nil {
			t.Fatal(err)
		}
		var o observed
		res, err := pc.Exec(testCtx(t), `SHOW application_name; SHOW TimeZone; SHOW DateStyle; SHOW client_encoding; SHOW IntervalStyle;
			SELECT '2024-07-04 12:30:00+00'::timestamptz, '2024-03-05'::date, interval '1 day 2 hours', 0.1::float8, chr(233), current_setting('application_name')`).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res[:5] {
			o.shown = append(o.shown, string(r.Rows[0][0]))
		}
		for _, v := range res[5].Rows[0] {
			o.rows = append(o.rows, string(v))
		}
		hc, err := pc.Hijack()
		if err != nil {
			t.Fatal(err)
		}
		hc.Conn.Close()
		o.status = hc.ParameterStatuses
		return o
	}
	got, want := observe(p.AppDSN()), observe(directDSN())
	if !reflect.DeepEqual(got.status, want.status) {
		t.Errorf("ParameterStatus through pgone:\n%v\nPostgreSQL directly:\n%v", got.status, want.status)
	}
	if !reflect.DeepEqual(got.shown, want.shown) || !reflect.DeepEqual(got.rows, want.rows) {
		t.Errorf("through pgone: %q %q\nPostgreSQL directly: %q %q", got.shown, got.rows, want.shown, want.rows)
	}
	wantShown := []string{"clstartup app", "America/New_York", "SQL, DMY", "LATIN1", "iso_8601"}
	if !reflect.DeepEqual(got.shown, wantShown) {
		t.Errorf("SHOW gives %q, want %q", got.shown, wantShown)
	}
	for _, k := range []string{"application_name", "TimeZone", "DateStyle", "client_encoding", "IntervalStyle"} {
		if got.status[k] != params[k] {
			t.Errorf("ParameterStatus %s = %q, want %q", k, got.status[k], params[k])
		}
	}
	// The settings change the output: New York time, day-first SQL dates,
	// ISO 8601 intervals, LATIN1 bytes.
	wantRows := []string{"04/07/2024 08:30:00 EDT", "05/03/2024", "P1DT2H", "0.1", "\xe9", "clstartup app"}
	if !reflect.DeepEqual(got.rows, wantRows) {
		t.Errorf("values %q, want %q", got.rows, wantRows)
	}

	// pgx with the parameters in its DSN: pgconn reports them too.
	conn := connect(t, p.AppDSN()+" application_name=clstartup_pgx timezone=Asia/Tokyo")
	if tz := conn.PgConn().ParameterStatus("TimeZone"); tz != "Asia/Tokyo" {
		t.Errorf("ParameterStatus TimeZone = %q", tz)
	}
	if app := conn.PgConn().ParameterStatus("application_name"); app != "clstartup_pgx" {
		t.Errorf("ParameterStatus application_name = %q", app)
	}
	var tz, app string
	if err := conn.QueryRow(testCtx(t), "SELECT current_setting('TimeZone'), application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()").Scan(&tz, &app); err != nil || tz != "Asia/Tokyo" || app != "clstartup_pgx" {
		t.Errorf("server session has TimeZone %q, application_name %q (%v)", tz, app, err)
	}
}

// TestProtocol32IsNegotiatedDown: pgx asking for protocol 3.2 ends up with
// a working 3.0 session, as it does with PostgreSQL 15 itself.
func TestProtocol32IsNegotiatedDown(t *testing.T) {
	t.Parallel()
	p := startProxy(t, nil)
	for _, tc := range []struct{ name, dsn string }{
		{"pgone", p.AppDSN()},
		{"direct", directDSN()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := connect(t, tc.dsn+" max_protocol_version=3.2")
			if n := scanSingle[int](t, conn, "SELECT $1::int + 1", 41); n != 42 {
				t.Fatalf("got %d", n)
			}
			if len(conn.PgConn().SecretKey()) != 4 {
				t.Errorf("secret key of %d bytes, want the 3.0 size", len(conn.PgConn().SecretKey()))
			}
			requireConnUsable(t, conn)
		})
	}
}

// rawStartupReplies sends a raw startup packet and returns the replies up to
// and including the first authentication request or error, as JSON.
func rawStartupReplies(t *testing.T, addr string, packet []byte) []string {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write(packet); err != nil {
		t.Fatal(err)
	}
	fe := pgproto3.NewFrontend(nc, io.Discard)
	var out []string
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatalf("after %q: %v", out, err)
		}
		out = append(out, messageJSON(t, msg))
		switch msg.(type) {
		case *pgproto3.NegotiateProtocolVersion:
		case *pgproto3.ErrorResponse:
			// The server closes the connection after a startup error.
			if _, err := fe.Receive(); err == nil {
				t.Errorf("connection still open after %s", out[len(out)-1])
			}
			return out
		default:
			return out
		}
	}
}

func messageJSON(t *testing.T, msg pgproto3.BackendMessage) string {
	t.Helper()
	if er, ok := msg.(*pgproto3.ErrorResponse); ok {
		// pgone's own errors do not name PostgreSQL's source location.
		c := *er
		c.File, c.Line, c.Routine = "", 0, ""
		msg = &c
	}
	b, err := json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rawStartupPacket builds a StartupMessage with any version number, in the
// order given.
func rawStartupPacket(version uint32, params ...string) []byte {
	b := binary.BigEndian.AppendUint32(make([]byte, 4), version)
	for _, s := range params {
		b = append(append(b, s...), 0)
	}
	b = append(b, 0)
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	return b
}

func TestRawStartupProtocolVersions(t *testing.T) {
	t.Parallel()
	p := startProxy(t, nil)
	pgoneAddr := net.JoinHostPort(p.Host, strconv.Itoa(p.Port))
	directAddr := net.JoinHostPort(cluster.Primary.Host, strconv.Itoa(cluster.Primary.Port))
	for _, tc := range []struct {
		name    string
		version uint32
		want    string // the first reply's type
	}{
		{"3.2 with a protocol option", pgproto3.ProtocolVersion32, "NegotiateProtocolVersion"},
		{"3.1", 3<<16 | 1, "NegotiateProtocolVersion"},
		{"4.0", 4 << 16, "ErrorResponse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			params := []string{"user", appUser, "database", appDB}
			if tc.version == pgproto3.ProtocolVersion32 {
				params = append(params, "_pq_.test_option", "on")
			}
			packet := rawStartupPacket(tc.version, params...)
			got, want := rawStartupReplies(t, pgoneAddr, packet), rawStartupReplies(t, directAddr, packet)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("pgone replied\n%q\nPostgreSQL replied\n%q", got, want)
			}
			var first struct {
				Type                string
				NewestMinorProtocol uint32
				UnrecognizedOptions []string
				Code                string
			}
			if err := json.Unmarshal([]byte(got[0]), &first); err != nil {
				t.Fatal(err)
			}
			if first.Type != tc.want {
				t.Fatalf("first reply %s, want %s", got[0], tc.want)
			}
			switch tc.want {
			case "NegotiateProtocolVersion":
				wantOpts := []string{}
				if tc.version == pgproto3.ProtocolVersion32 {
					wantOpts = []string{"_pq_.test_option"}
				}
				// PostgreSQL puts the whole version number, 3.0, in the
				// field the protocol docs call the newest minor version.
				if first.NewestMinorProtocol != pgproto3.ProtocolVersion30 || !reflect.DeepEqual(first.UnrecognizedOptions, wantOpts) {
					t.Errorf("negotiation %s, want version 3.0 and options %q", got[0], wantOpts)
				}
				if len(got) != 2 || !bytes.Contains([]byte(got[1]), []byte("AuthenticationSASL")) {
					t.Errorf("after negotiation: %q, want the SCRAM request", got[1:])
				}
			case "ErrorResponse":
				if first.Code != "0A000" {
					t.Errorf("error %s, want SQLSTATE 0A000", got[0])
				}
			}
		})
	}

	// PostgreSQL answers a 2.0 client in the 2.0 format ('E', then the
	// text); pgone answers with a 3.0 ErrorResponse of the same text.
	t.Run("2.0", func(t *testing.T) {
		t.Parallel()
		packet := rawStartupPacket(2<<16, "user", appUser, "database", appDB)
		got := rawStartupReplies(t, pgoneAddr, packet)
		var er struct{ Type, Severity, Code, Message string }
		if err := json.Unmarshal([]byte(got[0]), &er); err != nil {
			t.Fatal(err)
		}
		if er.Type != "ErrorResponse" || er.Severity != "FATAL" || er.Code != "0A000" {
			t.Fatalf("pgone replied %q, want a FATAL 0A000 error", got)
		}
		nc, err := net.DialTimeout("tcp", directAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := nc.Write(packet); err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(nc)
		if want := "FATAL:  " + er.Message + "\n"; !bytes.Contains(raw, []byte(want)) {
			t.Fatalf("PostgreSQL replied %q; pgone's message %q differs", raw, er.Message)
		}
	})

	// A whole session after negotiation: trustuser needs no exchange.
	t.Run("3.2 session", func(t *testing.T) {
		t.Parallel()
		nc, err := net.DialTimeout("tcp", pgoneAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := nc.Write(rawStartupPacket(pgproto3.ProtocolVersion32, "user", "trustuser", "database", appDB, "_pq_.test_option", "x")); err != nil {
			t.Fatal(err)
		}
		rc := &wireConn{fe: pgproto3.NewFrontend(nc, nc)}
		var types []string
		for _, m := range rc.receiveUntilReady(t) {
			var v struct{ Type string }
			_ = json.Unmarshal([]byte(m), &v)
			if len(types) == 0 || types[len(types)-1] != v.Type {
				types = append(types, v.Type)
			}
		}
		want := []string{"NegotiateProtocolVersion", "AuthenticationOK", "ParameterStatus", "BackendKeyData", "ReadyForQuery"}
		if !reflect.DeepEqual(types, want) {
			t.Fatalf("startup replies %q, want %q", types, want)
		}
		replies := rc.roundTripVia(t, &pgproto3.Query{String: "SELECT 6 * 7"})
		if len(replies) != 4 || replies[1] != `{"Type":"DataRow","Values":[{"text":"42"}]}` {
			t.Fatalf("query replies %q", replies)
		}
	})
}

// receiveUntilReady reads replies up to ReadyForQuery, as JSON.
func (r *wireConn) receiveUntilReady(t *testing.T) []string {
	t.Helper()
	var out []string
	for {
		msg, err := r.fe.Receive()
		if err != nil {
			t.Fatalf("after %q: %v", out, err)
		}
		out = append(out, messageJSON(t, msg))
		switch msg.(type) {
		case *pgproto3.ReadyForQuery:
			return out
		case *pgproto3.ErrorResponse:
			t.Fatalf("error: %q", out)
		}
	}
}

func TestBackendPIDMatchesKeyData(t *testing.T) {
	t.Parallel()
	p := startProxy(t, func(c *config.Config) { c.Pool.Mode = pool.ModeSession })
	for range 3 {
		conn := p.Connect(t)
		if pid := scanSingle[uint32](t, conn, "SELECT pg_backend_pid()"); pid != conn.PgConn().PID() {
			t.Fatalf("pg_backend_pid() = %d, BackendKeyData pid = %d", pid, conn.PgConn().PID())
		}
	}
}

// TestTerminatedBackend: pg_terminate_backend on a client's server session
// reaches that client as PostgreSQL's own error, and nobody else.
func TestTerminatedBackend(t *testing.T) {
	t.Parallel()
	p := startProxy(t, func(c *config.Config) { c.Pool.Mode = pool.ModeSession })
	admin := connect(t, directDSN())
	terminate := func(victim *pgx.Conn) error {
		t.Helper()
		pid := victim.PgConn().PID()
		if !scanSingle[bool](t, admin, "SELECT pg_terminate_backend($1)", int(pid)) {
			t.Fatalf("pg_terminate_backend(%d) returned false", pid)
		}
		// Wait until the backend is gone, so its error has been sent.
		deadline := time.Now().Add(5 * time.Second)
		for scanSingle[int](t, admin, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", int(pid)) > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("backend %d still there", pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
		waitBackendExited(t, pid)
		_, err := victim.Exec(testCtx(t), "SELECT 1")
		return err
	}
	bystander := p.Connect(t)
	victim := p.Connect(t)
	got := terminate(victim)
	want := terminate(connect(t, directDSN()))

	var gotPE, wantPE *pgconn.PgError
	if !errors.As(want, &wantPE) {
		t.Fatalf("direct: %v", want)
	}
	if !errors.As(got, &gotPE) {
		t.Fatalf("through pgone: %v; PostgreSQL directly gives %v", got, want)
	}
	if !reflect.DeepEqual(gotPE, wantPE) {
		t.Errorf("through pgone %#v\nPostgreSQL directly %#v", gotPE, wantPE)
	}
	if gotPE.Code != "57P01" || gotPE.Message != "terminating connection due to administrator command" {
		t.Errorf("error %v, want 57P01", gotPE)
	}
	if !victim.IsClosed() {
		t.Error("victim connection still open")
	}
	requireConnUsable(t, bystander)
	after := p.Connect(t)
	requireConnUsable(t, after)
	if after.PgConn().PID() == victim.PgConn().PID() {
		t.Errorf("new client got the terminated server pid %d", after.PgConn().PID())
	}
	// The bystander's own server was not touched.
	if pid := scanSingle[uint32](t, bystander, "SELECT pg_backend_pid()"); pid != bystander.PgConn().PID() {
		t.Errorf("bystander moved from pid %d to %d", bystander.PgConn().PID(), pid)
	}
}
