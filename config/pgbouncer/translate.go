package pgbouncer

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/proxy/auth"
)

// Untranslated is one PgBouncer setting the import did not carry over.
type Untranslated struct {
	// Key names the setting as the user wrote it: "[pgbouncer] stats_users",
	// "[databases] app: connect_query", `userlist "bob"`.
	Key string
	// Reason says why, and what to do instead when there is something.
	Reason string
}

func (u Untranslated) String() string { return u.Key + ": " + u.Reason }

// Result is a translated configuration.
type Result struct {
	// YAML is the pgone.yaml text.
	YAML []byte
	// Untranslated lists every setting not carried over, in a fixed order:
	// userlist lines, [pgbouncer] keys, [databases] and [users] entries
	// (each in file order), then what only the whole file shows (server
	// logins, listen_addr).
	Untranslated []Untranslated
}

// Import reads pgbouncer.ini at iniPath and the userlist at userlistPath,
// or, when userlistPath is empty, at the ini's auth_file (relative to the
// ini's directory, as PgBouncer resolves it from its working directory,
// which usually is that directory).
func Import(iniPath, userlistPath string) (*Result, error) {
	ini, err := os.ReadFile(iniPath)
	if err != nil {
		return nil, err
	}
	settings, err := parseINI(ini)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", iniPath, err)
	}
	if userlistPath == "" {
		for _, s := range settings {
			if s.section == "pgbouncer" && s.key == "auth_file" && s.value != "" {
				userlistPath = s.value
				if !filepath.IsAbs(userlistPath) {
					userlistPath = filepath.Join(filepath.Dir(iniPath), userlistPath)
				}
			}
		}
	}
	var userlist []byte
	if userlistPath != "" {
		if userlist, err = os.ReadFile(userlistPath); err != nil {
			return nil, err
		}
	}
	res, err := translate(settings, userlist)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", iniPath, err)
	}
	return res, nil
}

// translation is the state of one Translate call.
type translation struct {
	root, limits, tls, databases, users, pool omap
	listenAddr, listenPort                    string
	authMethod                                auth.Method
	adminUsers                                []string
	authUser                                  string
	userOrder                                 []string
	secrets                                   map[string]string
	skipped                                   []Untranslated
}

func (t *translation) skip(key, reason string) {
	t.skipped = append(t.skipped, Untranslated{Key: key, Reason: reason})
}

// Translate turns pgbouncer.ini (and userlist.txt, nil when there is none)
// into a pgone.yaml. It fails only on text it cannot read; settings it
// cannot carry over are in Result.Untranslated.
func Translate(ini, userlist []byte) (*Result, error) {
	settings, err := parseINI(ini)
	if err != nil {
		return nil, err
	}
	return translate(settings, userlist)
}

// translate is Translate on the ini's parsed settings, which Import has
// already read for auth_file.
func translate(settings []setting, userlist []byte) (*Result, error) {
	t := &translation{
		root: newMap(), limits: newMap(), tls: newMap(), databases: newMap(),
		users: newMap(), pool: newMap(), secrets: map[string]string{},
		listenPort: "6432",
	}
	if userlist != nil {
		list, err := parseUserlist(userlist)
		if err != nil {
			return nil, err
		}
		t.addUsers(list)
	}
	var global, rest []setting
	for _, s := range settings {
		if s.section == "pgbouncer" {
			global = append(global, s)
		} else {
			rest = append(rest, s)
		}
	}
	// [pgbouncer] first: admin_users and auth_type decide how users read.
	t.applyGlobal(global)
	for _, s := range rest {
		if err := t.applySection(s); err != nil {
			return nil, fmt.Errorf("line %d: %w", s.line, err)
		}
	}
	t.checkServerLogins()
	return &Result{YAML: t.render(), Untranslated: t.skipped}, nil
}

func (t *translation) addUsers(list []userSecret) {
	for _, u := range list {
		key := fmt.Sprintf("userlist %q", u.name)
		if _, err := auth.ParseSecret(u.name, u.secret); err != nil {
			t.skip(key, fmt.Sprintf("secret not usable: %v", err))
			continue
		}
		if _, dup := t.secrets[u.name]; !dup {
			t.userOrder = append(t.userOrder, u.name)
		}
		t.secrets[u.name] = u.secret
	}
}

