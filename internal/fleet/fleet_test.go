package fleet

import (
	"errors"
	"testing"
)

func TestNewRecords(t *testing.T) {
	seqs := func(ss ...uint64) []Record {
		var out []Record
		for _, s := range ss {
			out = append(out, Record{Seq: s})
		}
		return out
	}
	tests := []struct {
		name string
		hw   uint64
		in   []Record
		keep int
		mark uint64
		err  error
	}{
		{"first", 0, seqs(1, 2, 3), 3, 3, nil},
		{"next", 3, seqs(4, 5), 2, 5, nil},
		{"overlap", 3, seqs(2, 3, 4), 1, 4, nil},
		{"replay", 5, seqs(4, 5), 0, 5, ErrReplay},
		{"gap", 5, seqs(7, 8), 0, 5, ErrSequenceGap},
		{"gap inside", 0, seqs(1, 3), 0, 0, ErrSequenceGap},
		{"empty", 2, nil, 0, 2, ErrReplay},
	}
	for _, tc := range tests {
		got, res := NewRecords(tc.hw, tc.in)
		if len(got) != tc.keep || res.HighWater != tc.mark || !errors.Is(res.Err, tc.err) || (res.Err == nil) != (tc.err == nil) {
			t.Errorf("%s: kept %d, %+v; want %d, mark %d, %v", tc.name, len(got), res, tc.keep, tc.mark, tc.err)
		}
	}
}

func TestRoles(t *testing.T) {
	for _, r := range []Role{RoleAdmin, RoleApprover, RoleOperator, RoleAuditor} {
		if !r.Valid() {
			t.Errorf("%s not valid", r)
		}
	}
	if Role("root").Valid() || Role("").Valid() {
		t.Error("unknown role accepted")
	}
}

func TestValidGroup(t *testing.T) {
	for g, want := range map[string]bool{
		"default": true, "web": true, "db-eu.1_a": true, "0": true,
		"": false, "Web": false, "-web": false, ".x": false, "a/b": false, "a b": false, "é": false,
		"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcd":  true,
		"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcde": false,
	} {
		if got := ValidGroup(g); got != want {
			t.Errorf("ValidGroup(%q) = %v, want %v", g, got, want)
		}
	}
}
