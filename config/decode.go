package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decoded is what decoding learned about a file: its problems, where each key
// sits, and which keys failed to decode.
type decoded struct {
	problems []Problem
	index    *nodeIndex
	failed   []nodeEntry // entries whose values did not decode
}

// covers reports whether a validation problem at key is a consequence of a
// value that failed to decode: key is that value's key, lies under it, or is
// its direct container (a map left without the entry, a section whose field
// stayed unset).
func (d *decoded) covers(key string) bool {
	for _, f := range d.failed {
		if key == f.path || f.path == "" || strings.HasPrefix(key, f.path+".") || strings.HasPrefix(key, f.path+"[") {
			return true
		}
		if key == f.parent && f.parent != "" {
			return true
		}
	}
	return false
}

// decode fills c from data strictly. fatal means the file could not be
// decoded at all (syntax error, empty, several documents), so defaults and
// validation would only add noise.
func decode(data []byte, c *Config) (d *decoded, fatal bool) {
	d = new(decoded)
	fail := func(p Problem) (*decoded, bool) {
		d.problems = append(d.problems, p)
		return d, true
	}

	// First as a node tree: it checks the document structure and maps each
	// key path to its line for the messages below.
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return fail(Problem{Message: "the file is empty"})
		}
		return fail(syntaxProblem(err))
	}
	if len(doc.Content) == 0 || doc.Content[0].ShortTag() == "!!null" {
		return fail(Problem{Message: "the file is empty", Line: doc.Line})
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return fail(syntaxProblem(err))
	default:
		return fail(Problem{Message: "the file holds more than one YAML document; keep one", Line: next.Line})
	}
	d.index = indexNodes(doc.Content[0])

	// Then strictly into c: yaml.v3 decodes what it can and reports every
	// unknown key and type mismatch with its line.
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	err := strict.Decode(c)
	var te *yaml.TypeError
	switch {
	case err == nil:
	case errors.As(err, &te):
		for _, msg := range te.Errors {
			p, failed := d.index.explain(msg)
			d.problems = append(d.problems, p)
			if failed != nil {
				d.failed = append(d.failed, *failed)
			}
		}
	default:
		return fail(syntaxProblem(err))
	}
	return d, false
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// syntaxProblem turns a yaml.v3 parse error such as
// "yaml: line 3: mapping values are not allowed in this context" into a Problem.
func syntaxProblem(err error) Problem {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{Message: "invalid YAML: " + m[2], Line: line}
	}
	return Problem{Message: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

// The messages yaml.v3 puts in a TypeError.
var (
	notFoundMsg   = regexp.MustCompile(`^field (.+) not found in type \S+$`)
	alreadySetMsg = regexp.MustCompile(`^field (.+) already set in type \S+$`)
	duplicateMsg  = regexp.MustCompile(`^mapping key (".*") already defined at line (\d+)$`)
	mismatchMsg   = regexp.MustCompile("^cannot unmarshal (\\S+)(?: `(.*)`)? into (\\S+)$")
)

// explain turns one yaml.v3 TypeError line into a Problem keyed by the full
// path of the key or value it is about. failed is the entry whose value
// yaml.v3 left undecoded, if any. A message it cannot place keeps yaml.v3's
// text and its line.
func (x *nodeIndex) explain(msg string) (p Problem, failed *nodeEntry) {
	m := yamlLine.FindStringSubmatch(msg)
	if m == nil {
		return Problem{Message: msg}, nil
	}
	line, _ := strconv.Atoi(m[1])
	text := m[2]
	p = Problem{Message: text, Line: line}

	if s := notFoundMsg.FindStringSubmatch(text); s != nil {
		if e := x.findKey(line, s[1]); e != nil {
			p.Key, p.Message = e.path, "unknown key"
		}
		return p, nil
	}
	if s := alreadySetMsg.FindStringSubmatch(text); s != nil {
		if e := x.findKey(line, s[1]); e != nil {
			p.Key, p.Message = e.path, "is set more than once"
		}
		return p, nil
	}
	if s := duplicateMsg.FindStringSubmatch(text); s != nil {
		// yaml.v3 skips the whole mapping that holds a duplicate key.
		name, err := strconv.Unquote(s[1])
		if err != nil {
			return p, nil
		}
		e := x.findKey(line, name)
		if e == nil {
			return p, nil
		}
		p.Key, p.Message = e.path, "is set more than once, first at line "+s[2]
		return p, x.entry(e.parent)
	}
	if s := mismatchMsg.FindStringSubmatch(text); s != nil {
		tag, value, typeName := s[1], s[2], s[3]
		e := x.findValue(line, tag, value)
		if e == nil {
			return p, nil
		}
		p.Key = e.path
		p.Message = fmt.Sprintf("must be %s, got %s", describeType(typeName), describeNode(e.value))
		if e.path == "" {
			p.Message = "the document " + p.Message
		}
		return p, e
	}
	return p, nil
}

// describeType names what a Go type expects in YAML words.
func describeType(name string) string {
	t, ok := schemaTypes[name]
	if !ok {
		return "a " + name
	}
	if t == reflect.TypeOf(time.Duration(0)) {
		return `a duration with a unit, such as "30s" or "5m"`
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Struct, reflect.Map:
		return "a mapping"
	case reflect.Slice, reflect.Array:
		return "a list"
	}
	return "a " + name
}

// describeNode names what the file holds. A scalar in a field that failed
// to decode is never a string field, so quoting it cannot leak a password.
func describeNode(n *yaml.Node) string {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	if n.ShortTag() == "!!str" {
		return strconv.Quote(n.Value)
	}
	return n.Value
}

// schemaTypes maps the type names yaml.v3 prints to the types reachable from
// Config, so a message can say "an integer" rather than "int".
var schemaTypes = func() map[string]reflect.Type {
	m := make(map[string]reflect.Type)
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		if _, seen := m[t.String()]; seen {
			return
		}
		m[t.String()] = t
		switch t.Kind() {
		case reflect.Struct:
			for i := 0; i < t.NumField(); i++ {
				if t.Field(i).IsExported() {
					walk(t.Field(i).Type)
				}
			}
		case reflect.Map, reflect.Slice, reflect.Array, reflect.Pointer:
			walk(t.Elem())
		}
	}
	walk(reflect.TypeOf(Config{}))
	return m
}()

