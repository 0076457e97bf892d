package main

import (
	"crypto"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/pki"
)

// testLineage is a cluster certificate signed by ca for clusterID, and its key.
func testLineage(t *testing.T, ca *x509.Certificate, caKey crypto.Signer, clusterID string) (*pki.ClusterCertificates, crypto.Signer) {
	t.Helper()
	key, err := pki.NewClusterKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewClusterCSR(key, clusterID)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := pki.SignCSR(ca, caKey, csr, time.Now().AddDate(1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := pki.VerifyClusterCertificate(csr, signed, pki.EncodeCertificatesPEM(ca), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return cc, key
}

// testNodeChain is the chain an HSM of clusterID sends, its node
// certificate issued under cc with key.
func testNodeChain(t *testing.T, cc *pki.ClusterCertificates, key crypto.Signer, clusterID string) []*x509.Certificate {
	t.Helper()
	nodeKey, err := pki.NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.IssueNodeCert(key, cc.Certificate, pki.NodeCertRequest{
		HsmID: "hsm-1", ClusterID: clusterID, PublicKey: nodeKey.Public(),
		IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, NotAfter: cc.Certificate.NotAfter,
	})
	if err != nil {
		t.Fatal(err)
	}
	return append([]*x509.Certificate{cert}, cc.Chain()...)
}

// TestLinkTrusts: the replication link's rule. A linked cluster's HSM is
// accepted under a cluster certificate naming the linked cluster, or under
// this node's own cluster certificate (a clone of the same lineage); not
// under another certificate that names this node's lineage, nor under
// another lineage's.
func TestLinkTrusts(t *testing.T) {
	ca, caKey, err := pki.NewCustomerCA("test CA", time.Now().AddDate(1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	aaa, aaaKey := testLineage(t, ca, caKey, "cluster-aaa")
	other, otherKey := testLineage(t, ca, caKey, "cluster-other")
	// The same customer CA signed a second certificate naming cluster-aaa,
	// for another key.
	aaa2, aaa2Key := testLineage(t, ca, caKey, "cluster-aaa")

	verify := func(own *pki.ClusterCertificates, clusterID string, chain []*x509.Certificate) error {
		_, err := pki.VerifyNodeAny(linkTrusts(own, ca, clusterID, time.Now), chain, x509.ExtKeyUsageClientAuth, "")
		return err
	}
	for _, tt := range []struct {
		name      string
		own       *pki.ClusterCertificates
		clusterID string
		chain     []*x509.Certificate
		want      error
	}{
		{"source sees its clone", aaa, "cluster-bbb", testNodeChain(t, aaa, aaaKey, "cluster-bbb"), nil},
		{"clone sees its source", aaa, "cluster-aaa", testNodeChain(t, aaa, aaaKey, "cluster-aaa"), nil},
		{"two clones of one lineage", aaa, "cluster-ddd", testNodeChain(t, aaa, aaaKey, "cluster-ddd"), nil},
		{"an unrelated cluster under its own certificate", aaa, "cluster-other", testNodeChain(t, other, otherKey, "cluster-other"), nil},
		{"another lineage claims the linked id", aaa, "cluster-bbb", testNodeChain(t, other, otherKey, "cluster-bbb"), pki.ErrWrongCluster},
		{"another certificate naming our lineage", aaa, "cluster-bbb", testNodeChain(t, aaa2, aaa2Key, "cluster-bbb"), pki.ErrWrongCluster},
		{"a node of another cluster than the link's", aaa, "cluster-bbb", testNodeChain(t, aaa, aaaKey, "cluster-ccc"), pki.ErrWrongCluster},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := verify(tt.own, tt.clusterID, tt.chain); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

// TestLoadIdentityClusterIDs: hsm.json's cluster_id must be the one the
// node certificate names, and certificate_cluster_id (default cluster_id)
// the cluster certificate's CommonName.
func TestLoadIdentityClusterIDs(t *testing.T) {
	dir := t.TempDir()
	if err := runHSMInit([]string{"--dir", dir, "--node", "1=127.0.0.1:1"}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "hsm-1.json")
	for _, tt := range []struct {
		name, clusterID, certID, want string
	}{
		{"as made", localClusterID, "", ""},
		{"the lineage named, equal", localClusterID, localClusterID, ""},
		{"another id, no lineage", "cluster-x", "", `the certificate of cluster "cluster-local", not "cluster-x"`},
		{"another id under the lineage", "cluster-x", localClusterID, `a node certificate of cluster "cluster-local", not "cluster-x"`},
		{"another lineage", localClusterID, "cluster-y", `the certificate of cluster "cluster-local", not "cluster-y"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := readHSMFile(path)
			if err != nil {
				t.Fatal(err)
			}
			f.ClusterID, f.CertificateClusterID = tt.clusterID, tt.certID
			id, err := loadIdentity(f, time.Now)
			switch {
			case tt.want == "" && err != nil:
				t.Fatal(err)
			case tt.want == "" && id.trust.ClusterID != localClusterID:
				t.Fatalf("trust %+v", id.trust)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}