func (t *translation) applyGlobal(settings []setting) {
	for _, s := range settings {
		key := "[pgbouncer] " + s.key
		if err := t.applyGlobalKey(s); err != nil {
			t.skip(key, err.Error())
		}
	}
	t.applyUsers()
}

// applyGlobalKey maps one [pgbouncer] key; an error is the reason it was
// not translated.
func (t *translation) applyGlobalKey(s setting) error {
	from := fmt.Sprintf("from %s = %s", s.key, s.value)
	switch s.key {
	case "listen_addr":
		t.listenAddr = s.value
		return nil
	case "listen_port":
		if _, err := strconv.Atoi(s.value); err != nil {
			return fmt.Errorf("not a port number: %q", s.value)
		}
		t.listenPort = s.value
		return nil
	case "auth_file":
		return nil // read by Import
	case "auth_type":
		return t.applyAuthType(s.value)
	case "pool_mode":
		return setPoolMode(t.pool, "mode", s.value, from)
	case "default_pool_size":
		return setInt(t.pool, "pool_size", s.value, from)
	case "min_pool_size":
		return setInt(t.pool, "min_pool_size", s.value, from)
	case "reserve_pool_size":
		return setInt(t.pool, "reserve_pool_size", s.value, from)
	case "max_client_conn":
		return setInt(t.limits, "max_client_conn", s.value, from)
	case "max_packet_size":
		return setInt(t.limits, "max_message_size", s.value, from)
	case "client_idle_timeout", "idle_transaction_timeout", "query_timeout":
		return setDuration(t.limits, s.key, s.value, from, 0)
	case "client_login_timeout":
		return setDuration(t.limits, s.key, s.value, from, defaults.Proxy.Limits.ClientLoginTimeout)
	case "server_idle_timeout":
		return setDuration(t.pool, s.key, s.value, from, defaults.Pool.ServerIdleTimeout)
	case "server_lifetime":
		return setDuration(t.pool, s.key, s.value, from, defaults.Pool.ServerLifetime)
	case "query_wait_timeout":
		return setDuration(t.pool, s.key, s.value, from, defaults.Pool.QueryWaitTimeout)
	case "server_connect_timeout":
		return setDuration(t.pool, s.key, s.value, from, defaults.Pool.ServerConnectTimeout)
	case "reserve_pool_timeout":
		return setDuration(t.pool, s.key, s.value, from, defaults.Pool.ReservePoolTimeout)
	case "server_tls_sslmode":
		switch s.value {
		case "disable", "allow", "prefer", "require", "verify-ca", "verify-full":
			t.pool.child("server_tls").set("sslmode", strNode(s.value), from)
			return nil
		}
		return fmt.Errorf("unknown sslmode %q", s.value)
	case "server_tls_ca_file":
		t.pool.child("server_tls").set("root_cert", strNode(s.value), from)
		return nil
	case "client_tls_sslmode":
		return t.applyClientTLSMode(s.value, from)
	case "client_tls_cert_file":
		t.tls.set("cert_file", strNode(s.value), from)
		return nil
	case "client_tls_key_file":
		t.tls.set("key_file", strNode(s.value), from)
		return nil
	case "admin_users":
		t.adminUsers = splitList(s.value)
		return nil
	case "auth_user":
		t.authUser = s.value
		t.authQuery().set("user", strNode(s.value), from)
		return nil
	case "auth_query":
		t.authQuery().set("query", strNode(s.value), from)
		return nil
	case "auth_dbname":
		t.authQuery().set("database", strNode(s.value), from)
		return nil
	}
	return errors.New(reasonFor(pgbouncerReasons, s.key))
}

