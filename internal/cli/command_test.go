package cli

import (
	"slices"
	"testing"
)

func TestExpandArgs(t *testing.T) {
	for _, c := range []struct {
		name     string
		in, want []string
	}{
		{"nothing to do", []string{"key", "list", "--verbose"}, []string{"key", "list", "--verbose"}},
		{"one value", []string{"key", "list", "--filter", "attr.label=a"}, []string{"key", "list", "--filter", "attr.label=a"}},
		{"several values", []string{"key", "list", "--filter", "attr.a=1", "attr.b=2", "--verbose"},
			[]string{"key", "list", "--filter", "attr.a=1", "--filter", "attr.b=2", "--verbose"}},
		{"values at the end", []string{"--attributes", "sign=true", "extractable=false"},
			[]string{"--attributes", "sign=true", "--attributes", "extractable=false"}},
		{"no value", []string{"key", "delete", "--filter", "--verbose"}, []string{"key", "delete", "--filter", "--verbose"}},
		{"no value at the end", []string{"key", "delete", "--filter"}, []string{"key", "delete", "--filter"}},
		{"with equals", []string{"--filter=attr.a=1", "x"}, []string{"--filter=attr.a=1", "x"}},
		{"single-value flag", []string{"--label", "a", "b"}, []string{"--label", "a", "b"}},
		{"two multi flags", []string{"--share-crypto-users", "bob", "carol", "--private-attributes", "sign=true"},
			[]string{"--share-crypto-users", "bob", "--share-crypto-users", "carol", "--private-attributes", "sign=true"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := ExpandArgs(c.in); !slices.Equal(got, c.want) {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}
