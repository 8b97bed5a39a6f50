package proxy

import (
	"crypto/rand"
	"encoding/binary"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/internal/wire"
	"github.com/pgone/pgone/pgerr"
)

// The admin console: the database AdminDatabase on the client port, as
// PgBouncer's "pgbouncer" database. Any configured user may log in (normal
// authentication); only AdminUsers may run commands, others get 42501 for
// each. It speaks the simple query protocol; every answer is a text result
// set in PgBouncer's column layout, so its dashboards and exporters work.

// adminState is what cmd gives the console, and the SHOW STATS window.
type adminState struct {
	mu         sync.Mutex
	version    string
	configRows func() []ConfigRow
	reloader   func() error
	window     statsWindow
	shows      map[string]ShowFunc // SetShow (admin_ext.go)
}

// SetVersion sets the version SHOW VERSION reports.
func (s *Server) SetVersion(v string) {
	s.admin.mu.Lock()
	s.admin.version = v
	s.admin.mu.Unlock()
}

// SetConfigRows sets the source of SHOW CONFIG: rows of the whole running
// configuration with passwords masked. Without it SHOW CONFIG shows the
// proxy and pool sections it was started with (passwords masked).
func (s *Server) SetConfigRows(rows func() []ConfigRow) {
	s.admin.mu.Lock()
	s.admin.configRows = rows
	s.admin.mu.Unlock()
}

// SetReloader sets what RELOAD runs: reread the configuration and apply it
// (the SIGHUP path). Without it RELOAD fails.
func (s *Server) SetReloader(reload func() error) {
	s.admin.mu.Lock()
	s.admin.reloader = reload
	s.admin.mu.Unlock()
}

// Type OIDs of console columns, as PgBouncer uses them.
const (
	oidText = 25
	oidInt4 = 23
	oidInt8 = 20
)

type column struct {
	name string
	oid  uint32
}

// resultSet is one console answer.
type resultSet struct {
	cols []column
	rows [][]string
}

func textCols(names ...string) []column {
	cols := make([]column, len(names))
	for i, n := range names {
		cols[i] = column{n, oidText}
	}
	return cols
}

// runConsole is the session after authentication when the client asked for
// the admin database.
func (ss *session) runConsole(snap *snapshot, req *startupRequest) {
	ss.startupParams = req.params
	admin := slices.Contains(snap.cfg.AdminUsers, ss.user)
	ss.stats.labels.Store(&errorLabels{database: AdminDatabase, user: ss.user})
	var secret [4]byte
	_, _ = rand.Read(secret[:])
	ss.srv.registerCancelKey(ss, 0, binary.BigEndian.Uint32(secret[:]))

	ss.mu.Lock()
	ss.started = true
	draining := ss.draining
	ss.mu.Unlock()
	if draining {
		ss.terminate(shutdownError())
		return
	}
	msgs := []pgproto3.BackendMessage{&pgproto3.AuthenticationOk{}}
	for _, p := range [][2]string{
		{"application_name", paramValue(ss.startupParams, "application_name")},
		{"client_encoding", "UTF8"},
		{"DateStyle", "ISO"},
		{"integer_datetimes", "on"},
		{"IntervalStyle", "postgres"},
		{"server_encoding", "UTF8"},
		{"server_version", ss.srv.versionString()},
		{"standard_conforming_strings", "on"},
		{"TimeZone", "UTC"},
	} {
		msgs = append(msgs, &pgproto3.ParameterStatus{Name: p[0], Value: p[1]})
	}
	msgs = append(msgs,
		&pgproto3.BackendKeyData{ProcessID: ss.cancelKey.pid, SecretKey: secret[:]},
		&pgproto3.ReadyForQuery{TxStatus: pgmsg.TxIdle})
	if err := ss.send(msgs...); err != nil {
		return
	}
	ss.log.Info("admin console session", "user", ss.user, "admin", admin)

	skipping := false // an extended-protocol message failed: ignore up to Sync
	for {
		typ, frame, err := ss.cr.Next()
		if err != nil {
			ss.clientGone(err)
			return
		}
		switch typ {
		case pgmsg.Terminate:
			return
		case pgmsg.Query:
			if skipping {
				continue
			}
			text, _, _ := cstringAt(wire.Body(frame), 0)
			if !ss.consoleBusy(true) {
				return
			}
			err := ss.consoleQuery(admin, text)
			if !ss.consoleBusy(false) || err != nil {
				return
			}
		case pgmsg.Sync:
			skipping = false
			if ss.send(&pgproto3.ReadyForQuery{TxStatus: pgmsg.TxIdle}) != nil {
				return
			}
		case pgmsg.Parse, pgmsg.Bind, pgmsg.Describe, pgmsg.Execute, pgmsg.Close, pgmsg.Flush, pgmsg.FunctionCall:
			if skipping || typ == pgmsg.Flush {
				continue
			}
			e := pgerr.New(pgerr.FeatureNotSupported, "the pgone admin console supports only the simple query protocol")
			msgs := []pgproto3.BackendMessage{ss.consoleError(e)}
			if typ == pgmsg.FunctionCall {
				msgs = append(msgs, &pgproto3.ReadyForQuery{TxStatus: pgmsg.TxIdle})
			} else {
				skipping = true
			}
			if ss.send(msgs...) != nil {
				return
			}
		case pgmsg.CopyData, pgmsg.CopyDone, pgmsg.CopyFail:
			// COPY messages outside COPY are ignored, as PostgreSQL does.
		default:
			ss.log.Info("invalid frontend message type", "type", typ, "sqlstate", pgerr.ProtocolViolation)
			ss.terminate(pgerr.Fatal(pgerr.ProtocolViolation, "invalid frontend message type %d", typ))
			return
		}
	}
}

