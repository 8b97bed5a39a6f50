package proxy

import "testing"

func TestDeallocateName(t *testing.T) {
	for _, c := range []struct {
		text string
		name string
		ok   bool
	}{
		{`DEALLOCATE s1`, "s1", true},
		{`deallocate S1;`, "s1", true},
		{`  DEALLOCATE PREPARE s1 ; `, "s1", true},
		{`DEALLOCATE "S ""1"""`, `S "1"`, true},
		{`DEALLOCATE PREPARE "all"`, "all", true},
		{`/* c /* nested */ */ DEALLOCATE -- x
		 stmt_2$`, "stmt_2$", true},
		{`DEALLOCATE prepare`, "prepare", true},
		{`DEALLOCATE ALL`, "", false},
		{`DEALLOCATE PREPARE ALL`, "", false},
		{`DEALLOCATE s1; SELECT 1`, "", false},
		{`DEALLOCATE`, "", false},
		{`DEALLOCATE "unterminated`, "", false},
		{`SELECT 'DEALLOCATE s1'`, "", false},
		{`DEALLOCATE s1 s2`, "", false},
		{`DEALLOCATE 1s`, "", false},
	} {
		name, ok := deallocateName(c.text)
		if name != c.name || ok != c.ok {
			t.Errorf("deallocateName(%q) = %q, %v; want %q, %v", c.text, name, ok, c.name, c.ok)
		}
	}
}

func TestWellFormedParamTypes(t *testing.T) {
	for _, c := range []struct {
		rest []byte
		ok   bool
	}{
		{[]byte{0, 0}, true},
		{[]byte{0, 1, 0, 0, 0, 23}, true},
		{[]byte{0, 2, 0, 0, 0, 23}, false},
		{[]byte{0xff, 0xff}, false},
		{[]byte{0, 0, 0}, false},
		{[]byte{0}, false},
		{nil, false},
	} {
		if got := wellFormedParamTypes(c.rest); got != c.ok {
			t.Errorf("wellFormedParamTypes(%v) = %v", c.rest, got)
		}
	}
}
