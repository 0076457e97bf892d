package cli

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
)

func TestReadPEMKey(t *testing.T) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, ed, _ := ed25519.GenerateKey(rand.Reader)
	pkcs8 := func(k any) []byte {
		b, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	spki := func(k any) []byte {
		b, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	sec1, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, c := range []struct {
		name    string
		blocks  []*pem.Block
		class   string
		private bool
	}{
		{"pkcs8 rsa", []*pem.Block{{Type: "PRIVATE KEY", Bytes: pkcs8(rk)}}, "rsa-private", true},
		{"pkcs1 rsa", []*pem.Block{{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}}, "rsa-private", true},
		{"sec1 ec", []*pem.Block{{Type: "EC PRIVATE KEY", Bytes: sec1}}, "ec-private", true},
		{"ec params first", []*pem.Block{{Type: "EC PARAMETERS", Bytes: []byte{6, 5, 0x2b, 0x81, 4, 0, 0x22}}, {Type: "EC PRIVATE KEY", Bytes: sec1}}, "ec-private", true},
		{"pkcs8 ed25519", []*pem.Block{{Type: "PRIVATE KEY", Bytes: pkcs8(ed)}}, "ed25519-private", true},
		{"spki rsa", []*pem.Block{{Type: "PUBLIC KEY", Bytes: spki(&rk.PublicKey)}}, "rsa-public", false},
		{"pkcs1 rsa public", []*pem.Block{{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rk.PublicKey)}}, "rsa-public", false},
		{"spki ed25519", []*pem.Block{{Type: "PUBLIC KEY", Bytes: spki(edPub)}}, "ed25519-public", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, c.name+".pem")
			var data []byte
			for _, b := range c.blocks {
				data = append(data, pem.EncodeToMemory(b)...)
			}
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			k, err := ReadPEMKey(path)
			if err != nil {
				t.Fatal(err)
			}
			if k.KeyTypeClass() != c.class || k.Private != c.private {
				t.Errorf("got %s private=%v", k.KeyTypeClass(), k.Private)
			}
			if c.private {
				if _, err := x509.ParsePKCS8PrivateKey(k.DER); err != nil {
					t.Errorf("DER is not PKCS #8: %v", err)
				}
				if _, err := k.Signer(); err != nil {
					t.Error(err)
				}
			} else {
				if _, err := x509.ParsePKIXPublicKey(k.DER); err != nil {
					t.Errorf("DER is not SPKI: %v", err)
				}
				if _, err := k.Signer(); err == nil {
					t.Error("a public key signs")
				}
			}
			if k.Public() == nil {
				t.Error("no public key")
			}
		})
	}
	notPEM := filepath.Join(dir, "text")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPEMKey(notPEM); err == nil {
		t.Error("text read as a key")
	}
}