func (t *translation) applyAuthType(v string) error {
	switch v {
	case "md5":
		t.authMethod = auth.MD5
	case "scram-sha-256":
		t.authMethod = auth.SCRAM
	case "plain":
		t.authMethod = auth.Password
	case "trust":
		t.authMethod = auth.Trust
	case "any":
		return fmt.Errorf("pgone has no \"any\" (every user name accepted without a password); auth_method stays scram-sha-256, use trust for listed users")
	case "hba":
		return fmt.Errorf("pgone has no pg_hba rules; auth_method stays scram-sha-256, users.NAME.auth_method sets one per user")
	default:
		return fmt.Errorf("pgone supports scram-sha-256, md5, password and trust; auth_method stays scram-sha-256")
	}
	t.root.set("auth_method", strNode(string(t.authMethod)), "from auth_type = "+v)
	return nil
}

func (t *translation) applyClientTLSMode(v, from string) error {
	switch v {
	case "disable":
		t.tls.set("mode", strNode("disable"), from)
	case "allow", "prefer":
		t.tls.set("mode", strNode("allow"), from)
	case "require":
		t.tls.set("mode", strNode("require"), from)
	case "verify-ca", "verify-full":
		t.tls.set("mode", strNode("require"), from)
		return fmt.Errorf("pgone does not verify client certificates; tls.mode is require (TLS without client certificates)")
	default:
		return fmt.Errorf("unknown sslmode %q", v)
	}
	return nil
}

// applyUsers writes users and admin_users once auth_type is known: with
// trust a user needs no password, with any other method an empty one
// cannot log in.
func (t *translation) applyUsers() {
	for _, name := range t.userOrder {
		secret := t.secrets[name]
		if secret == "" && t.authMethod != auth.Trust {
			t.skip(fmt.Sprintf("userlist %q", name), "empty secret: only trust logs in without a password")
			delete(t.secrets, name)
			continue
		}
		u := t.users.child(name)
		if secret != "" {
			u.set("password", strNode(secret), "")
		}
	}
	t.applyAuthUserPassword()
	var admins []string
	for _, name := range t.adminUsers {
		if _, ok := t.secrets[name]; !ok {
			t.skip("[pgbouncer] admin_users: "+name, "not in the userlist; pgone's admin_users must be users")
			continue
		}
		admins = append(admins, name)
	}
	if len(admins) > 0 {
		t.root.set("admin_users", seqNode(admins), "")
	}
}

// authQuery is the auth_query section, kept in the root until render.
func (t *translation) authQuery() omap { return t.root.child("auth_query") }

// applyAuthUserPassword takes auth_user's password from the userlist, as
// PgBouncer does; pgone needs it in plaintext to log in with it.
func (t *translation) applyAuthUserPassword() {
	if !t.root.has("auth_query") {
		return
	}
	if t.authUser == "" {
		t.skip("[pgbouncer] auth_query", "no auth_user: pgone runs auth_query only as auth_query.user")
		return
	}
	secret, ok := t.secrets[t.authUser]
	if ok && auth.IsPlaintext(secret) {
		t.authQuery().set("password", strNode(secret), "")
		return
	}
	t.skip("[pgbouncer] auth_user", fmt.Sprintf("translated to auth_query.user, but the userlist has no plaintext password for %s: set auth_query.password", t.authUser))
}

func (t *translation) applySection(s setting) error {
	switch s.section {
	case "databases":
		if s.key == "%include" {
			t.skip("%include "+s.value, "included files are not read; append them to the file to import")
			return nil
		}
		return t.applyDatabase(s.key, s.value)
	case "users":
		return t.applyUserEntry(s.key, s.value)
	}
	t.skip(fmt.Sprintf("[%s] %s", s.section, s.key), noEquivalent)
	return nil
}

