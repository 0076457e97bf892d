package cli

import (
	"strings"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
)

func TestParseFilter(t *testing.T) {
	for _, c := range []struct {
		name  string
		items []string
		ref   client.ObjectID
		attrs []ck.AttributeType
		err   string
	}{
		{name: "empty", items: nil},
		{name: "label", items: []string{"attr.label=aes256"}, attrs: []ck.AttributeType{ck.CKA_LABEL}},
		{name: "two attributes", items: []string{"attr.class=private-key", "attr.key-type=ec"}, attrs: []ck.AttributeType{ck.CKA_CLASS, ck.CKA_KEY_TYPE}},
		{name: "reference", items: []string{"key-reference=0x000000000000001c"}, ref: 0x1c},
		{name: "reference and label", items: []string{"key-reference=28", "attr.label=k"}, ref: 28, attrs: []ck.AttributeType{ck.CKA_LABEL}},
		{name: "no attr prefix", items: []string{"label=k"}, err: "attributes are written attr.NAME=VALUE, e.g. attr.label=k"},
		{name: "no equals", items: []string{"attr.label"}, err: "want key-reference=0x... or attr.NAME=VALUE"},
		{name: "bad reference", items: []string{"key-reference=0xnope"}, err: "a key reference is a number"},
		{name: "zero reference", items: []string{"key-reference=0"}, err: "a key reference is a number"},
		{name: "bad value", items: []string{"attr.token=maybe"}, err: "want true or false"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, err := ParseFilter("filter", c.items)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.Ref != c.ref || f.HasRef != (c.ref != 0) || len(f.Attrs) != len(c.attrs) {
				t.Fatalf("got %+v", f)
			}
			for i, a := range f.Attrs {
				if a.Type != c.attrs[i] {
					t.Errorf("attribute %d is %v, want %v", i, a.Type, c.attrs[i])
				}
			}
			if f.Empty() != (len(c.items) == 0) {
				t.Errorf("Empty() = %v", f.Empty())
			}
			if f.String() != strings.Join(c.items, " ") {
				t.Errorf("String() = %q", f.String())
			}
		})
	}
}

func TestKeyRef(t *testing.T) {
	if got := KeyRef(0x1c); got != "0x000000000000001c" {
		t.Errorf("KeyRef = %s", got)
	}
}
