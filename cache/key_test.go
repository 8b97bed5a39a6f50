package cache

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"testing"
)

func keyOf(in KeyInput) Key {
	var b KeyBuilder
	return b.Key(&in)
}

// TestKeyFieldBoundaries: moving bytes across a field boundary, or turning
// NULL into an empty value, gives another key.
func TestKeyFieldBoundaries(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b KeyInput
	}{
		{"database/role", KeyInput{Database: "ab", Role: "c"}, KeyInput{Database: "a", Role: "bc"}},
		{"role/search_path", KeyInput{Role: "ab", SearchPath: "c"}, KeyInput{Role: "a", SearchPath: "bc"}},
		{"timezone/datestyle", KeyInput{Output: Output{TimeZone: "UTC", DateStyle: "ISO"}}, KeyInput{Output: Output{TimeZone: "UTCI", DateStyle: "SO"}}},
		{"search_path/text", KeyInput{SearchPath: "public", Text: "select 1"}, KeyInput{SearchPath: "publicselect 1"}},
		{"params split", KeyInput{Params: [][]byte{[]byte("ab"), []byte("c")}}, KeyInput{Params: [][]byte{[]byte("a"), []byte("bc")}}},
		{"params count", KeyInput{Params: [][]byte{[]byte("ab")}}, KeyInput{Params: [][]byte{[]byte("a"), []byte("b")}}},
		{"null vs empty", KeyInput{Params: [][]byte{nil}}, KeyInput{Params: [][]byte{{}}}},
		{"null vs none", KeyInput{Params: [][]byte{nil}}, KeyInput{}},
		{"param formats vs result formats", KeyInput{ParamFormats: []int16{1}}, KeyInput{ResultFormats: []int16{1}}},
		{"one format vs per column", KeyInput{ResultFormats: []int16{1}}, KeyInput{ResultFormats: []int16{1, 1}}},
		{"shape", KeyInput{Text: "select 1", Shape: 1}, KeyInput{Text: "select 1", Shape: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if keyOf(tc.a) == keyOf(tc.b) {
				t.Fatalf("same key for %+v and %+v", tc.a, tc.b)
			}
		})
	}
}

// TestKeyEveryFieldCounts changes each field of KeyInput (and of Output)
// in turn, found by reflection so a field added later is covered too.
func TestKeyEveryFieldCounts(t *testing.T) {
	base := KeyInput{Database: "d", Role: "r", SearchPath: "s", Text: "select $1",
		Params: [][]byte{[]byte("1")}, ParamFormats: []int16{0}, ResultFormats: []int16{0}}
	want := keyOf(base)
	var walk func(v reflect.Value, path string)
	walk = func(v reflect.Value, path string) {
		for i := 0; i < v.NumField(); i++ {
			f, name := v.Field(i), path+v.Type().Field(i).Name
			old := reflect.ValueOf(f.Interface())
			switch f.Kind() {
			case reflect.Struct:
				walk(f, name+".")
				continue
			case reflect.String:
				f.SetString(f.String() + "x")
			case reflect.Uint8:
				f.SetUint(f.Uint() + 1)
			case reflect.Slice:
				f.Set(reflect.Append(f, reflect.Zero(f.Type().Elem())))
			default:
				t.Fatalf("%s: kind %s not covered by this test", name, f.Kind())
			}
			if keyOf(base) == want {
				t.Errorf("changing %s did not change the key", name)
			}
			f.Set(old)
			if keyOf(base) != want {
				t.Fatalf("restoring %s did not restore the key", name)
			}
		}
	}
	walk(reflect.ValueOf(&base).Elem(), "")
}

// TestKeyEncodingInjective: random inputs over a tiny alphabet (so near
// collisions are frequent) never share an encoding unless they are equal.
func TestKeyEncodingInjective(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	words := []string{"", "a", "b", "ab", "ba"}
	str := func() string { return words[r.IntN(len(words))] }
	bytesOrNil := func() []byte {
		if r.IntN(4) == 0 {
			return nil
		}
		return []byte(str())
	}
	gen := func() KeyInput {
		in := KeyInput{Database: str(), Role: str(), SearchPath: str(), Text: str(),
			Output: Output{TimeZone: str(), LcNumeric: str()}}
		for range r.IntN(3) {
			in.Params = append(in.Params, bytesOrNil())
		}
		for range r.IntN(2) {
			in.ResultFormats = append(in.ResultFormats, int16(r.IntN(2)))
		}
		return in
	}
	seen := map[string]KeyInput{}
	for range 20000 {
		in := gen()
		enc := string(appendInput(nil, &in))
		if prev, ok := seen[enc]; ok && !sameInput(prev, in) {
			t.Fatalf("%+v and %+v encode the same", prev, in)
		}
		seen[enc] = in
	}
}

func sameInput(a, b KeyInput) bool {
	if len(a.Params) != len(b.Params) {
		return false
	}
	for i := range a.Params {
		if (a.Params[i] == nil) != (b.Params[i] == nil) || !bytes.Equal(a.Params[i], b.Params[i]) {
			return false
		}
	}
	a.Params, b.Params = nil, nil
	return reflect.DeepEqual(a, b)
}

func TestKeyBuilderNoAllocs(t *testing.T) {
	in := KeyInput{Database: "d", Role: "r", Text: "select * from t where id = $1", Params: [][]byte{[]byte("42")}}
	var b KeyBuilder
	want := b.Key(&in)
	if n := testing.AllocsPerRun(100, func() {
		if b.Key(&in) != want {
			t.Fatal("key changed")
		}
	}); n != 0 {
		t.Fatalf("Key allocates %v times per call once warmed", n)
	}
}
