package pki

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"testing"
)

func TestDecodeCertificatesPEM(t *testing.T) {
	ca := newTestCA(t, "PEM CA")
	other := newTestCA(t, "Other CA")
	one := ca.pem()
	two := EncodeCertificatesPEM(ca.cert, other.cert)
	key, _ := EncodePrivateKeyPEM(ca.key)
	block := func(typ string, b []byte, h map[string]string) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b, Headers: h})
	}
	tests := []struct {
		name  string
		in    []byte
		want  error
		count int
	}{
		{"one", one, nil, 1},
		{"two in order", two, nil, 2},
		{"text around, as openssl x509 -text prints", append(append([]byte("Certificate:\n  Data: ...\n"), one...), "trailer\n"...), nil, 1},
		{"empty", nil, ErrNoPEM, 0},
		{"not PEM", []byte("hello"), ErrNoPEM, 0},
		{"DER, not PEM", ca.cert.Raw, ErrNoPEM, 0},
		{"a key", key, ErrPEMType, 0},
		{"a key after a cert", append(append([]byte{}, one...), key...), ErrPEMType, 0},
		{"garbage DER", block("CERTIFICATE", []byte{0x30, 0x03, 1, 2, 3}, nil), ErrMalformedCertificate, 0},
		{"encrypted", block("CERTIFICATE", ca.cert.Raw, map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00"}), ErrPEMEncrypted, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certs, err := DecodeCertificatesPEM(tt.in, "test input")
			wantReason(t, err, tt.want)
			if len(certs) != tt.count {
				t.Fatalf("got %d certificates, want %d", len(certs), tt.count)
			}
			if tt.name == "two in order" && !bytes.Equal(EncodeCertificatesPEM(certs...), tt.in) {
				t.Fatal("re-encoding differs")
			}
		})
	}
	t.Run("exactly one", func(t *testing.T) {
		if _, err := DecodeCertificatePEM(one, "anchor"); err != nil {
			t.Fatal(err)
		}
		_, err := DecodeCertificatePEM(two, "anchor")
		wantReason(t, err, ErrPEMCount)
	})
}

func TestDecodeCSRPEM(t *testing.T) {
	key := mustKey(t)
	csrPEM, err := NewClusterCSR(key, "cluster-pem")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(csrPEM)
	tampered := bytes.Clone(b.Bytes)
	tampered[len(tampered)-5] ^= 1 // inside the signature
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"ok", csrPEM, nil},
		{"legacy NEW CERTIFICATE REQUEST", pem.EncodeToMemory(&pem.Block{Type: "NEW CERTIFICATE REQUEST", Bytes: b.Bytes}), nil},
		{"empty", nil, ErrNoPEM},
		{"two", append(append([]byte{}, csrPEM...), csrPEM...), ErrPEMCount},
		{"a certificate", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b.Bytes}), ErrPEMType},
		{"garbage", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte{1, 2, 3}}), ErrMalformedCSR},
		{"bad signature", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: tampered}), ErrCSRSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			csr, err := DecodeCSRPEM(tt.in)
			wantReason(t, err, tt.want)
			if err == nil && !samePublicKey(csr.PublicKey, key.Public()) {
				t.Fatal("CSR key is not the cluster key")
			}
		})
	}
}

func TestPrivateKeyPEM(t *testing.T) {
	ec := mustKey(t)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sec1, _ := x509.MarshalECPrivateKey(ec)
	for _, k := range []crypto.Signer{ec, rk, ed} {
		t.Run("pkcs8 round trip", func(t *testing.T) {
			p, err := EncodePrivateKeyPEM(k)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodePrivateKeyPEM(p)
			if err != nil {
				t.Fatal(err)
			}
			if !samePublicKey(got.Public(), k.Public()) {
				t.Fatalf("%T: decoded key differs", k)
			}
		})
	}
	ecParams := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}})
	tests := []struct {
		name string
		in   []byte
		want error
		pub  crypto.PublicKey
	}{
		{"PKCS#1", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}), nil, rk.Public()},
		{"SEC 1", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), nil, ec.Public()},
		{"SEC 1 after EC PARAMETERS", append(ecParams, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})...), nil, ec.Public()},
		{"empty", nil, ErrNoPEM, nil},
		{"a certificate", newTestCA(t, "x").pem(), ErrPEMType, nil},
		{"garbage", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}), ErrMalformedKey, nil},
		{"SEC 1 in a PKCS#1 block", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: sec1}), ErrMalformedKey, nil},
		{"encrypted", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte{1}, Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}}), ErrPEMEncrypted, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodePrivateKeyPEM(tt.in)
			wantReason(t, err, tt.want)
			if tt.pub != nil && !samePublicKey(got.Public(), tt.pub) {
				t.Fatal("decoded key differs")
			}
		})
	}
}

// FuzzDecodeCertificatesPEM: no panic, and whatever decodes re-encodes to
// PEM that decodes to the same certificates.
func FuzzDecodeCertificatesPEM(f *testing.F) {
	ca := newTestCA(f, "Fuzz CA")
	f.Add(ca.pem())
	f.Add(append([]byte("text\n"), ca.pem()...))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := DecodeCertificatesPEM(data, "fuzz")
		if err != nil {
			if len(certs) != 0 {
				t.Fatal("certificates returned with an error")
			}
			return
		}
		again, err := DecodeCertificatesPEM(EncodeCertificatesPEM(certs...), "fuzz")
		if err != nil {
			t.Fatal(err)
		}
		if len(again) != len(certs) {
			t.Fatalf("%d certificates, then %d", len(certs), len(again))
		}
		for i := range certs {
			if !bytes.Equal(again[i].Raw, certs[i].Raw) {
				t.Fatalf("certificate %d changed", i)
			}
		}
	})
}
