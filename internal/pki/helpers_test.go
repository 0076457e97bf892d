package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"
)

// The tests' "now": an hour after the real time, so that certificates made
// during the test (valid from the real now, as openssl makes them) are
// valid at it. Certificates are checked at chosen instants around it.
var (
	testNow  = time.Now().Add(time.Hour).Truncate(time.Second)
	yearFrom = func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }
	loopback = []net.IP{net.IPv4(127, 0, 0, 1)}
)

func clockAt(t time.Time) func() time.Time { return func() time.Time { return t } }

// testCA is a customer CA.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newTestCA(t testing.TB, name string) testCA {
	t.Helper()
	cert, key, err := NewCustomerCA(name, testNow.AddDate(10, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	return testCA{cert, key}
}

func (ca testCA) pem() []byte { return EncodeCertificatesPEM(ca.cert) }

// testCluster is an initialized cluster.
type testCluster struct {
	id    string
	key   crypto.Signer
	csr   []byte
	certs *ClusterCertificates
}

// newTestCluster makes a cluster key and CSR and has ca sign it with SignCSR.
func newTestCluster(t testing.TB, ca testCA, id string) testCluster {
	t.Helper()
	key, err := NewClusterKey()
	if err != nil {
		t.Fatal(err)
	}
	return initCluster(t, ca, id, key)
}

func initCluster(t testing.TB, ca testCA, id string, key crypto.Signer) testCluster {
	t.Helper()
	csr, err := NewClusterCSR(key, id)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := SignCSR(ca.cert, ca.key, csr, testNow.AddDate(5, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := VerifyClusterCertificate(csr, signed, ca.pem(), testNow)
	if err != nil {
		t.Fatal(err)
	}
	return testCluster{id: id, key: key, csr: csr, certs: cc}
}

// node issues a node certificate for hsmID on ips, valid for a year.
func (c testCluster) node(t testing.TB, hsmID string, ips ...net.IP) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key, err := NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := IssueNodeCert(c.key, c.certs.Certificate, NodeCertRequest{
		HsmID: hsmID, PublicKey: key.Public(), IPs: ips,
		NotBefore: testNow.Add(-time.Hour), NotAfter: yearFrom(testNow),
	})
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// tlsCert is the node's TLS credential with the cluster chain.
func (c testCluster) tlsCert(t testing.TB, hsmID string, ips ...net.IP) tls.Certificate {
	t.Helper()
	cert, key := c.node(t, hsmID, ips...)
	tc, err := NodeTLSCertificate(key, cert, c.certs.Chain())
	if err != nil {
		t.Fatal(err)
	}
	return tc
}

// clientTrust is what a cluster client knows: the anchor and the cluster id.
func (c testCluster) clientTrust(now time.Time) Trust {
	return Trust{TrustAnchor: c.certs.TrustAnchor, ClusterID: c.id, Now: clockAt(now)}
}

// mustCert signs tmpl under parent (nil: self-signed) with signer.
func mustCert(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// v1Cert makes a version 1 certificate (no extensions), as OpenSSL 3.0's
// `x509 -req` does: Go only writes v3, so the v3 TBSCertificate is
// rewritten without its version and extensions and signed again with
// SHA-256 (PKCS#1 v1.5 for RSA, ECDSA otherwise).
func v1Cert(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	v3 := mustCert(t, tmpl, parent, pub, signer)
	var tbs struct {
		Version    int `asn1:"optional,explicit,default:0,tag:0"`
		Serial     *big.Int
		SigAlg     pkix.AlgorithmIdentifier
		Issuer     asn1.RawValue
		Validity   asn1.RawValue
		Subject    asn1.RawValue
		PublicKey  asn1.RawValue
		Extensions asn1.RawValue `asn1:"optional,explicit,tag:3"`
	}
	if _, err := asn1.Unmarshal(v3.RawTBSCertificate, &tbs); err != nil {
		t.Fatal(err)
	}
	v1 := struct {
		Serial    *big.Int
		SigAlg    pkix.AlgorithmIdentifier
		Issuer    asn1.RawValue
		Validity  asn1.RawValue
		Subject   asn1.RawValue
		PublicKey asn1.RawValue
	}{tbs.Serial, tbs.SigAlg, tbs.Issuer, tbs.Validity, tbs.Subject, tbs.PublicKey}
	tbsDER, err := asn1.Marshal(v1)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(tbsDER)
	switch signer.(type) {
	case *rsa.PrivateKey, *ecdsa.PrivateKey:
	default:
		t.Fatalf("v1Cert: unsupported signer %T", signer)
	}
	sig, err := signer.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	der, err := asn1.Marshal(struct {
		TBS    asn1.RawValue
		SigAlg pkix.AlgorithmIdentifier
		Sig    asn1.BitString
	}{asn1.RawValue{FullBytes: tbsDER}, tbs.SigAlg, asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if c.Version != 1 || c.BasicConstraintsValid {
		t.Fatalf("v1Cert: got version %d, basic constraints %v", c.Version, c.BasicConstraintsValid)
	}
	return c
}

// wantReason fails t unless err is an *Error with reason want (want nil:
// err must be nil).
func wantReason(t testing.TB, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("got no error, want %v", want)
	}
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *pki.Error", err, err)
	}
	if !errors.Is(err, want) {
		t.Fatalf("got %v, want reason %v", err, want)
	}
	t.Logf("refused as expected: %v", err)
}