// applyDatabase maps one [databases] entry. An entry without a usable host
// is left out whole: pgone needs one, PgBouncer's default is a Unix socket.
func (t *translation) applyDatabase(name, value string) error {
	params, err := parseConnString(value)
	if err != nil {
		return fmt.Errorf("database %s: %w", name, err)
	}
	prefix := "[databases] " + name
	if name == "pgone" {
		t.skip(prefix, "the name pgone is reserved for pgone's admin console; rename the database")
		return nil
	}
	db := newMap()
	var user, password string
	for _, p := range params {
		switch p.key {
		case "host":
			hosts := splitList(p.value)
			if len(hosts) == 0 {
				continue
			}
			db.set("host", strNode(hosts[0]), "")
			if len(hosts) > 1 {
				t.skip(prefix+": host", fmt.Sprintf("pgone connects to one host per database; kept %s, left out %s", hosts[0], strings.Join(hosts[1:], ", ")))
			}
		case "port":
			if err := setInt(db, "port", p.value, ""); err != nil {
				t.skip(prefix+": port", err.Error())
			}
		case "dbname":
			db.set("dbname", strNode(p.value), "")
		case "user":
			user = p.value
		case "password":
			password = p.value
		case "pool_size":
			if err := setInt(db, "pool_size", p.value, ""); err != nil {
				t.skip(prefix+": pool_size", err.Error())
			}
		case "pool_mode":
			if err := setPoolMode(db, "pool_mode", p.value, ""); err != nil {
				t.skip(prefix+": pool_mode", err.Error())
			}
		default:
			t.skip(prefix+": "+p.key, reasonFor(databaseReasons, p.key))
		}
	}
	if !db.has("host") {
		t.skip(prefix, "no host (PgBouncer's default is a Unix socket): pgone needs a host; the database is left out")
		return nil
	}
	switch {
	case user != "":
		db.set("user", strNode(user), "")
		if password != "" {
			db.set("password", strNode(password), "")
		} else if secret, ok := t.secrets[user]; ok && auth.IsPlaintext(secret) {
			// PgBouncer takes a forced user's password from the auth_file.
			db.set("password", strNode(secret), "")
		} else if ok {
			t.skip(prefix+": user", fmt.Sprintf("the userlist secret of %s is not plaintext and pgone logs in to servers only with a plaintext password: add password= to the entry", user))
		}
	case password != "":
		t.skip(prefix+": password", "a server password needs user= in pgone; left out")
	}
	t.databases.set(name, db.node, "")
	return nil
}

func (t *translation) applyUserEntry(name, value string) error {
	params, err := parseConnString(value)
	if err != nil {
		return fmt.Errorf("user %s: %w", name, err)
	}
	prefix := "[users] " + name
	for _, p := range params {
		if p.key != "pool_mode" {
			t.skip(prefix+": "+p.key, reasonFor(pgbouncerReasons, p.key))
			continue
		}
		if _, ok := t.secrets[name]; !ok {
			t.skip(prefix+": pool_mode", "user not in the userlist")
			continue
		}
		if err := setPoolMode(t.users.child(name), "pool_mode", p.value, ""); err != nil {
			t.skip(prefix+": pool_mode", err.Error())
		}
	}
	return nil
}

// checkServerLogins lists users whose secret pgone cannot log in to a
// server with: a database without user= logs in as the client, with its
// plaintext password or by SCRAM passthrough, never with an md5 hash.
func (t *translation) checkServerLogins() {
	var asClient []string
	for i := 0; i+1 < len(t.databases.node.Content); i += 2 {
		if !(omap{t.databases.node.Content[i+1]}).has("user") {
			asClient = append(asClient, t.databases.node.Content[i].Value)
		}
	}
	if len(asClient) == 0 {
		return
	}
	for _, name := range t.userOrder {
		secret, ok := t.secrets[name]
		if !ok || secret == "" || auth.IsPlaintext(secret) || auth.IsSCRAMVerifier(secret) {
			continue // plaintext is sent, a SCRAM verifier passed through
		}
		t.skip(fmt.Sprintf("userlist %q", name), fmt.Sprintf(
			"the secret is an md5 hash: the client logs in to pgone with it, but pgone cannot log in to a server as the client with an md5 hash (SCRAM verifiers work by passthrough), so the server will refuse %s on %s (no user=); give a plaintext password or set user= and password= on those databases",
			name, strings.Join(asClient, ", ")))
	}
}

