package hsm

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/coffer-hsm/coffer/internal/audit"
	"github.com/coffer-hsm/coffer/internal/ck"
)

// The device writes a verifiable audit trail of logins, user changes and key
// creation, use, sharing and deletion, through the real hash-chained log.
func TestAuditTrail(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "audit.log")
	log, err := audit.Open(ctx, audit.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(ctx, Config{Store: newMemStore(), Audit: log, Password: testCost})
	if err != nil {
		t.Fatal(err)
	}
	td := &testDevice{Device: d}
	admin := td.OpenSession()
	if err := td.Login(ctx, admin, RoleAdmin, DefaultAdminName, "wrong-password"); err == nil {
		t.Fatal("wrong password accepted")
	}
	if err := td.Login(ctx, admin, RoleAdmin, DefaultAdminName, DefaultPreAdminPIN); err != nil {
		t.Fatal(err)
	}
	if err := td.Activate(ctx, admin, adminPW); err != nil {
		t.Fatal(err)
	}
	alice := withCU(t, td, admin, "alice")
	withCU(t, td, admin, "bob")
	key := genAES(t, td, alice, "audited")
	if _, err := td.Sign(alice, key, Mechanism{Type: ck.CKM_AES_CMAC}, []byte("m")); err != nil {
		t.Fatal(err)
	}
	if err := td.ShareKey(ctx, alice, key, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := td.DestroyObject(ctx, alice, key); err != nil {
		t.Fatal(err)
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := audit.NewReader(f)
	var got []string
	for {
		rec, err := r.Next()
		if err != nil {
			break
		}
		got = append(got, rec.Op+":"+rec.Result+":"+rec.User)
		if rec.Object != 0 && rec.Object != uint64(key) && rec.Op != "login" {
			t.Errorf("record %d names object %x", rec.Seq, rec.Object)
		}
	}
	for _, want := range []string{
		"login:CKR_PIN_INCORRECT:", "login:ok:admin", "user.create:ok:admin", "login:ok:alice",
		"key.generate:ok:alice", "key.sign:ok:alice", "key.share:ok:alice", "object.destroy:ok:alice",
	} {
		if !slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, want) }) {
			t.Errorf("audit trail lacks %q; has %v", want, got)
		}
	}
	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := audit.Verify(f, nil); err != nil {
		t.Fatalf("chain: %v", err)
	}
}

func TestFIPSMode(t *testing.T) {
	d, err := New(t.Context(), Config{Store: newMemStore(), Audit: &memAudit{}, Password: testCost, FIPS: true})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(d.Mechanisms(), ck.CKM_RSA_PKCS) {
		t.Fatal("FIPS mode offers RSA PKCS#1 v1.5 encryption")
	}
	_, err = d.MechanismInfo(ck.CKM_RSA_PKCS)
	wantErr(t, err, ErrMechanismInvalid)
	if _, err := d.MechanismInfo(ck.CKM_AES_GCM); err != nil {
		t.Fatal(err)
	}
	td := &testDevice{Device: d}
	s := td.OpenSession()
	if err := td.Login(t.Context(), s, RoleAdmin, DefaultAdminName, DefaultPreAdminPIN); err != nil {
		t.Fatal(err)
	}
	if err := td.Activate(t.Context(), s, adminPW); err != nil {
		t.Fatal(err)
	}
	alice := withCU(t, td, s, "alice")
	pub, _, err := td.GenerateKeyPair(t.Context(), alice, Mechanism{Type: ck.CKM_RSA_PKCS_KEY_PAIR_GEN}, Template{Ulong(ck.CKA_MODULUS_BITS, 2048)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = td.Encrypt(alice, pub, Mechanism{Type: ck.CKM_RSA_PKCS}, []byte("m"))
	wantErr(t, err, ErrFIPSNotApproved)
}

func FuzzObjectRecord(f *testing.F) {
	td, admin := activated(f)
	alice := withCU(f, td, admin, "alice")
	makeKeys(f, td, alice)
	for _, data := range td.store.recs[RecordObject] {
		f.Add(data)
	}
	f.Add([]byte{recordFormat, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := unmarshalObject(data)
		if err != nil {
			return
		}
		again, err := o.marshal()
		if err != nil {
			t.Fatalf("decoded object does not encode: %v", err)
		}
		o2, err := unmarshalObject(again)
		if err != nil {
			t.Fatalf("re-encoded object does not decode: %v", err)
		}
		if again2, _ := o2.marshal(); string(again2) != string(again) {
			t.Fatal("encoding is not stable")
		}
	})
}
