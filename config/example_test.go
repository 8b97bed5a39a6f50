package config

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const examplePath = "../configs/pgone.yaml"

func TestExampleValidates(t *testing.T) {
	if _, err := Load(examplePath); err != nil {
		t.Fatalf("%s:\n%v", examplePath, err)
	}
}

// TestExampleDocumentsEveryKey checks that every key of the schema, nested
// ones included, appears in the example at least once (map entries and list
// items count as one shape, written <name> and []).
func TestExampleDocumentsEveryKey(t *testing.T) {
	schema := make(map[string]bool)
	schemaKeys(reflect.TypeOf(Config{}), "", schema)
	documented := make(map[string]bool)
	exampleKeys(exampleDoc(t), reflect.TypeOf(Config{}), "", documented)

	var missing []string
	for k := range schema {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("%s does not document: %s", examplePath, strings.Join(missing, ", "))
	}
	if len(schema) < 40 {
		t.Errorf("schema has %d keys; the walk is broken", len(schema))
	}
}

// exampleValues are keys whose example value is not the default, each with
// why. Every other key the example states must equal what Defaults gives a
// config that leaves it out.
var exampleValues = map[string]string{
	"databases.app.host":      "required",
	"databases.app.dbname":    "example server name",
	"databases.app.user":      "example server login",
	"databases.app.password":  "example server password",
	"databases.app.pool_size": "example override",
	"databases.app.pool_mode": "example override",
	"databases.*.host":        "required",
	"users.alice.password":    "required",
}

// exampleMinimal holds only the required keys, under the same names as the
// example so their entries' defaults can be compared too.
const exampleMinimal = `
databases:
  app: {host: db.internal}
  "*": {host: db.internal}
users:
  alice: {password: alice-secret}
`

// TestExampleStatesDefaults loads a config with only the required keys and
// checks that every value the example states (not filled in by Defaults) is
// what Defaults produces, and that every "default X" in a line comment is too.
func TestExampleStatesDefaults(t *testing.T) {
	defaults := flatten(reflect.ValueOf(*mustParse(t, exampleMinimal)))

	// The example as written, without defaults applied.
	var raw Config
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil {
		t.Fatal(err)
	}
	stated := flatten(reflect.ValueOf(raw))
	index := indexNodes(exampleDoc(t))

	compared := 0
	for _, key := range sortedKeys(defaults) {
		want := defaults[key]
		if _, ok := exampleValues[key]; ok {
			continue
		}
		if _, ok := index.lines[key]; !ok {
			// Only the short "*" entry may leave keys out.
			if !strings.HasPrefix(key, "databases.*.") {
				t.Errorf("%s: not stated in the example (default %q)", key, want)
			}
			continue
		}
		compared++
		if got := stated[key]; got != want {
			t.Errorf("%s: example states %q, Defaults gives %q", key, got, want)
		}
	}
	if compared < 25 {
		t.Errorf("compared only %d keys", compared)
	}

	for key := range exampleValues {
		if _, ok := defaults[key]; !ok {
			t.Errorf("exampleValues lists %s, which the minimal config does not have", key)
		}
		if _, ok := index.lines[key]; !ok {
			t.Errorf("exampleValues lists %s, which the example does not state", key)
		}
	}

	// A comment "default X" must state the real default, and a key whose
	// example value is not its default must say its default or that it is
	// required.
	commented := make(map[string]bool)
	for _, e := range index.entries {
		if e.key == nil {
			continue
		}
		comment := e.key.LineComment + " " + e.value.LineComment
		if m := commentDefault.FindStringSubmatch(comment); m != nil {
			want, ok := defaults[e.path]
			if !ok {
				continue // not a leaf the minimal config has, such as a replica's weight
			}
			got := m[1]
			if unq, err := strconv.Unquote(got); err == nil {
				got = unq
			}
			if got != want {
				t.Errorf("%s: comment says default %q, Defaults gives %q", e.path, got, want)
			}
			commented[e.path] = true
		} else if strings.Contains(comment, "required") {
			commented[e.path] = true
		}
	}
	for key := range exampleValues {
		if !commented[key] {
			t.Errorf("%s: the example value is not the default, so its comment must say the default or that it is required", key)
		}
	}
}

var commentDefault = regexp.MustCompile(`\bdefault ("[^"]*"|[^\s,;]+)`)

func exampleDoc(t *testing.T) *yaml.Node {
	t.Helper()
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Content[0]
}

// fields maps the yaml keys of struct type t to their types, inline fields
// flattened.
func fields(t reflect.Type) map[string]reflect.Type {
	m := make(map[string]reflect.Type)
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if name := yamlName(f); name != "" {
			m[name] = f.Type
			continue
		}
		for k, v := range fields(f.Type) {
			m[k] = v
		}
	}
	return m
}

// isLeaf reports whether t decodes from a scalar.
func isLeaf(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Struct, reflect.Map, reflect.Slice:
		return false
	}
	return true
}

func schemaKeys(t reflect.Type, prefix string, out map[string]bool) {
	switch t.Kind() {
	case reflect.Struct:
		for name, ft := range fields(t) {
			key := joinKey(prefix, name)
			out[key] = true
			schemaKeys(ft, key, out)
		}
	case reflect.Map:
		key := prefix + ".<name>"
		out[key] = true
		schemaKeys(t.Elem(), key, out)
	case reflect.Slice:
		key := prefix + "[]"
		out[key] = true
		schemaKeys(t.Elem(), key, out)
	}
}

func exampleKeys(n *yaml.Node, t reflect.Type, prefix string, out map[string]bool) {
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fs := fields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			name := n.Content[i].Value
			if ft, ok := fs[name]; ok {
				key := joinKey(prefix, name)
				out[key] = true
				exampleKeys(n.Content[i+1], ft, key, out)
			}
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		key := prefix + ".<name>"
		for i := 0; i+1 < len(n.Content); i += 2 {
			out[key] = true
			exampleKeys(n.Content[i+1], t.Elem(), key, out)
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		key := prefix + "[]"
		for _, item := range n.Content {
			out[key] = true
			exampleKeys(item, t.Elem(), key, out)
		}
	}
}

// flatten lists every leaf of v by its full key path.
func flatten(v reflect.Value) map[string]string {
	out := make(map[string]string)
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		if isLeaf(v.Type()) {
			out[prefix] = fmt.Sprint(v.Interface())
			return
		}
		switch v.Kind() {
		case reflect.Struct:
			for i := 0; i < v.NumField(); i++ {
				walk(v.Field(i), joinKey(prefix, yamlName(v.Type().Field(i))))
			}
		case reflect.Map:
			for _, k := range v.MapKeys() {
				walk(v.MapIndex(k), joinKey(prefix, k.String()))
			}
		case reflect.Slice:
			for i := 0; i < v.Len(); i++ {
				walk(v.Index(i), fmt.Sprintf("%s[%d]", prefix, i))
			}
		}
	}
	walk(v, "")
	return out
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
