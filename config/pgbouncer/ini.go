package pgbouncer

import (
	"fmt"
	"strings"
)

// setting is one key = value line of pgbouncer.ini.
type setting struct {
	section string
	key     string
	value   string
	line    int
}

// parseINI reads pgbouncer.ini into its settings in file order. Section and
// [pgbouncer] key names are case-insensitive in PgBouncer; database and user
// names are not, so only the section and [pgbouncer]/[peers] keys are lowered.
func parseINI(data []byte) ([]setting, error) {
	var out []setting
	section := ""
	for i, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimSpace(strings.TrimSuffix(raw, "\r"))
		if line == "" || line[0] == ';' || line[0] == '#' {
			continue
		}
		if strings.HasPrefix(line, "%include") {
			out = append(out, setting{section: section, key: "%include", value: strings.TrimSpace(line[len("%include"):]), line: i + 1})
			continue
		}
		if line[0] == '[' {
			end := strings.IndexByte(line, ']')
			if end < 0 {
				return nil, fmt.Errorf("line %d: section header without ]", i+1)
			}
			section = strings.ToLower(strings.TrimSpace(line[1:end]))
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: expected key = value", i+1)
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if section != "databases" && section != "users" {
			key = strings.ToLower(key)
		}
		if section == "" {
			return nil, fmt.Errorf("line %d: %s is outside any section", i+1, key)
		}
		out = append(out, setting{section: section, key: key, value: value, line: i + 1})
	}
	return out, nil
}

// param is one key=value pair of a [databases] or [users] entry.
type param struct{ key, value string }

// parseConnString reads "host=h port=5432 password='a b'": values may be
// single-quoted, with a backslash-escaped or doubled quote for a quote inside.
func parseConnString(s string) ([]param, error) {
	var out []param
	i := 0
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i >= len(s) {
			return out, nil
		}
		eq := strings.IndexByte(s[i:], '=')
		if eq < 0 {
			return nil, fmt.Errorf("expected key=value at %q", s[i:])
		}
		key := strings.ToLower(strings.TrimSpace(s[i : i+eq]))
		i += eq + 1
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		var val strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			closed := false
			for i < len(s) {
				c := s[i]
				switch {
				case c == '\\' && i+1 < len(s):
					val.WriteByte(s[i+1])
					i += 2
					continue
				case c == '\'' && i+1 < len(s) && s[i+1] == '\'':
					val.WriteByte('\'')
					i += 2
					continue
				case c == '\'':
					closed = true
				}
				if closed {
					i++
					break
				}
				val.WriteByte(c)
				i++
			}
			if !closed {
				return nil, fmt.Errorf("unterminated quote in value of %s", key)
			}
		} else {
			for i < len(s) && s[i] != ' ' && s[i] != '\t' {
				val.WriteByte(s[i])
				i++
			}
		}
		out = append(out, param{key: key, value: val.String()})
	}
}

// userSecret is one line of userlist.txt.
type userSecret struct{ name, secret string }

// parseUserlist reads userlist.txt: `"name" "secret"` per line, "" for a
// quote inside a field. Lines that do not start with a quote are comments
// to PgBouncer and are skipped here too.
func parseUserlist(data []byte) ([]userSecret, error) {
	var out []userSecret
	for i, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimSpace(strings.TrimSuffix(raw, "\r"))
		if !strings.HasPrefix(line, `"`) {
			continue
		}
		name, rest, err := quotedField(line)
		if err != nil {
			return nil, fmt.Errorf("userlist line %d: %v", i+1, err)
		}
		rest = strings.TrimSpace(rest)
		secret := ""
		if rest != "" {
			if secret, _, err = quotedField(rest); err != nil {
				return nil, fmt.Errorf("userlist line %d: %v", i+1, err)
			}
		}
		out = append(out, userSecret{name: name, secret: secret})
	}
	return out, nil
}

// quotedField reads one "..." field at the start of s and returns it and
// what follows.
func quotedField(s string) (field, rest string, err error) {
	if !strings.HasPrefix(s, `"`) {
		return "", "", fmt.Errorf("expected a quoted field")
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != '"' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '"' {
			b.WriteByte('"')
			i++
			continue
		}
		return b.String(), s[i+1:], nil
	}
	return "", "", fmt.Errorf("unterminated quoted field")
}
