package key

import (
	"strings"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

func TestTemplate(t *testing.T) {
	for _, c := range []struct {
		name    string
		session bool
		attrs   []string
		fixed   []client.Attribute
		want    []ck.AttributeType
		err     string
	}{
		{name: "defaults", want: []ck.AttributeType{ck.CKA_TOKEN, ck.CKA_LABEL}},
		{name: "attributes after", attrs: []string{"sign=false"}, want: []ck.AttributeType{ck.CKA_TOKEN, ck.CKA_LABEL, ck.CKA_SIGN}},
		{name: "attributes override", attrs: []string{"label=other", "token=false"}, want: []ck.AttributeType{ck.CKA_LABEL, ck.CKA_TOKEN}},
		{name: "fixed last", fixed: []client.Attribute{cli.Ulong(ck.CKA_VALUE_LEN, 32)}, want: []ck.AttributeType{ck.CKA_TOKEN, ck.CKA_LABEL, ck.CKA_VALUE_LEN}},
		{name: "fixed may not be given", attrs: []string{"key-length-bytes=16"}, fixed: []client.Attribute{cli.Ulong(ck.CKA_VALUE_LEN, 32)}, err: "is set by this command"},
		{name: "bad attribute", attrs: []string{"nope=1"}, err: "unknown attribute"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tmpl, err := template(c.session, "k", c.attrs, c.fixed...)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(tmpl) != len(c.want) {
				t.Fatalf("template %v", tmpl)
			}
			for i, a := range tmpl {
				if a.Type != c.want[i] {
					t.Errorf("attribute %d: %v, want %v", i, a.Type, c.want[i])
				}
			}
		})
	}
	tmpl, _ := template(true, "k", nil)
	if tmpl[0].Type != ck.CKA_TOKEN || tmpl[0].Value[0] != 0 {
		t.Errorf("a session key's template: %v", tmpl)
	}
}

func TestWrapMechanisms(t *testing.T) {
	byName := map[string]wrapMech{}
	for _, m := range wrapMechs() {
		byName[m.name] = m
	}
	iv := make([]byte, gcmIVLen)
	for _, c := range []struct {
		name string
		mech string
		f    mechFlags
		err  string
		want client.Mechanism
	}{
		{name: "gcm", mech: "aes-gcm", f: mechFlags{tagBits: 128, aad: "0x0a0b"}, want: client.Mechanism{Type: ck.CKM_AES_GCM, IV: iv, AAD: []byte{10, 11}, TagBits: 128}},
		{name: "gcm short tag", mech: "aes-gcm", f: mechFlags{tagBits: 64}, err: "want 96 to 128"},
		{name: "gcm odd tag", mech: "aes-gcm", f: mechFlags{tagBits: 100}, err: "a multiple of 8"},
		{name: "gcm bad aad", mech: "aes-gcm", f: mechFlags{tagBits: 96, aad: "zz"}, err: "--aad"},
		{name: "kw", mech: "aes-no-pad", want: client.Mechanism{Type: ck.CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD}},
		{name: "kw pkcs5", mech: "aes-pkcs5-pad", want: client.Mechanism{Type: ck.CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD}},
		{name: "kw zero", mech: "aes-zero-pad", want: client.Mechanism{Type: ck.CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD}},
		{name: "rsa-aes", mech: "rsa-aes", f: mechFlags{hash: "sha384", aesBits: 128}, want: client.Mechanism{Type: ck.CKM_RSA_AES_KEY_WRAP, Hash: ck.CKM_SHA384, MGF: ck.CKG_MGF1_SHA384, AESKeyBits: 128}},
		{name: "rsa-aes bits", mech: "rsa-aes", f: mechFlags{hash: "sha256", aesBits: 512}, err: "--aes-key-bits"},
		{name: "kwp", mech: "aes-kwp", want: client.Mechanism{Type: ck.CKM_AES_KEY_WRAP_PAD}},
		{name: "oaep", mech: "rsa-oaep", f: mechFlags{hash: "sha384"}, want: client.Mechanism{Type: ck.CKM_RSA_PKCS_OAEP, Hash: ck.CKM_SHA384, MGF: ck.CKG_MGF1_SHA384}},
		{name: "oaep mgf", mech: "rsa-oaep", f: mechFlags{hash: "sha256", mgf: "mgf1-sha1"}, want: client.Mechanism{Type: ck.CKM_RSA_PKCS_OAEP, Hash: ck.CKM_SHA256, MGF: ck.CKG_MGF1_SHA1}},
		{name: "oaep bad hash", mech: "rsa-oaep", f: mechFlags{hash: "md5"}, err: "--hash-function"},
		{name: "pkcs1 v1.5", mech: "rsa-pkcs", f: mechFlags{hash: "sha256"}, want: client.Mechanism{Type: ck.CKM_RSA_PKCS}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := byName[c.mech].mechanism(&c.f, iv)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.Type != c.want.Type || m.Hash != c.want.Hash || m.MGF != c.want.MGF || m.TagBits != c.want.TagBits || m.AESKeyBits != c.want.AESKeyBits ||
				string(m.AAD) != string(c.want.AAD) || len(m.IV) != len(c.want.IV) {
				t.Errorf("got %+v, want %+v", m, c.want)
			}
		})
	}
	for name, ct := range keyTypeClasses() {
		if cls := ck.ObjectClass(ct[0]); cls != ck.CKO_SECRET_KEY && cls != ck.CKO_PRIVATE_KEY {
			t.Errorf("%s unwraps into class %v", name, cls)
		}
	}
}