// consoleBusy marks a command running (so shutdown waits for it) or done
// (closing the session if shutdown asked meanwhile). It reports whether the
// session goes on.
func (ss *session) consoleBusy(busy bool) bool {
	ss.mu.Lock()
	if busy {
		ss.pending = 1
	} else {
		ss.pending = 0
	}
	closeNow := ss.draining && !busy
	ss.mu.Unlock()
	if closeNow {
		ss.terminate(shutdownError())
		return false
	}
	return true
}

// consoleError turns err into the ErrorResponse sent, counting it.
func (ss *session) consoleError(err error) *pgproto3.ErrorResponse {
	ss.countError(err)
	return pgerr.ToResponse(err)
}

// consoleQuery answers one Query message: a result or an error, then
// ReadyForQuery. It returns an error only when the client is gone.
func (ss *session) consoleQuery(admin bool, text string) error {
	cmd, err := parseConsoleCommand(text)
	if err == nil && cmd.verb == "" {
		return ss.send(&pgproto3.EmptyQueryResponse{}, &pgproto3.ReadyForQuery{TxStatus: pgmsg.TxIdle})
	}
	if err == nil && !admin {
		err = pgerr.New(pgerr.InsufficientPrivilege, "permission denied: user %q is not in admin_users", ss.user)
	}
	var msgs []pgproto3.BackendMessage
	if err == nil {
		msgs, err = ss.runConsoleCommand(cmd)
	}
	if err != nil {
		ss.log.Info("admin console command failed", "user", ss.user, "command", cmd.verb, "sqlstate", pgerr.CodeOf(err), "err", err)
		msgs = []pgproto3.BackendMessage{ss.consoleError(err)}
	} else if cmd.verb != "show" {
		ss.log.Info("admin console command", "user", ss.user, "command", strings.TrimSpace(cmd.verb+" "+cmd.arg+" "+cmd.arg2))
	}
	return ss.send(append(msgs, &pgproto3.ReadyForQuery{TxStatus: pgmsg.TxIdle})...)
}

// consoleCommand is a parsed console command: a verb and at most one
// argument (the SHOW subject or a database name).
type consoleCommand struct {
	verb string // lower case
	arg  string // SHOW subjects lower case; database names as written
	// more is SHOW's optional third word, for extensions (admin_ext.go).
	more string
	arg2 string // PRIMARY's host:port
}

