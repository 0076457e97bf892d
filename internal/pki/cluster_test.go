package pki

import (
	"crypto"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"net"
	"slices"
	"testing"
	"time"
)

func TestNewClusterCSR(t *testing.T) {
	ec, err := NewClusterKey()
	if err != nil {
		t.Fatal(err)
	}
	if ec.Curve != elliptic.P256() {
		t.Fatalf("cluster key curve %s, want P-256", ec.Curve.Params().Name)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		key  crypto.Signer
	}{{"ECDSA P-256", ec}, {"RSA-2048", rk}} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewClusterCSR(tt.key, "cluster-csr1")
			if err != nil {
				t.Fatal(err)
			}
			csr, err := DecodeCSRPEM(p)
			if err != nil {
				t.Fatal(err)
			}
			if csr.Subject.CommonName != "cluster-csr1" || !slices.Equal(csr.Subject.Organization, []string{"Coffer"}) {
				t.Fatalf("subject %s", csr.Subject)
			}
			if !samePublicKey(csr.PublicKey, tt.key.Public()) {
				t.Fatal("CSR key is not the cluster key")
			}
		})
	}
	t.Run("refusals", func(t *testing.T) {
		_, err := NewClusterCSR(ec, "cluster 1")
		wantReason(t, err, ErrInvalidID)
		_, err = NewClusterCSR(nil, "cluster-1")
		wantReason(t, err, ErrConfig)
	})
}

func TestHsmCertificate(t *testing.T) {
	key := mustKey(t)
	csrPEM, err := NewClusterCSR(key, "cluster-h1")
	if err != nil {
		t.Fatal(err)
	}
	csr, err := DecodeCSRPEM(csrPEM)
	if err != nil {
		t.Fatal(err)
	}
	hsm, err := NewHsmCertificate(key, "cluster-h1", "hsm-a1", testNow, yearFrom(testNow))
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckHsmCertificate(hsm, csr); err != nil {
		t.Fatal(err)
	}
	if hsm.IsCA || !hsm.BasicConstraintsValid || hsm.Subject.CommonName != "hsm-a1" {
		t.Fatalf("HSM certificate: CA %v, subject %s", hsm.IsCA, hsm.Subject)
	}
	id, err := nodeIdentity(hsm, "hsm")
	if err != nil || id.ClusterID != "cluster-h1" || id.HsmID != "hsm-a1" {
		t.Fatalf("identity %+v, %v", id, err)
	}

	otherCSR, _ := NewClusterCSR(mustKey(t), "cluster-h1")
	other, _ := DecodeCSRPEM(otherCSR)
	wantReason(t, CheckHsmCertificate(hsm, other), ErrKeyMismatch)

	// Claims the cluster key, signed by another key.
	forged := mustCert(t, &x509.Certificate{Subject: hsm.Subject, NotBefore: testNow, NotAfter: yearFrom(testNow)},
		&x509.Certificate{Subject: hsm.Subject}, key.Public(), mustKey(t))
	wantReason(t, CheckHsmCertificate(forged, csr), ErrNotIssued)

	_, err = NewHsmCertificate(key, "cluster-h1", "hsm-a1", testNow, testNow)
	wantReason(t, err, ErrConfig)
	_, err = NewHsmCertificate(key, "cluster-h1", "hsm/a1", testNow, yearFrom(testNow))
	wantReason(t, err, ErrInvalidID)
}

