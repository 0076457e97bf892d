package cryptobackend

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"os"
	"strings"
	"testing"
)

func newAEAD(t *testing.T) (cipher.AEAD, cipher.Block) {
	t.Helper()
	b, err := aes.NewCipher(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewGCMWithRandomNonce(b)
	if err != nil {
		t.Fatalf("NewGCMWithRandomNonce on the %s backend: %v", Current(), err)
	}
	return a, b
}

// The sealed form is nonce || ciphertext || tag on every backend, so what one
// binary stores, the other opens: check it against plain GCM.
func TestGCMWithRandomNonceFormat(t *testing.T) {
	a, b := newAEAD(t)
	if a.NonceSize() != 0 || a.Overhead() != 28 {
		t.Fatalf("NonceSize %d Overhead %d, want 0 and 28", a.NonceSize(), a.Overhead())
	}
	msg, ad := []byte("the record"), []byte("header")
	sealed := a.Seal([]byte("prefix"), nil, msg, ad)
	if !bytes.HasPrefix(sealed, []byte("prefix")) || len(sealed) != 6+12+len(msg)+16 {
		t.Fatalf("sealed %x", sealed)
	}
	body := sealed[6:]
	g, err := cipher.NewGCM(b)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := g.Open(nil, body[:12], body[12:], ad)
	if err != nil || !bytes.Equal(pt, msg) {
		t.Fatalf("plain GCM open: %q, %v", pt, err)
	}
	if pt, err := a.Open(nil, nil, body, ad); err != nil || !bytes.Equal(pt, msg) {
		t.Fatalf("open: %q, %v", pt, err)
	}
	// And the other way: plain GCM's output opens.
	iv := bytes.Repeat([]byte{9}, 12)
	other := g.Seal(append([]byte(nil), iv...), iv, msg, ad)
	if pt, err := a.Open(nil, nil, other, ad); err != nil || !bytes.Equal(pt, msg) {
		t.Fatalf("open plain GCM's: %q, %v", pt, err)
	}
	if again := a.Seal(nil, nil, msg, ad); bytes.Equal(again[:12], body[:12]) {
		t.Fatal("two seals used one nonce")
	}
}

func TestGCMWithRandomNonceRefuses(t *testing.T) {
	a, _ := newAEAD(t)
	sealed := a.Seal(nil, nil, []byte("secret"), nil)
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 1
		if _, err := a.Open(nil, nil, bad, nil); err == nil {
			t.Fatalf("byte %d flipped, still opened", i)
		}
	}
	if _, err := a.Open(nil, nil, sealed, []byte("other")); err == nil {
		t.Fatal("opened under other additional data")
	}
	if _, err := a.Open(nil, nil, sealed[:27], nil); err == nil {
		t.Fatal("opened 27 bytes")
	}
}

func TestGCMWithRandomNonceInPlace(t *testing.T) {
	a, _ := newAEAD(t)
	msg := []byte("sealed where it lies, forty bytes long..")
	buf := make([]byte, len(msg), len(msg)+28)
	copy(buf, msg)
	sealed := a.Seal(buf[:0], nil, buf, nil)
	if pt, err := a.Open(nil, nil, sealed, nil); err != nil || !bytes.Equal(pt, msg) {
		t.Fatalf("in place: %q, %v", pt, err)
	}
}

// Every backend is named, with Go's FIPS 140-3 module and its version when
// it is on.
func TestInfoString(t *testing.T) {
	for _, tc := range []struct {
		i      Info
		want   string
		module string
	}{
		{Info{Name: Go}, "go", ""},
		{Info{Name: BoringCrypto}, "boringcrypto", "BoringCrypto"},
		{Info{Name: Go, FIPS140: true, ModuleVersion: "v1.0.0-c2097c7c"}, "go fips140 (Go Cryptographic Module v1.0.0-c2097c7c)", "Go Cryptographic Module v1.0.0-c2097c7c"},
		{Info{Name: Go, FIPS140: true, Enforced: true, ModuleVersion: "latest"}, "go fips140=only (Go Cryptographic Module latest)", "Go Cryptographic Module latest"},
	} {
		if got := tc.i.String(); got != tc.want {
			t.Errorf("%+v: String %q, want %q", tc.i, got, tc.want)
		}
		if got := tc.i.Module(); got != tc.module {
			t.Errorf("%+v: Module %q, want %q", tc.i, got, tc.module)
		}
		if got, want := tc.i.FIPSModeReady(), tc.i.Name == BoringCrypto || tc.i.Enforced; got != want {
			t.Errorf("%+v: FIPSModeReady %v, want %v", tc.i, got, want)
		}
	}
	if strings.Contains(os.Getenv("GODEBUG"), "fips140=on") && !Current().FIPS140 {
		t.Errorf("GODEBUG=%s, but Current() %+v is not in FIPS 140-3 mode", os.Getenv("GODEBUG"), Current())
	}
	if c := Current(); c.FIPS140 && c.ModuleVersion == "" {
		t.Errorf("Current() %+v: FIPS 140-3 mode without a module version", c)
	}
}
