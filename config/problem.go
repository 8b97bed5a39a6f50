package config

import (
	"fmt"
	"sort"
	"strings"
)

// Error lists every problem found in a configuration, so one run of
// `pgone check` shows them all.
type Error struct {
	Problems []Problem
}

// Error returns the problems one per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Problem is one thing wrong with a configuration.
type Problem struct {
	// Key is the full dotted path, such as "pool.pool_size",
	// "databases.app.replicas[0].port" or "users.bob.password"; empty when
	// the problem concerns the file as a whole.
	Key string
	// Message says what is wrong; it never contains a password.
	Message string
	// Line is the 1-based line in the file, 0 when unknown (a defaulted key,
	// or a Config that did not come from a file).
	Line int
}

// String returns "key: message", followed by " (line N)" when the line is known.
func (p Problem) String() string {
	s := p.Message
	if p.Key != "" {
		s = p.Key + ": " + s
	}
	if p.Line > 0 {
		s += fmt.Sprintf(" (line %d)", p.Line)
	}
	return s
}

// fromErrors turns a part's Validate errors, whose texts are "key: message"
// with key relative to the section, into Problems with full keys.
func fromErrors(section string, errs []error) []Problem {
	ps := make([]Problem, 0, len(errs))
	for _, err := range errs {
		key, msg, ok := strings.Cut(err.Error(), ": ")
		if !ok {
			key, msg = "", err.Error()
		}
		ps = append(ps, Problem{Key: joinKey(section, key), Message: msg})
	}
	return ps
}

// sortedByKey orders problems by key so a part that reports them in map
// order still gives stable output.
func sortedByKey(ps []Problem) []Problem {
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Key < ps[j].Key })
	return ps
}

func joinKey(parent, key string) string {
	switch {
	case parent == "":
		return key
	case key == "":
		return parent
	}
	return parent + "." + key
}
