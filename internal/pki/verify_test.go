package pki

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"net/url"
	"testing"
	"time"
)

// nodeTmpl is what IssueNodeCert makes, for tests to alter.
func nodeTmpl(clusterID, hsmID string) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: hsmID},
		NotBefore:             testNow.Add(-time.Hour),
		NotAfter:              yearFrom(testNow),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IPAddresses:           loopback,
		URIs:                  []*url.URL{{Scheme: "coffer", Host: "cluster", Path: "/" + clusterID + "/hsm/" + hsmID}},
	}
}

func TestVerifyNode(t *testing.T) {
	ca := newTestCA(t, "Customer CA")
	attackerCA := newTestCA(t, "Attacker CA")
	a := newTestCluster(t, ca, "cluster-a")
	b := newTestCluster(t, ca, "cluster-b") // same customer, same anchor
	nodeA, _ := a.node(t, "hsm-a1", loopback...)
	nodeB, _ := b.node(t, "hsm-b1", loopback...)
	clusterA, clusterB := a.certs.Certificate, b.certs.Certificate

	// mk signs an altered node template under parent with signer.
	mk := func(f func(*x509.Certificate), parent *x509.Certificate, signer crypto.Signer) *x509.Certificate {
		tmpl := nodeTmpl("cluster-a", "hsm-x")
		if f != nil {
			f(tmpl)
		}
		return mustCert(t, tmpl, parent, mustKey(t).Public(), signer)
	}
	good := func(f func(*x509.Certificate)) *x509.Certificate { return mk(f, clusterA, a.key) }

	// An end-entity certificate the customer's CA issued to someone else (a
	// web server), and a node certificate that someone mints with it.
	webKey := mustKey(t)
	web := mustCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "www.example.com"}, NotBefore: testNow.Add(-time.Hour), NotAfter: yearFrom(testNow)},
		ca.cert, webKey.Public(), ca.key)
	byWeb := mk(nil, web, webKey)
	// An attacker's certificate with the cluster's exact subject, under the
	// attacker's CA, and a node certificate under it.
	impKey := mustKey(t)
	imposter := mustCert(t, &x509.Certificate{RawSubject: clusterA.RawSubject, NotBefore: testNow.Add(-time.Hour), NotAfter: yearFrom(testNow)},
		attackerCA.cert, impKey.Public(), attackerCA.key)
	byImposter := mk(nil, imposter, impKey)
	// Cluster B's key signing a node certificate that claims cluster A.
	byB := mk(nil, clusterB, b.key)
	// A cluster certificate that expires before its node certificate.
	shortCSR, _ := NewClusterCSR(a.key, "cluster-a")
	shortTmpl := clusterTmpl(t, shortCSR)
	shortTmpl.NotAfter = testNow.Add(time.Hour)
	shortCluster := mustCert(t, shortTmpl, ca.cert, a.key.Public(), ca.key)
	underShort := mk(nil, shortCluster, a.key)
	// Through a customer intermediate CA.
	interKey := mustKey(t)
	inter := mustCert(t, caTmpl("Issuing CA"), ca.cert, interKey.Public(), ca.key)
	interCSR, _ := NewClusterCSR(a.key, "cluster-a")
	viaInter := mustCert(t, clusterTmpl(t, interCSR), inter, a.key.Public(), interKey)
	underInter := mk(nil, viaInter, a.key)

	client := a.clientTrust(testNow)
	pinned := a.certs.Trust(clockAt(testNow))
	at := func(tr Trust, now time.Time) Trust { tr.Now = clockAt(now); return tr }
	pinInter := Trust{TrustAnchor: ca.cert, ClusterID: "cluster-a", ClusterCert: viaInter, Intermediates: []*x509.Certificate{inter}, Now: clockAt(testNow)}

	serverAuth, clientAuth := x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth
	const host = "127.0.0.1"
	type chain = []*x509.Certificate
	tests := []struct {
		name   string
		trust  Trust
		chain  chain
		usage  x509.ExtKeyUsage
		host   string
		want   error
		wantID string
	}{
		{"client: node, cluster cert", client, chain{nodeA, clusterA}, serverAuth, host, nil, "hsm-a1"},
		{"client: as a client certificate", client, chain{nodeA, clusterA}, clientAuth, "", nil, "hsm-a1"},
		{"pinned: node only", pinned, chain{nodeA}, serverAuth, host, nil, "hsm-a1"},
		{"pinned: sent cluster cert ignored", pinned, chain{nodeA, clusterB}, serverAuth, host, nil, "hsm-a1"},
		{"client: through an intermediate", client, chain{underInter, viaInter, inter}, serverAuth, host, nil, "hsm-x"},
		{"pinned: through an intermediate", pinInter, chain{underInter}, serverAuth, host, nil, "hsm-x"},
		{"other coffer URIs ignored", client, chain{good(func(c *x509.Certificate) {
			c.URIs = append(c.URIs, &url.URL{Scheme: "spiffe", Host: "example.org", Path: "/x"})
		}), clusterA}, serverAuth, host, nil, "hsm-x"},

		{"nothing sent", client, nil, serverAuth, host, ErrNoPeerCertificate, ""},
		{"client: no cluster certificate sent", client, chain{nodeA}, serverAuth, host, ErrNoClusterCertificate, ""},
		{"client: node of another cluster", client, chain{nodeB, clusterB}, serverAuth, host, ErrWrongCluster, ""},
		{"pinned: node of another cluster", pinned, chain{nodeB, clusterB}, serverAuth, host, ErrWrongCluster, ""},
		{"client: cluster B's key claims cluster A", client, chain{byB, clusterB}, serverAuth, host, ErrWrongCluster, ""},
		{"pinned: cluster B's key claims cluster A", pinned, chain{byB}, serverAuth, host, ErrNotIssued, ""},
		{"client: minted by a web server certificate of the same CA", client, chain{byWeb, web}, serverAuth, host, ErrWrongCluster, ""},
		{"client: imposter cluster cert under another CA", client, chain{byImposter, imposter}, serverAuth, host, ErrNotChained, ""},
		{"pinned: same issuer name, another key", pinned, chain{byImposter}, serverAuth, host, ErrNotIssued, ""},
		{"client: node cert sent as its own cluster cert", client, chain{nodeA, nodeA}, serverAuth, host, ErrWrongCluster, ""},
		{"wrong anchor", at(Trust{TrustAnchor: attackerCA.cert, ClusterID: "cluster-a"}, testNow), chain{nodeA, clusterA}, serverAuth, host, ErrNotChained, ""},
		{"client: intermediate not sent", client, chain{underInter, viaInter}, serverAuth, host, ErrNotChained, ""},
		{"node expired", at(client, nodeA.NotAfter.Add(time.Second)), chain{nodeA, clusterA}, serverAuth, host, ErrExpired, ""},
		{"node not yet valid", at(client, nodeA.NotBefore.Add(-time.Second)), chain{nodeA, clusterA}, serverAuth, host, ErrExpired, ""},
		{"cluster certificate expired", at(client, testNow.Add(2*time.Hour)), chain{underShort, shortCluster}, serverAuth, host, ErrExpired, ""},
		{"only serverAuth, used as client", client, chain{good(func(c *x509.Certificate) {
			c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		}), clusterA}, clientAuth, "", ErrExtKeyUsage, ""},
		{"no EKU", client, chain{good(func(c *x509.Certificate) { c.ExtKeyUsage = nil }), clusterA}, serverAuth, host, ErrExtKeyUsage, ""},
		{"any EKU is not enough", client, chain{good(func(c *x509.Certificate) {
			c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageAny}
		}), clusterA}, serverAuth, host, ErrExtKeyUsage, ""},
		{"node is a CA", client, chain{good(func(c *x509.Certificate) { c.IsCA = true }), clusterA}, serverAuth, host, ErrNodeIsCA, ""},
		{"no URI", client, chain{good(func(c *x509.Certificate) { c.URIs = nil }), clusterA}, serverAuth, host, ErrNoNodeIdentity, ""},
		{"two coffer URIs", client, chain{good(func(c *x509.Certificate) { c.URIs = append(c.URIs, c.URIs[0]) }), clusterA}, serverAuth, host, ErrNoNodeIdentity, ""},
		{"malformed coffer URI", client, chain{good(func(c *x509.Certificate) {
			c.URIs = []*url.URL{{Scheme: "coffer", Host: "cluster", Path: "/cluster-a"}}
		}), clusterA}, serverAuth, host, ErrNoNodeIdentity, ""},
		{"another IP", client, chain{nodeA, clusterA}, serverAuth, "127.0.0.2", ErrHostname, ""},
		{"a DNS name not in the certificate", client, chain{nodeA, clusterA}, serverAuth, "hsm.example.com", ErrHostname, ""},
		{"SHA-1 signature", client, chain{good(func(c *x509.Certificate) { c.SignatureAlgorithm = x509.ECDSAWithSHA1 }), clusterA}, serverAuth, host, ErrWeakSignature, ""},
		{"unknown critical extension", client, chain{good(func(c *x509.Certificate) {
			c.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, Critical: true, Value: []byte{5, 0}}}
		}), clusterA}, serverAuth, host, ErrCriticalExtension, ""},
		{"issuer name is not the cluster's", client, chain{mk(nil, &x509.Certificate{Subject: pkix.Name{CommonName: "cluster-a"}}, a.key), clusterA}, serverAuth, host, ErrNotIssued, ""},

		{"trust without anchor", Trust{ClusterID: "cluster-a"}, chain{nodeA, clusterA}, serverAuth, host, ErrConfig, ""},
		{"trust with a non-CA anchor", Trust{TrustAnchor: web, ClusterID: "cluster-a"}, chain{nodeA, clusterA}, serverAuth, host, ErrAnchorNotCA, ""},
		{"trust without cluster id", Trust{TrustAnchor: ca.cert}, chain{nodeA, clusterA}, serverAuth, host, ErrInvalidID, ""},
		{"trust with intermediates, no pin", Trust{TrustAnchor: ca.cert, ClusterID: "cluster-a", Intermediates: []*x509.Certificate{inter}}, chain{nodeA, clusterA}, serverAuth, host, ErrConfig, ""},
		{"trust pinning another cluster's certificate", Trust{TrustAnchor: ca.cert, ClusterID: "cluster-a", ClusterCert: clusterB}, chain{nodeA}, serverAuth, host, ErrSubjectMismatch, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := tt.trust.VerifyNode(tt.chain, tt.usage, tt.host)
			wantReason(t, err, tt.want)
			if err == nil && (id.HsmID != tt.wantID || id.ClusterID != "cluster-a" || id.Certificate != tt.chain[0]) {
				t.Fatalf("identity %+v, want HSM %s of cluster-a", id, tt.wantID)
			}
		})
	}
}