// nodeIndex lists every key and sequence item of a document with its path.
type nodeIndex struct {
	entries []nodeEntry
	lines   map[string]int // path -> line of its first occurrence
}

type nodeEntry struct {
	path   string
	parent string     // path of the enclosing mapping or sequence
	key    *yaml.Node // nil for sequence items and the document itself
	value  *yaml.Node
}

func indexNodes(root *yaml.Node) *nodeIndex {
	x := &nodeIndex{lines: make(map[string]int)}
	x.add(nodeEntry{value: root})
	return x
}

func (x *nodeIndex) add(e nodeEntry) {
	x.entries = append(x.entries, e)
	if _, ok := x.lines[e.path]; !ok {
		if e.key != nil {
			x.lines[e.path] = e.key.Line
		} else {
			x.lines[e.path] = e.value.Line
		}
	}
	n := e.value
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			x.add(nodeEntry{path: joinKey(e.path, k.Value), parent: e.path, key: k, value: v})
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			x.add(nodeEntry{path: fmt.Sprintf("%s[%d]", e.path, i), parent: e.path, value: item})
		}
	}
	// Aliases are not followed: their target is indexed where it is defined.
}

// line returns the line of key, or of its nearest ancestor present in the
// file, or 0.
func (x *nodeIndex) line(key string) int {
	if x == nil {
		return 0
	}
	for key != "" {
		if l, ok := x.lines[key]; ok {
			return l
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0
}

// entry returns the first entry at path.
func (x *nodeIndex) entry(path string) *nodeEntry {
	for i := range x.entries {
		if x.entries[i].path == path {
			return &x.entries[i]
		}
	}
	return nil
}

// findKey returns the entry whose key is name on line.
func (x *nodeIndex) findKey(line int, name string) *nodeEntry {
	for i := range x.entries {
		e := &x.entries[i]
		if e.key != nil && e.key.Line == line && e.key.Value == name {
			return e
		}
	}
	return nil
}

// findValue returns the entry whose value is on line with the given tag and,
// for scalars, the given text, which yaml.v3 cuts to 7 characters and "...".
func (x *nodeIndex) findValue(line int, tag, value string) *nodeEntry {
	prefix, cut := strings.CutSuffix(value, "...")
	for i := range x.entries {
		e := &x.entries[i]
		n := e.value
		if n.Line != line || n.ShortTag() != tag {
			continue
		}
		if n.Kind == yaml.ScalarNode {
			if cut && !strings.HasPrefix(n.Value, prefix) || !cut && n.Value != value {
				continue
			}
		}
		return e
	}
	return nil
}
