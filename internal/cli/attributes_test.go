package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
)

func TestParseAttribute(t *testing.T) {
	for _, c := range []struct {
		in    string
		typ   ck.AttributeType
		value []byte
		shown any // what Decode gives back
		err   string
	}{
		{in: "label=my key", typ: ck.CKA_LABEL, value: []byte("my key"), shown: "my key"},
		{in: "attr.label=", typ: ck.CKA_LABEL, value: []byte{}, shown: ""},
		{in: "extractable=false", typ: ck.CKA_EXTRACTABLE, value: []byte{0}, shown: false},
		{in: "attr.sign=TRUE", typ: ck.CKA_SIGN, value: []byte{1}, shown: true},
		{in: "id=0x0a0B", typ: ck.CKA_ID, value: []byte{0x0a, 0x0b}, shown: "0x0a0b"},
		{in: "id=abc", typ: ck.CKA_ID, value: []byte{0x0a, 0xbc}, shown: "0x0abc"},
		{in: "key-length-bytes=32", typ: ck.CKA_VALUE_LEN, value: []byte{32, 0, 0, 0, 0, 0, 0, 0}, shown: uint64(32)},
		{in: "class=private-key", typ: ck.CKA_CLASS, value: []byte{3, 0, 0, 0, 0, 0, 0, 0}, shown: "private-key"},
		{in: "key-type=ed25519", typ: ck.CKA_KEY_TYPE, value: []byte{0x40, 0, 0, 0, 0, 0, 0, 0}, shown: "ed25519"},
		{in: "curve=prime256v1", typ: ck.CKA_EC_PARAMS, value: []byte{6, 8, 0x2a, 0x86, 0x48, 0xce, 0x3d, 3, 1, 7}, shown: "secp256r1"},
		{in: "curve=ed25519", typ: ck.CKA_EC_PARAMS, value: []byte{6, 3, 0x2b, 0x65, 0x70}, shown: "ed25519"},
		{in: "label", err: "want NAME=VALUE"},
		{in: "colour=blue", err: `unknown attribute "colour"`},
		{in: "sign=yes", err: "want true or false"},
		{in: "id=0xzz", err: "want hex digits"},
		{in: "key-length-bytes=-1", err: "want a number"},
		{in: "class=certificate-ish", err: "want secret-key, public-key or private-key"},
		{in: "curve=secp256k1", err: "unknown curve"},
	} {
		t.Run(c.in, func(t *testing.T) {
			a, err := ParseAttribute(c.in)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				if _, code := Describe(err); code != ExitUsage {
					t.Errorf("exit code %d, want %d", code, ExitUsage)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Type != c.typ || !bytes.Equal(a.Value, c.value) {
				t.Fatalf("got %v %x, want %v %x", a.Type, a.Value, c.typ, c.value)
			}
			d, _ := LookupAttribute(c.in[:strings.Index(c.in, "=")])
			if got := d.Decode(a.Value); got != c.shown {
				t.Errorf("Decode = %#v, want %#v", got, c.shown)
			}
		})
	}
}

func TestDecodeUnknownValues(t *testing.T) {
	class, _ := LookupAttribute("class")
	if got := class.Decode([]byte{0x99, 0, 0, 0, 0, 0, 0, 0}); got != "0x9900000000000000" {
		t.Errorf("unknown class = %v", got)
	}
	curve, _ := LookupAttribute("curve")
	if got := curve.Decode([]byte{1, 2}); got != "0x0102" {
		t.Errorf("unknown curve = %v", got)
	}
	if got := curve.Decode([]byte("\x13\x0cedwards25519")); got != "ed25519" {
		t.Errorf("edwards25519 by name = %v", got)
	}
}

func TestAttributeDefsAreDistinct(t *testing.T) {
	seen := map[string]bool{}
	for _, d := range AttributeDefs() {
		if seen[d.Name] || d.Values == "" {
			t.Errorf("attribute %q: repeated or undocumented", d.Name)
		}
		seen[d.Name] = true
	}
	if d, _ := LookupAttribute("curve"); d.PKCS11Name() != "CKA_EC_PARAMS" {
		t.Errorf("curve is %s", d.PKCS11Name())
	}
}

func TestAttributesKeepOrder(t *testing.T) {
	a := Attributes{{"label", "k"}, {"class", "secret-key"}, {"token", true}, {"key-length-bytes", uint64(32)}}
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"label":"k","class":"secret-key","token":true,"key-length-bytes":32}`; string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
	if v, ok := a.Get("token"); !ok || v != true {
		t.Errorf("Get(token) = %v, %v", v, ok)
	}
}
