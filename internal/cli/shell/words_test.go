package shell

import (
	"errors"
	"slices"
	"testing"
)

func TestSplitWords(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
		err  error
	}{
		{"", nil, nil},
		{"   ", nil, nil},
		{"key list", []string{"key", "list"}, nil},
		{"  key\tlist  --verbose ", []string{"key", "list", "--verbose"}, nil},
		{"login --password 'a b c'", []string{"login", "--password", "a b c"}, nil},
		{`login --password "a \"b\" \\c \d"`, []string{"login", "--password", `a "b" \c \d`}, nil},
		{`x 'it''s'`, []string{"x", "its"}, nil},
		{`x a\ b`, []string{"x", "a b"}, nil},
		{"x ''", []string{"x", ""}, nil},
		{"# a comment", nil, nil},
		{"key list # trailing comment", []string{"key", "list"}, nil},
		{"a#b", []string{"a#b"}, nil},
		{"key list \\\n --verbose", []string{"key", "list", "--verbose"}, nil},
		{"key list \\", nil, errIncomplete},
		{"x 'open", nil, errIncomplete},
		{`x "open`, nil, errIncomplete},
		{"x \"two\nlines\"", []string{"x", "two\nlines"}, nil},
	} {
		t.Run(c.in, func(t *testing.T) {
			got, err := splitWords(c.in)
			if !errors.Is(err, c.err) || !slices.Equal(got, c.want) {
				t.Errorf("got %q, %v; want %q, %v", got, err, c.want, c.err)
			}
		})
	}
}