func (t *translation) render() []byte {
	host := t.listenAddr
	switch {
	case host == "":
		host = "127.0.0.1"
		t.skip("[pgbouncer] listen_addr", "not set: PgBouncer then listens only on its Unix socket; pgone listens on TCP only, here on 127.0.0.1")
	case host == "*":
		host = "0.0.0.0"
	default:
		hosts := splitList(host)
		host = hosts[0]
		if host == "*" {
			host = "0.0.0.0"
		}
		if len(hosts) > 1 {
			t.skip("[pgbouncer] listen_addr", fmt.Sprintf("pgone listens on one address; kept %s, left out %s", host, strings.Join(hosts[1:], ", ")))
		}
	}
	doc := newMap()
	doc.set("listen", strNode(net.JoinHostPort(host, t.listenPort)), "")
	for _, sec := range []struct {
		key string
		m   omap
	}{{"auth_method", t.root}, {"limits", t.limits}, {"tls", t.tls}, {"databases", t.databases}, {"users", t.users}, {"admin_users", t.root}, {"auth_query", t.root}, {"pool", t.pool}} {
		if sec.m == t.root {
			for i := 0; i+1 < len(t.root.node.Content); i += 2 {
				if t.root.node.Content[i].Value == sec.key {
					doc.node.Content = append(doc.node.Content, t.root.node.Content[i], t.root.node.Content[i+1])
				}
			}
			continue
		}
		if !sec.m.empty() {
			doc.set(sec.key, sec.m.node, "")
		}
	}
	doc.node.HeadComment = "pgone configuration imported from PgBouncer by `pgone import-pgbouncer`.\n" +
		"Check it with `pgone check --config FILE`. The admin console is the database pgone\n" +
		"(PgBouncer's is pgbouncer): psql -U ADMIN pgone."
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	_ = enc.Encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{doc.node}})
	_ = enc.Close()
	return buf.Bytes()
}

func setInt(m omap, key, value, from string) error {
	n, err := strconv.Atoi(value)
	if err != nil || n < 0 {
		return fmt.Errorf("not a non-negative integer: %q", value)
	}
	m.set(key, intNode(n), from)
	return nil
}

func setPoolMode(m omap, key, value, from string) error {
	switch value {
	case "session", "transaction":
		m.set(key, strNode(value), from)
		return nil
	case "statement":
		return fmt.Errorf("pgone has no statement mode; transaction mode is the closest (multi-statement transactions then keep their server)")
	}
	return fmt.Errorf("unknown pool mode %q", value)
}

// defaults is pgone's configuration with nothing set, so the import quotes
// the defaults config applies rather than copies of them.
var defaults = func() config.Config {
	var c config.Config
	c.Defaults()
	return c
}()

// setDuration maps a PgBouncer time (seconds, fractions allowed, or with a
// unit). unsetDefault is pgone's default when 0 means "unset" to pgone
// rather than "never", as in PgBouncer; 0 when 0 means never in both.
func setDuration(m omap, key, value, from string, unsetDefault time.Duration) error {
	d, err := parseTime(value)
	if err != nil {
		return err
	}
	if d == 0 && unsetDefault != 0 {
		return fmt.Errorf("0 (never/disabled in PgBouncer) has no pgone equivalent: pgone reads 0 as unset and uses its default %s", formatDuration(unsetDefault))
	}
	m.set(key, durationNode(d), from)
	return nil
}

// parseTime reads PgBouncer's time values: a number of seconds ("0.5",
// "600") or a number with a unit (us, ms, s, min, h, d).
func parseTime(v string) (time.Duration, error) {
	units := []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"min", time.Minute}, {"s", time.Second}, {"h", time.Hour}, {"d", 24 * time.Hour}}
	unit, num := time.Second, strings.TrimSpace(v)
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			unit, num = u.unit, strings.TrimSpace(strings.TrimSuffix(num, u.suffix))
			break
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("not a time in seconds: %q", v)
	}
	return time.Duration(f * float64(unit)).Round(time.Millisecond), nil
}

func splitList(v string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		out = append(out, f)
	}
	return slices.Clip(out)
}