// parseConsoleCommand reads "VERB [ARG]" with an optional trailing
// semicolon; words are case-insensitive, a database name may be quoted.
func parseConsoleCommand(text string) (consoleCommand, error) {
	s := strings.TrimSpace(text)
	for strings.HasSuffix(s, ";") {
		s = strings.TrimSpace(strings.TrimSuffix(s, ";"))
	}
	if s == "" {
		return consoleCommand{}, nil
	}
	if strings.Contains(s, ";") {
		return consoleCommand{}, pgerr.New(pgerr.SyntaxError, "the pgone admin console runs one command per query")
	}
	words := strings.Fields(s)
	if len(words) >= 2 && strings.EqualFold(words[0], "cache") && strings.EqualFold(words[1], "flush") {
		words = append([]string{"cache flush"}, words[2:]...) // CACHE FLUSH [db]: admin_cache.go
	}
	if len(words) == 3 && strings.EqualFold(words[0], "primary") {
		// PRIMARY <db> <host:port>: failover.go
		return consoleCommand{verb: "primary", arg: unquoteName(words[1]), arg2: words[2]}, nil
	}
	if len(words) > 3 || len(words) == 3 && !strings.EqualFold(words[0], "show") {
		return consoleCommand{}, syntaxError(s)
	}
	cmd := consoleCommand{verb: strings.ToLower(words[0])}
	if len(words) == 3 {
		cmd.more = words[2]
	}
	if len(words) >= 2 {
		cmd.arg = words[1]
		if cmd.verb == "show" {
			cmd.arg = strings.ToLower(cmd.arg)
		} else {
			cmd.arg = unquoteName(cmd.arg)
		}
	}
	return cmd, nil
}

// unquoteName reads a database name as written, maybe double-quoted.
func unquoteName(s string) string {
	if n := len(s); n >= 2 && s[0] == '"' && s[n-1] == '"' {
		return strings.ReplaceAll(s[1:n-1], `""`, `"`)
	}
	return s
}

func syntaxError(text string) error {
	return pgerr.New(pgerr.SyntaxError, "unknown admin console command: %q", text).WithHint("SHOW HELP lists the commands.")
}

// runConsoleCommand runs an admin's command and returns its answer, without
// the ReadyForQuery.
func (ss *session) runConsoleCommand(cmd consoleCommand) ([]pgproto3.BackendMessage, error) {
	s := ss.srv
	done := func(tag string) []pgproto3.BackendMessage {
		return []pgproto3.BackendMessage{&pgproto3.CommandComplete{CommandTag: []byte(tag)}}
	}
	switch cmd.verb {
	case "show":
		if cmd.arg == "help" {
			return []pgproto3.BackendMessage{
				&pgproto3.NoticeResponse{Severity: "NOTICE", SeverityUnlocalized: "NOTICE", Code: "00000", Message: consoleHelp},
				&pgproto3.CommandComplete{CommandTag: []byte("SHOW")},
			}, nil
		}
		show, ok := showCommands[cmd.arg]
		if ok && cmd.more == "" {
			return encodeResult(show(s), "SHOW"), nil
		}
		if rs, ok, err := s.showExtension(cmd.arg, cmd.more); ok { // admin_ext.go
			if err != nil {
				return nil, err
			}
			return encodeResult(rs, "SHOW"), nil
		}
		return nil, syntaxError(strings.TrimSpace("SHOW " + cmd.arg + " " + cmd.more))
	case "reload":
		if cmd.arg != "" {
			return nil, syntaxError("RELOAD " + cmd.arg)
		}
		s.admin.mu.Lock()
		reload := s.admin.reloader
		s.admin.mu.Unlock()
		if reload == nil {
			return nil, pgerr.New(pgerr.ObjectNotInPrerequisiteState, "RELOAD is not available: pgone was not started from a config file")
		}
		if err := reload(); err != nil {
			return nil, pgerr.New(pgerr.ConfigFileError, "reload rejected; the running config stays: %v", err)
		}
		return done("RELOAD"), nil
	case "pause":
		if err := s.checkDatabase(cmd.arg, false); err != nil {
			return nil, err
		}
		if err := s.pools.Pause(s.ctx, cmd.arg); err != nil {
			return nil, pgerr.New(pgerr.ObjectNotInPrerequisiteState, "%v", err)
		}
		return done("PAUSE"), nil
	case "resume":
		if err := s.checkDatabase(cmd.arg, false); err != nil {
			return nil, err
		}
		if err := s.pools.Resume(cmd.arg); err != nil {
			return nil, pgerr.New(pgerr.ObjectNotInPrerequisiteState, "%v", err)
		}
		return done("RESUME"), nil
	case "cache flush":
		if err := s.cacheFlush(cmd.arg); err != nil { // admin_cache.go
			return nil, err
		}
		return done("CACHE FLUSH"), nil
	case "primary":
		if err := s.pickPrimary(cmd.arg, cmd.arg2); err != nil { // failover.go
			return nil, err
		}
		return done("PRIMARY"), nil
	case "kill":
		if err := s.checkDatabase(cmd.arg, true); err != nil {
			return nil, err
		}
		n := s.kill(cmd.arg)
		ss.log.Info("KILL: closed the database's connections; it stays paused until RESUME", "database", cmd.arg, "clients", n)
		return done("KILL"), nil
	}
	return nil, syntaxError(strings.TrimSpace(cmd.verb + " " + cmd.arg))
}

