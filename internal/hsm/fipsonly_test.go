package hsm

import (
	"bytes"
	"crypto/fips140"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
)

// TestGCMUnderFIPSOnly runs where Go's FIPS 140-3 module is enforced
// (`make unit-fips` runs it with GODEBUG=fips140=only): a FIPS-mode
// device's AES-GCM under IVs it chooses encrypts, and decrypts under the IV
// it returned, single-part and multi-part, although the standard library
// refuses GCM under a caller's IV there; encryption under a caller's IV is
// refused as a bad parameter, and nothing panics.
func TestGCMUnderFIPSOnly(t *testing.T) {
	if !fips140.Enforced() {
		t.Skip("needs GODEBUG=fips140=only (make unit-fips)")
	}
	td, admin := activate(t, newDeviceWith(t, Config{FIPS: true}))
	alice := withCU(t, td, admin, "alice")
	key := genAES(t, td, alice, "fips-only")
	msg, aad := []byte("under an IV the HSM chose"), []byte("aad")
	zero := Mechanism{Type: ck.CKM_AES_GCM, IV: make([]byte, 12), AAD: aad, TagBits: 128}
	for name, enc := range map[string]func() ([]byte, []byte){
		"single-part": func() ([]byte, []byte) { return must2(t)(td.EncryptIV(alice, key, zero, msg)) },
		"multi-part":  func() ([]byte, []byte) { return encryptIVParts(t, td, alice, key, zero, msg) },
	} {
		ct, iv := enc()
		m := zero
		m.IV = iv
		if pt, err := td.Decrypt(alice, key, m, ct); err != nil || !bytes.Equal(pt, msg) {
			t.Fatalf("%s: decrypt under the returned IV: %q, %v", name, pt, err)
		}
		ct[0] ^= 1
		wantRefusal(t, errOf(td.Decrypt(alice, key, m, ct)), ErrEncryptedDataInvalid)
	}
	caller := zero
	caller.IV = bytes.Repeat([]byte{7}, 12)
	wantRefusal(t, errOf(td.Encrypt(alice, key, caller, msg)), ErrMechanismParamInvalid)
}

func must2(t *testing.T) func(a, b []byte, err error) ([]byte, []byte) {
	return func(a, b []byte, err error) ([]byte, []byte) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return a, b
	}
}

func errOf(_ []byte, err error) error { return err }
