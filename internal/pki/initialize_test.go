package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
	"time"
)

// clusterTmpl is a certificate template for the CSR's subject, valid for a
// year around testNow.
func clusterTmpl(t testing.TB, csrPEM []byte) *x509.Certificate {
	t.Helper()
	csr, err := DecodeCSRPEM(csrPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &x509.Certificate{RawSubject: csr.RawSubject, NotBefore: testNow.Add(-time.Hour), NotAfter: yearFrom(testNow)}
}

func caTmpl(name string) *x509.Certificate {
	return &x509.Certificate{
		Subject: pkix.Name{CommonName: name}, NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.AddDate(10, 0, 0),
		BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign,
	}
}

func TestVerifyClusterCertificate(t *testing.T) {
	ca := newTestCA(t, "Customer CA")
	otherCA := newTestCA(t, "Other CA")
	key := mustKey(t)
	csr, err := NewClusterCSR(key, "cluster-i1")
	if err != nil {
		t.Fatal(err)
	}
	signed, err := SignCSR(ca.cert, ca.key, csr, yearFrom(testNow))
	if err != nil {
		t.Fatal(err)
	}
	sign := func(tmpl *x509.Certificate, parent *x509.Certificate, pub crypto.PublicKey, by crypto.Signer) []byte {
		return EncodeCertificatesPEM(mustCert(t, tmpl, parent, pub, by))
	}
	with := func(f func(*x509.Certificate)) *x509.Certificate {
		tmpl := clusterTmpl(t, csr)
		f(tmpl)
		return tmpl
	}

	// A customer intermediate CA.
	interKey := mustKey(t)
	inter := mustCert(t, caTmpl("Customer Issuing CA"), ca.cert, interKey.Public(), ca.key)
	viaInter := mustCert(t, clusterTmpl(t, csr), inter, key.Public(), interKey)

	// Version 1 certificates, as OpenSSL 3.0 makes them.
	v1Key := mustKey(t)
	v1Root := v1Cert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "V1 Root"}, NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.AddDate(10, 0, 0)},
		&x509.Certificate{Subject: pkix.Name{CommonName: "V1 Root"}}, v1Key.Public(), v1Key)
	v1Cluster := v1Cert(t, clusterTmpl(t, csr), v1Root, key.Public(), v1Key)
	v1ByCA := v1Cert(t, clusterTmpl(t, csr), ca.cert, key.Public(), ca.key)
	v1NotSelfSigned := v1Cert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "V1 Sub"}, NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.AddDate(10, 0, 0)},
		v1Root, mustKey(t).Public(), v1Key)

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaCSR, err := NewClusterCSR(rsaKey, "cluster-i1")
	if err != nil {
		t.Fatal(err)
	}
	rsaSigned, err := SignCSR(ca.cert, ca.key, rsaCSR, yearFrom(testNow))
	if err != nil {
		t.Fatal(err)
	}

	otherCSR, _ := NewClusterCSR(mustKey(t), "cluster-i1")
	otherSigned, _ := SignCSR(ca.cert, ca.key, otherCSR, yearFrom(testNow))
	anchorKey := mustKey(t)
	anchorKeyPEM, _ := EncodePrivateKeyPEM(anchorKey)
	eeAnchor := mustCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "EE"}, NotBefore: testNow.Add(-time.Hour), NotAfter: yearFrom(testNow), BasicConstraintsValid: true},
		nil, anchorKey.Public(), anchorKey)
	noBCAnchor := mustCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "NoBC"}, NotBefore: testNow.Add(-time.Hour), NotAfter: yearFrom(testNow)},
		nil, anchorKey.Public(), anchorKey)
	noCertSign := caTmpl("No certSign")
	noCertSign.KeyUsage = x509.KeyUsageDigitalSignature
	noCertSignAnchor := mustCert(t, noCertSign, nil, anchorKey.Public(), anchorKey)
	shortCA := caTmpl("Short-lived CA")
	shortCA.NotAfter = testNow.Add(2 * time.Hour)
	shortAnchor := mustCert(t, shortCA, nil, anchorKey.Public(), anchorKey)
	underShort := sign(clusterTmpl(t, csr), shortAnchor, key.Public(), anchorKey)

	cat := func(p ...[]byte) []byte {
		var out []byte
		for _, b := range p {
			out = append(out, b...)
		}
		return out
	}
	tests := []struct {
		name                string
		csr, signed, anchor []byte
		now                 time.Time
		want                error
	}{
		{"SignCSR: v3 without basic constraints", csr, signed, ca.pem(), testNow, nil},
		{"v1, as openssl 3.0 x509 -req", csr, EncodeCertificatesPEM(v1ByCA), ca.pem(), testNow, nil},
		{"v1 cluster under a v1 root", csr, EncodeCertificatesPEM(v1Cluster), EncodeCertificatesPEM(v1Root), testNow, nil},
		{"CA:TRUE, as with -extfile v3_ca", csr, sign(with(func(c *x509.Certificate) { c.BasicConstraintsValid, c.IsCA = true, true }), ca.cert, key.Public(), ca.key), ca.pem(), testNow, nil},
		{"CA:FALSE end-entity profile", csr, sign(with(func(c *x509.Certificate) {
			c.BasicConstraintsValid, c.KeyUsage = true, x509.KeyUsageDigitalSignature
		}), ca.cert, key.Public(), ca.key), ca.pem(), testNow, nil},
		{"through an intermediate", csr, EncodeCertificatesPEM(viaInter, inter), ca.pem(), testNow, nil},
		{"through an intermediate, anchor included", csr, EncodeCertificatesPEM(viaInter, inter, ca.cert), ca.pem(), testNow, nil},
		{"RSA-2048 cluster key", rsaCSR, rsaSigned, ca.pem(), testNow, nil},

		{"CSR not PEM", []byte("x"), signed, ca.pem(), testNow, ErrNoPEM},
		{"signed cert empty", csr, nil, ca.pem(), testNow, ErrNoPEM},
		{"signed cert is a key", csr, anchorKeyPEM, ca.pem(), testNow, ErrPEMType},
		{"signed cert is the CSR", csr, csr, ca.pem(), testNow, ErrPEMType},
		{"anchor empty", csr, signed, nil, testNow, ErrNoPEM},
		{"anchor is two certificates", csr, signed, cat(ca.pem(), otherCA.pem()), testNow, ErrPEMCount},
		{"anchor is CA:FALSE", csr, signed, EncodeCertificatesPEM(eeAnchor), testNow, ErrAnchorNotCA},
		{"anchor is v3 without basic constraints", csr, signed, EncodeCertificatesPEM(noBCAnchor), testNow, ErrAnchorNotCA},
		{"anchor is v1 but not self-signed", csr, signed, EncodeCertificatesPEM(v1NotSelfSigned), testNow, ErrAnchorNotCA},
		{"anchor key usage lacks certSign", csr, signed, EncodeCertificatesPEM(noCertSignAnchor), testNow, ErrAnchorNotCA},
		{"certificate for another key", csr, otherSigned, ca.pem(), testNow, ErrKeyMismatch},
		{"subject renamed", csr, sign(&x509.Certificate{Subject: pkix.Name{CommonName: "cluster-i2"}, NotBefore: testNow, NotAfter: yearFrom(testNow)},
			ca.cert, key.Public(), ca.key), ca.pem(), testNow, ErrSubjectMismatch},
		{"subject is not a cluster id", csr, sign(&x509.Certificate{Subject: pkix.Name{CommonName: "My HSM cluster"}, NotBefore: testNow, NotAfter: yearFrom(testNow)},
			ca.cert, key.Public(), ca.key), ca.pem(), testNow, ErrSubjectMismatch},
		{"wrong anchor", csr, signed, otherCA.pem(), testNow, ErrNotChained},
		{"intermediate missing", csr, EncodeCertificatesPEM(viaInter), ca.pem(), testNow, ErrNotChained},
		{"self-signed by the cluster key", csr, sign(clusterTmpl(t, csr), nil, key.Public(), key), ca.pem(), testNow, ErrNotChained},
		{"expired", csr, signed, ca.pem(), yearFrom(testNow).Add(time.Second), ErrExpired},
		{"not yet valid", csr, signed, ca.pem(), testNow.AddDate(-1, 0, 0), ErrExpired},
		{"anchor expired", csr, underShort, EncodeCertificatesPEM(shortAnchor), testNow.Add(3 * time.Hour), ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc, err := VerifyClusterCertificate(tt.csr, tt.signed, tt.anchor, tt.now)
			wantReason(t, err, tt.want)
			if err != nil {
				if cc != nil {
					t.Fatal("result with an error")
				}
				return
			}
			if cc.ClusterID != "cluster-i1" || cc.TrustAnchor == nil || cc.Certificate == nil {
				t.Fatalf("result %+v", cc)
			}
			if got := cc.Chain(); len(got) != 1+len(cc.Intermediates) || got[0] != cc.Certificate {
				t.Fatalf("chain of %d", len(got))
			}
		})
	}
}

func TestCheckCAAcceptsV1SelfSigned(t *testing.T) {
	k := mustKey(t)
	root := v1Cert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "R"}, NotBefore: testNow, NotAfter: yearFrom(testNow)},
		&x509.Certificate{Subject: pkix.Name{CommonName: "R"}}, k.Public(), k)
	if err := checkCA(root); err != nil {
		t.Fatal(err)
	}
	// Go's CheckSignatureFrom agrees that a v1 parent may sign.
	child := mustCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "C"}, NotBefore: testNow, NotAfter: yearFrom(testNow)}, root, mustKey(t).Public(), k)
	if err := child.CheckSignatureFrom(root); err != nil {
		t.Fatal(err)
	}
}
