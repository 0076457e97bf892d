package controlplane

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"testing"
)

// DescribeClusters' Certificates: Coffer has no hardware, so it returns no
// AWS or manufacturer hardware certificate (rather than the HSM certificate
// under their names); the HSM certificate is on the key of the cluster CSR.
func TestDescribeClustersCertificates(t *testing.T) {
	e := newTestEnv(t)
	cl := e.createCluster()
	e.createHsm(cl.ClusterId, "us-east-1a")
	e.reconcile()
	cl = e.describe(cl.ClusterId)
	c := cl.Certificates
	if c == nil || c.ClusterCsr == "" || c.HsmCertificate == "" {
		t.Fatalf("uninitialized cluster with an HSM: certificates %+v", c)
	}
	if c.AwsHardwareCertificate != "" || c.ManufacturerHardwareCertificate != "" {
		t.Fatalf("hardware certificates returned for a software HSM: aws %q, manufacturer %q", c.AwsHardwareCertificate, c.ManufacturerHardwareCertificate)
	}
	block, _ := pem.Decode([]byte(c.ClusterCsr))
	if block == nil {
		t.Fatalf("ClusterCsr is not PEM: %q", c.ClusterCsr)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	block, _ = pem.Decode([]byte(c.HsmCertificate))
	if block == nil {
		t.Fatalf("HsmCertificate is not PEM: %q", c.HsmCertificate)
	}
	hsm, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(hsm.RawSubjectPublicKeyInfo, csr.RawSubjectPublicKeyInfo) {
		t.Errorf("HsmCertificate's key is not the cluster CSR's")
	}

	cl = e.initialized("us-east-1a")
	c = cl.Certificates
	if c == nil || c.ClusterCertificate == "" || c.HsmCertificate == "" || c.AwsHardwareCertificate != "" || c.ManufacturerHardwareCertificate != "" {
		t.Fatalf("initialized cluster: certificates %+v", c)
	}
}