// A cluster restored from a backup of cluster-aaa serves as cluster-bbb
// under cluster-aaa's certificate and key: its node certificates name
// cluster-bbb, issued by the certificate whose CommonName is cluster-aaa.
func TestVerifyNodeRestoredCluster(t *testing.T) {
	ca := newTestCA(t, "Customer CA")
	aaa := newTestCluster(t, ca, "cluster-aaa")
	ccc := newTestCluster(t, ca, "cluster-ccc") // another lineage, same anchor
	issue := func(c testCluster, clusterID, hsmID string) *x509.Certificate {
		t.Helper()
		key, err := NewNodeKey()
		if err != nil {
			t.Fatal(err)
		}
		cert, err := IssueNodeCert(c.key, c.certs.Certificate, NodeCertRequest{
			HsmID: hsmID, ClusterID: clusterID, PublicKey: key.Public(), IPs: loopback,
			NotBefore: testNow.Add(-time.Hour), NotAfter: yearFrom(testNow),
		})
		if err != nil {
			t.Fatal(err)
		}
		return cert
	}
	clone := issue(aaa, "cluster-bbb", "hsm-b1")
	if got := clone.Subject.OrganizationalUnit; len(got) != 1 || got[0] != "cluster-bbb" {
		t.Fatalf("OU %v, want the cluster served", got)
	}
	source, _ := aaa.node(t, "hsm-a1", loopback...)
	otherLineage := issue(ccc, "cluster-bbb", "hsm-c1")
	certA, certC := aaa.certs.Certificate, ccc.certs.Certificate

	at := func(tr Trust) Trust { tr.Now = clockAt(testNow); return tr }
	cloneClient := at(Trust{TrustAnchor: ca.cert, ClusterID: "cluster-bbb", CertificateClusterID: "cluster-aaa"})
	clonePinned := aaa.certs.TrustAs("cluster-bbb", clockAt(testNow))
	if clonePinned.ClusterID != "cluster-bbb" || clonePinned.CertificateClusterID != "cluster-aaa" {
		t.Fatalf("TrustAs: %+v", clonePinned)
	}
	if same := aaa.certs.TrustAs("cluster-aaa", nil); same.CertificateClusterID != "" || same.ClusterID != "cluster-aaa" {
		t.Fatalf("TrustAs of the certificate's own cluster: %+v", same)
	}
	const host = "127.0.0.1"
	type chain = []*x509.Certificate
	for _, tt := range []struct {
		name   string
		trust  Trust
		chain  chain
		want   error
		wantID string
	}{
		{"client of the clone", cloneClient, chain{clone, certA}, nil, "cluster-bbb"},
		{"node of the clone, pinned", clonePinned, chain{clone}, nil, "cluster-bbb"},
		{"client of the clone, CommonName = ClusterID expected", at(Trust{TrustAnchor: ca.cert, ClusterID: "cluster-bbb"}), chain{clone, certA}, ErrWrongCluster, ""},
		{"client of the source sees a clone node", at(Trust{TrustAnchor: ca.cert, ClusterID: "cluster-aaa"}), chain{clone, certA}, ErrWrongCluster, ""},
		{"source's node pinned trust sees a clone node", aaa.certs.Trust(clockAt(testNow)), chain{clone}, ErrWrongCluster, ""},
		{"client of the clone sees a source node", cloneClient, chain{source, certA}, ErrWrongCluster, ""},
		{"clone id under another lineage's certificate", cloneClient, chain{otherLineage, certC}, ErrWrongCluster, ""},
		{"another lineage's node sends our certificate", cloneClient, chain{otherLineage, certA}, ErrNotIssued, ""},
		{"pinned: another lineage", clonePinned, chain{otherLineage}, ErrNotIssued, ""},
		{"pin of another lineage's certificate", at(Trust{TrustAnchor: ca.cert, ClusterID: "cluster-bbb", CertificateClusterID: "cluster-aaa", ClusterCert: certC}), chain{clone}, ErrSubjectMismatch, ""},
		{"invalid certificate cluster id", at(Trust{TrustAnchor: ca.cert, ClusterID: "cluster-bbb", CertificateClusterID: "-x"}), chain{clone, certA}, ErrInvalidID, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id, err := tt.trust.VerifyNode(tt.chain, x509.ExtKeyUsageServerAuth, host)
			wantReason(t, err, tt.want)
			if err == nil && (id.ClusterID != tt.wantID || id.Certificate != tt.chain[0]) {
				t.Fatalf("identity %+v, want cluster %s", id, tt.wantID)
			}
		})
	}

	// A replication link's rule: the linked cluster's own certificate, or
	// this node's lineage.
	link := []Trust{at(Trust{TrustAnchor: ca.cert, ClusterID: "cluster-bbb"}), cloneClient}
	if id, err := VerifyNodeAny(link, chain{clone, certA}, x509.ExtKeyUsageClientAuth, ""); err != nil || id.ClusterID != "cluster-bbb" {
		t.Fatalf("VerifyNodeAny, clone of our lineage: %+v, %v", id, err)
	}
	_, err := VerifyNodeAny(link, chain{otherLineage, certC}, x509.ExtKeyUsageClientAuth, "")
	wantReason(t, err, ErrWrongCluster)
	_, err = VerifyNodeAny(nil, chain{clone, certA}, x509.ExtKeyUsageClientAuth, "")
	wantReason(t, err, ErrConfig)
}
