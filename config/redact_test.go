package config

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/pgone/pgone/proxy"
)

func TestRedacted(t *testing.T) {
	c, err := Load("../configs/pgone.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// An entry without a password must stay without one.
	c.Proxy.Users["trusted"] = proxy.User{AuthMethod: "trust"}
	before := fmt.Sprintf("%+v", *c)
	originals := passwords(reflect.ValueOf(*c), "")

	r := c.Redacted()

	if got := fmt.Sprintf("%+v", *c); got != before {
		t.Fatalf("Redacted modified the original:\nbefore %s\nafter  %s", before, got)
	}
	masked := passwords(reflect.ValueOf(*r), "")
	if len(masked) != len(originals) || len(masked) < 4 {
		t.Fatalf("password fields: redacted %d, original %d; want the same, at least 4", len(masked), len(originals))
	}
	for path, orig := range originals {
		want := PasswordMask
		if orig == "" {
			want = ""
		}
		if masked[path] != want {
			t.Errorf("%s = %q, want %q", path, masked[path], want)
		}
	}
	text := fmt.Sprintf("%+v", *r)
	for path, orig := range originals {
		if orig != "" && strings.Contains(text, orig) {
			t.Errorf("the redacted copy still prints %s", path)
		}
	}

	// Everything but passwords is copied unchanged.
	unmasked := r.Redacted()
	restore(reflect.ValueOf(unmasked).Elem(), originals, "")
	if !reflect.DeepEqual(unmasked, c) {
		t.Errorf("Redacted changed more than passwords")
	}

	// A deep copy: changing the copy's maps and slices leaves c alone.
	r.Proxy.AdminUsers[0] = "mallory"
	app := r.Proxy.Databases["app"]
	app.Replicas[0].Host = "elsewhere"
	r.Proxy.Databases["app"] = app
	r.Proxy.Databases["new"] = proxy.Database{}
	r.Proxy.Users["mallory"] = proxy.User{}
	if got := fmt.Sprintf("%+v", *c); got != before {
		t.Errorf("changing the redacted copy changed the original:\nbefore %s\nafter  %s", before, got)
	}
}

func TestRedactedEmpty(t *testing.T) {
	var c Config
	r := c.Redacted()
	if !reflect.DeepEqual(*r, c) {
		t.Errorf("Redacted of a zero Config = %+v", *r)
	}
}

// passwords finds every field whose yaml key is "password" anywhere in v, so
// a password field added later is covered without changing this test.
func passwords(v reflect.Value, path string) map[string]string {
	found := make(map[string]string)
	visitPasswords(v, path, false, func(p string, f reflect.Value) { found[p] = f.String() })
	return found
}

func restore(v reflect.Value, values map[string]string, path string) {
	visitPasswords(v, path, true, func(p string, f reflect.Value) { f.SetString(values[p]) })
}

// visitPasswords calls fn on each password field; with write, changes fn
// makes to map values are stored back.
func visitPasswords(v reflect.Value, path string, write bool, fn func(string, reflect.Value)) {
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			name := yamlName(v.Type().Field(i))
			if name == "password" && v.Field(i).Kind() == reflect.String {
				fn(joinKey(path, name), v.Field(i))
				continue
			}
			visitPasswords(v.Field(i), joinKey(path, name), write, fn)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			// Map values are not addressable: visit a copy and store it back.
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			visitPasswords(e, joinKey(path, k.String()), write, fn)
			if write {
				v.SetMapIndex(k, e)
			}
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			visitPasswords(v.Index(i), fmt.Sprintf("%s[%d]", path, i), write, fn)
		}
	}
}

// yamlName returns a field's key, "" for an inline field.
func yamlName(f reflect.StructField) string {
	tag := f.Tag.Get("yaml")
	name, _, _ := strings.Cut(tag, ",")
	if name == "" && !strings.Contains(tag, "inline") {
		return strings.ToLower(f.Name)
	}
	return name
}