func TestIssueNodeCert(t *testing.T) {
	ca := newTestCA(t, "Issue CA")
	c := newTestCluster(t, ca, "cluster-n1")
	nodeKey := mustKey(t)
	ok := NodeCertRequest{
		HsmID: "hsm-n1", PublicKey: nodeKey.Public(),
		IPs: []net.IP{net.IPv4(127, 0, 0, 11)}, DNSNames: []string{"hsm-n1.local"},
		NotBefore: testNow, NotAfter: yearFrom(testNow),
	}

	t.Run("contents", func(t *testing.T) {
		cert, err := IssueNodeCert(c.key, c.certs.Certificate, ok)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
			t.Fatalf("EKU %v", cert.ExtKeyUsage)
		}
		if cert.IsCA || !cert.BasicConstraintsValid {
			t.Fatal("node certificate is a CA")
		}
		if len(cert.URIs) != 1 || cert.URIs[0].String() != "coffer://cluster/cluster-n1/hsm/hsm-n1" {
			t.Fatalf("URIs %v", cert.URIs)
		}
		if cert.Subject.CommonName != "hsm-n1" || cert.Issuer.String() != c.certs.Certificate.Subject.String() {
			t.Fatalf("subject %s issuer %s", cert.Subject, cert.Issuer)
		}
		if err := cert.VerifyHostname("127.0.0.11"); err != nil {
			t.Fatal(err)
		}
		if err := cert.VerifyHostname("hsm-n1.local"); err != nil {
			t.Fatal(err)
		}
		// Go's own verifier refuses the chain: the SignCSR cluster
		// certificate is v3 without BasicConstraints.
		roots := x509.NewCertPool()
		roots.AddCert(ca.cert)
		inter := x509.NewCertPool()
		inter.AddCert(c.certs.Certificate)
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: testNow}); err == nil {
			t.Fatal("x509.Verify accepted a non-CA issuer; the package comment is wrong")
		} else {
			t.Logf("x509.Verify refuses, as documented: %v", err)
		}
	})

	t.Run("validity clamped to the cluster certificate", func(t *testing.T) {
		r := ok
		r.NotBefore = testNow.AddDate(-1, 0, 0)
		r.NotAfter = testNow.AddDate(50, 0, 0)
		cert, err := IssueNodeCert(c.key, c.certs.Certificate, r)
		if err != nil {
			t.Fatal(err)
		}
		if !cert.NotAfter.Equal(c.certs.Certificate.NotAfter) || !cert.NotBefore.Equal(c.certs.Certificate.NotBefore) {
			t.Fatalf("validity %s to %s, cluster %s to %s", cert.NotBefore, cert.NotAfter, c.certs.Certificate.NotBefore, c.certs.Certificate.NotAfter)
		}
	})

	other := newTestCluster(t, ca, "cluster-n2")
	tests := []struct {
		name   string
		key    crypto.Signer
		cert   *x509.Certificate
		mutate func(*NodeCertRequest)
		want   error
	}{
		{"cluster key is not the certificate's", other.key, c.certs.Certificate, nil, ErrWrongKey},
		{"nil cluster certificate", c.key, nil, nil, ErrConfig},
		{"node key is the cluster key", c.key, c.certs.Certificate, func(r *NodeCertRequest) { r.PublicKey = c.key.Public() }, ErrConfig},
		{"no node key", c.key, c.certs.Certificate, func(r *NodeCertRequest) { r.PublicKey = nil }, ErrConfig},
		{"bad HSM id", c.key, c.certs.Certificate, func(r *NodeCertRequest) { r.HsmID = "hsm/1" }, ErrInvalidID},
		{"no address", c.key, c.certs.Certificate, func(r *NodeCertRequest) { r.IPs, r.DNSNames = nil, nil }, ErrConfig},
		{"empty validity", c.key, c.certs.Certificate, func(r *NodeCertRequest) { r.NotAfter = r.NotBefore }, ErrConfig},
		{"after the cluster certificate", c.key, c.certs.Certificate, func(r *NodeCertRequest) {
			r.NotBefore = c.certs.Certificate.NotAfter.Add(time.Hour)
			r.NotAfter = r.NotBefore.Add(time.Hour)
		}, ErrConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok
			if tt.mutate != nil {
				tt.mutate(&r)
			}
			_, err := IssueNodeCert(tt.key, tt.cert, r)
			wantReason(t, err, tt.want)
		})
	}

	t.Run("NodeTLSCertificate", func(t *testing.T) {
		cert, err := IssueNodeCert(c.key, c.certs.Certificate, ok)
		if err != nil {
			t.Fatal(err)
		}
		tc, err := NodeTLSCertificate(nodeKey, cert, c.certs.Chain())
		if err != nil {
			t.Fatal(err)
		}
		if len(tc.Certificate) != 2 || tc.Leaf != cert {
			t.Fatalf("chain of %d", len(tc.Certificate))
		}
		_, err = NodeTLSCertificate(mustKey(t), cert, nil)
		wantReason(t, err, ErrWrongKey)
	})
}

func TestCustomerCA(t *testing.T) {
	ca := newTestCA(t, "Customer CA")
	if !ca.cert.IsCA || ca.cert.KeyUsage&x509.KeyUsageCertSign == 0 || checkCA(ca.cert) != nil {
		t.Fatal("customer CA is not a CA")
	}
	if _, ok := ca.key.(*rsa.PrivateKey); !ok {
		t.Fatalf("customer CA key %T, want RSA", ca.key)
	}
	csr, err := NewClusterCSR(mustKey(t), "cluster-ca1")
	if err != nil {
		t.Fatal(err)
	}
	signed, err := SignCSR(ca.cert, ca.key, csr, yearFrom(testNow))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := DecodeCertificatePEM(signed, "signed")
	if err != nil {
		t.Fatal(err)
	}
	if cert.BasicConstraintsValid || cert.Version != 3 || len(cert.ExtKeyUsage) != 0 {
		t.Fatalf("SignCSR made version %d, basic constraints %v, EKU %v", cert.Version, cert.BasicConstraintsValid, cert.ExtKeyUsage)
	}
	t.Run("refusals", func(t *testing.T) {
		other := newTestCA(t, "Other")
		_, err := SignCSR(ca.cert, other.key, csr, yearFrom(testNow))
		wantReason(t, err, ErrWrongKey)
		_, err = SignCSR(cert, ca.key, csr, yearFrom(testNow))
		wantReason(t, err, ErrAnchorNotCA)
		_, err = SignCSR(ca.cert, ca.key, []byte("nope"), yearFrom(testNow))
		wantReason(t, err, ErrNoPEM)
		_, err = SignCSR(ca.cert, ca.key, csr, testNow.Add(-time.Hour))
		wantReason(t, err, ErrConfig)
		_, _, err = NewCustomerCA("", yearFrom(testNow))
		wantReason(t, err, ErrConfig)
	})
}