// checkDatabase checks the argument of PAUSE, RESUME and KILL: a configured
// database or one with a pool; empty (all) unless required.
func (s *Server) checkDatabase(db string, required bool) error {
	if db == "" {
		if required {
			return pgerr.New(pgerr.SyntaxError, "a database name is required")
		}
		return nil
	}
	if db == AdminDatabase {
		return pgerr.New(pgerr.ObjectNotInPrerequisiteState, "the admin console database cannot be paused or killed")
	}
	if _, ok := s.snap.Load().cfg.Databases[db]; ok && db != WildcardDatabase {
		return nil
	}
	for _, st := range s.pools.Status() {
		if st.Key.Database == db {
			return nil
		}
	}
	return pgerr.New(pgerr.InvalidCatalogName, "database %q does not exist", db)
}

// kill ends every client of db with 57P01 and closes its server connections;
// the database stays paused until RESUME, as in PgBouncer. It returns the
// number of clients ended.
func (s *Server) kill(db string) int {
	s.pools.Kill(db)
	n := 0
	for _, c := range s.clientList() {
		if !c.known || c.database != db || c.ss.database == AdminDatabase {
			continue
		}
		n++
		ss := c.ss
		ss.terminate(pgerr.Fatal(pgerr.AdminShutdown, "terminating connection due to administrator command: KILL"))
		ss.mu.Lock()
		server := ss.server
		ss.mu.Unlock()
		if server != nil {
			// Wake the pumps; the server is closed rather than reused.
			_ = server.NetConn().SetDeadline(time.Now())
		}
	}
	return n
}

const consoleHelp = `Console usage
	SHOW HELP|POOLS|CLIENTS|SERVERS|STATS|DATABASES|CONFIG|VERSION|REPLICAS|CACHE
	SHOW QUERIES [total|calls|p99|wait|errors|rows]   (with the tuner)
	SHOW TUNER                                       (with the tuner)
	RELOAD
	CACHE FLUSH [<db>]
	PAUSE [<db>]
	RESUME [<db>]
	KILL <db>
	PRIMARY <db> <host:port>`

// encodeResult is a result set's RowDescription, DataRows and CommandComplete.
func encodeResult(rs resultSet, tag string) []pgproto3.BackendMessage {
	fields := make([]pgproto3.FieldDescription, len(rs.cols))
	for i, c := range rs.cols {
		size := int16(-1)
		switch c.oid {
		case oidInt4:
			size = 4
		case oidInt8:
			size = 8
		}
		fields[i] = pgproto3.FieldDescription{Name: []byte(c.name), DataTypeOID: c.oid, DataTypeSize: size, TypeModifier: -1}
	}
	msgs := make([]pgproto3.BackendMessage, 0, len(rs.rows)+2)
	msgs = append(msgs, &pgproto3.RowDescription{Fields: fields})
	for _, row := range rs.rows {
		values := make([][]byte, len(row))
		for i, v := range row {
			values[i] = []byte(v)
		}
		msgs = append(msgs, &pgproto3.DataRow{Values: values})
	}
	return append(msgs, &pgproto3.CommandComplete{CommandTag: []byte(tag)})
}

func (s *Server) versionString() string {
	s.admin.mu.Lock()
	defer s.admin.mu.Unlock()
	if s.admin.version == "" {
		return "pgone"
	}
	return "pgone " + s.admin.version
}

func paramValue(params []param, name string) string {
	for _, p := range params {
		if strings.EqualFold(p.name, name) {
			return p.value
		}
	}
	return ""
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
