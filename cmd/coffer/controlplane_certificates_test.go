package main

import (
	"strings"
	"testing"

	"github.com/coffer-hsm/coffer/internal/testtool"
)

// describe-clusters through the real aws CLI: the certificates Coffer has
// (the CSR and the HSM certificate) and none of the hardware certificates
// only hardware has (AWS- and manufacturer-signed).
func TestAWSDescribeClustersCertificates(t *testing.T) {
	testtool.Require(t, "aws", "openssl")
	w := startWalkthrough(t)
	var created struct {
		Cluster struct{ ClusterId string }
	}
	w.awsJSON(&created, "create-cluster", "--hsm-type", "hsm1.medium", "--subnet-ids", "subnet-0aaaaaaa")
	id := created.Cluster.ClusterId
	w.waitFor("UNINITIALIZED", "describe-clusters", "--filters", "clusterIds="+id, "--query", "Clusters[0].State")
	w.aws("create-hsm", "--cluster-id", id, "--availability-zone", "us-east-1a")
	w.waitFor("ACTIVE", "describe-clusters", "--filters", "clusterIds="+id, "--query", "Clusters[0].Hsms[0].State")
	var out struct {
		Clusters []struct {
			Certificates map[string]string
		}
	}
	w.awsJSON(&out, "describe-clusters", "--filters", "clusterIds="+id)
	if len(out.Clusters) != 1 {
		t.Fatalf("describe-clusters: %+v", out)
	}
	c := out.Clusters[0].Certificates
	for _, k := range []string{"ClusterCsr", "HsmCertificate"} {
		if !strings.Contains(c[k], "-----BEGIN") {
			t.Errorf("Certificates.%s = %q, want PEM", k, c[k])
		}
	}
	for _, k := range []string{"AwsHardwareCertificate", "ManufacturerHardwareCertificate"} {
		if v, ok := c[k]; ok {
			t.Errorf("Certificates.%s present (%q): Coffer has no hardware certificate", k, v)
		}
	}
}
