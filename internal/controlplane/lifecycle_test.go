package controlplane

import (
	"slices"
	"strings"
	"testing"
)

func TestClusterLifecycle(t *testing.T) {
	e := newTestEnv(t)
	cl := e.createCluster()
	if cl.State != ClusterCreateInProgress || !strings.HasPrefix(cl.ClusterId, "cluster-") || cl.SubnetMapping["us-east-1a"] != "subnet-0aaaaaaa" {
		t.Fatalf("created %+v", cl)
	}
	e.reconcile()
	if got := e.describe(cl.ClusterId).State; got != ClusterUninitialized {
		t.Fatalf("state %s, want UNINITIALIZED", got)
	}

	// Two HSMs before initialization: Coffer accepts the second.
	h1 := e.createHsm(cl.ClusterId, "us-east-1a")
	h2 := e.createHsm(cl.ClusterId, "us-east-1b")
	if h1.State != HsmCreateInProgress || h1.EniIp != "127.200.0.11" || h2.EniIp != "127.200.0.12" {
		t.Fatalf("HSMs %+v %+v", h1, h2)
	}
	e.reconcile()
	cl = e.describe(cl.ClusterId)
	if cl.Certificates == nil || !strings.Contains(cl.Certificates.ClusterCsr, "CERTIFICATE REQUEST") || cl.Certificates.HsmCertificate == "" {
		t.Fatalf("no CSR: %+v", cl.Certificates)
	}
	for _, h := range cl.Hsms {
		if h.State != HsmActive {
			t.Fatalf("HSM %s %s before initialization", h.HsmId, h.State)
		}
	}

	ca, other := newCustomerCA(t), newCustomerCA(t)
	for _, c := range []struct{ name, signed, anchor, want string }{
		{"not PEM", "hello", ca.certPEM, "PEM"},
		{"wrong anchor", ca.sign(cl.Certificates.ClusterCsr), other.certPEM, "does not chain"},
		{"anchor is not a CA", ca.sign(cl.Certificates.ClusterCsr), ca.sign(cl.Certificates.ClusterCsr), "not a CA"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := e.call("InitializeCluster", InitializeClusterRequest{ClusterId: cl.ClusterId, SignedCert: c.signed, TrustAnchor: c.anchor}, nil)
			wantErr(t, err, "CloudHsmInvalidRequestException")
			if !strings.Contains(err.Message, c.want) {
				t.Fatalf("message %q lacks %q", err.Message, c.want)
			}
		})
	}
	var init InitializeClusterResponse
	e.must("InitializeCluster", InitializeClusterRequest{ClusterId: cl.ClusterId, SignedCert: ca.sign(cl.Certificates.ClusterCsr), TrustAnchor: ca.certPEM}, &init)
	if init.State != ClusterInitializeInProgress {
		t.Fatalf("InitializeCluster answered %+v", init)
	}
	wantErr(t, e.call("InitializeCluster", InitializeClusterRequest{ClusterId: cl.ClusterId, SignedCert: ca.sign(cl.Certificates.ClusterCsr), TrustAnchor: ca.certPEM}, nil), "CloudHsmInvalidRequestException")

	e.prov.set(func(f *fakeProv) { f.notReady[h2.HsmId] = true })
	e.reconcile()
	if got := e.describe(cl.ClusterId).State; got != ClusterInitializeInProgress {
		t.Fatalf("state %s with one node not ready", got)
	}
	e.prov.set(func(f *fakeProv) { delete(f.notReady, h2.HsmId) })
	e.reconcile()
	cl = e.describe(cl.ClusterId)
	if cl.State != ClusterInitialized || cl.Certificates.ClusterCertificate == "" {
		t.Fatalf("state %s, certificate %q", cl.State, cl.Certificates.ClusterCertificate)
	}
	spec1 := e.prov.specs[h1.HsmId]
	if spec1.MaskingKey != "create" || e.prov.specs[h2.HsmId].MaskingKey != "clone" || len(spec1.Peers) != 1 || spec1.Peers[0].HsmID != h2.HsmId {
		t.Fatalf("node specs %+v / %+v", spec1, e.prov.specs[h2.HsmId])
	}

	e.prov.set(func(f *fakeProv) { f.activated = true })
	e.reconcile()
	if got := e.describe(cl.ClusterId).State; got != ClusterActive {
		t.Fatalf("state %s after activation", got)
	}

	// A node dies: DEGRADED until it is back.
	e.prov.set(func(f *fakeProv) { f.died[h1.HsmId] = true })
	e.reconcile()
	if h := e.describe(cl.ClusterId).Hsms[0]; h.State != HsmDegraded || h.StateMessage == "" {
		t.Fatalf("dead node's HSM %+v", h)
	}
	e.reconcile()
	if h := e.describe(cl.ClusterId).Hsms[0]; h.State != HsmActive {
		t.Fatalf("restarted node's HSM %+v", h)
	}

	// A third HSM joins; every node learns its peers.
	h3 := e.createHsm(cl.ClusterId, "us-east-1a")
	if h3.EniIp != "127.200.1.11" {
		t.Fatalf("second HSM of zone a at %s", h3.EniIp)
	}
	e.reconcile()
	if n := len(e.prov.specs[h1.HsmId].Peers); n != 2 {
		t.Fatalf("node 1 has %d peers, want 2", n)
	}
	var backups DescribeBackupsResponse
	e.must("DescribeBackups", DescribeBackupsRequest{Filters: map[string][]string{"clusterIds": {cl.ClusterId}}}, &backups)
	if len(backups.Backups) != 3 { // at initialization, at activation and at the third HSM
		t.Fatalf("%d backups, want 3", len(backups.Backups))
	}
	for _, b := range backups.Backups {
		if b.BackupState != BackupReady {
			t.Fatalf("backup %s is %s after a reconciliation", b.BackupId, b.BackupState)
		}
	}

	// DeleteHsm by ENI address.
	var del DeleteHsmResponse
	e.must("DeleteHsm", DeleteHsmRequest{ClusterId: cl.ClusterId, EniIp: h3.EniIp}, &del)
	if del.HsmId != h3.HsmId {
		t.Fatalf("deleted %s, want %s", del.HsmId, h3.HsmId)
	}
	e.reconcile()
	if !slices.Contains(e.prov.removed, h3.HsmId) || len(e.describe(cl.ClusterId).Hsms) != 2 {
		t.Fatalf("HSM not removed: %v", e.prov.removed)
	}
	wantErr(t, e.call("DeleteCluster", DeleteClusterRequest{ClusterId: cl.ClusterId}, nil), "CloudHsmInvalidRequestException")
	for _, h := range []Hsm{h1, h2} {
		e.must("DeleteHsm", DeleteHsmRequest{ClusterId: cl.ClusterId, HsmId: h.HsmId}, nil)
	}
	e.reconcile()
	// Every HSM gone: the next one restores the backup taken before the
	// last one left (the newest).
	var newest DescribeBackupsResponse
	e.must("DescribeBackups", DescribeBackupsRequest{Filters: map[string][]string{"clusterIds": {cl.ClusterId}}, MaxResults: ptr(1)}, &newest)
	if len(newest.Backups) != 1 || newest.Backups[0].BackupState != BackupReady {
		t.Fatalf("newest backup %+v", newest.Backups)
	}
	h4 := e.createHsm(cl.ClusterId, "us-east-1a")
	e.reconcile()
	if spec := e.prov.specs[h4.HsmId]; spec.MaskingKey != "restore" || spec.Restore == nil || spec.Restore.BoundID != newest.Backups[0].BackupId ||
		e.prov.restored[h4.HsmId] != newest.Backups[0].BackupId {
		t.Fatalf("HSM after all were deleted: spec %+v, restored %q", spec, e.prov.restored[h4.HsmId])
	}
	e.must("DeleteHsm", DeleteHsmRequest{ClusterId: cl.ClusterId, HsmId: h4.HsmId}, nil)
	e.reconcile()
	var dc DeleteClusterResponse
	e.must("DeleteCluster", DeleteClusterRequest{ClusterId: cl.ClusterId}, &dc)
	if dc.Cluster.State != ClusterDeleteInProgress {
		t.Fatalf("DeleteCluster answered %s", dc.Cluster.State)
	}
	e.reconcile()
	if got := e.describe(cl.ClusterId).State; got != ClusterDeleted {
		t.Fatalf("state %s after deletion", got)
	}
}

// Replacing the first HSM before initialization keeps the CSR.
func TestReplaceFirstHSMKeepsCSR(t *testing.T) {
	e := newTestEnv(t)
	cl := e.createCluster()
	h1 := e.createHsm(cl.ClusterId, "us-east-1a")
	e.reconcile()
	csr := e.describe(cl.ClusterId).Certificates.ClusterCsr
	e.must("DeleteHsm", DeleteHsmRequest{ClusterId: cl.ClusterId, HsmId: h1.HsmId}, nil)
	e.reconcile()
	h2 := e.createHsm(cl.ClusterId, "us-east-1b")
	e.reconcile()
	got := e.describe(cl.ClusterId).Certificates
	if got.ClusterCsr != csr {
		t.Fatal("the CSR changed when the first HSM was replaced")
	}
	if !strings.Contains(got.HsmCertificate, "CERTIFICATE") || e.s.regions["us-east-1"].clusters[cl.ClusterId].KeyHSM != h2.HsmId {
		t.Fatal("the HSM certificate does not name the new HSM")
	}
}

// A restart of the control plane loses nothing.
func TestRestartKeepsState(t *testing.T) {
	e := newTestEnv(t)
	cl := e.initialized("us-east-1a", "us-east-1b")
	e.must("TagResource", TagResourceRequest{ResourceId: cl.ClusterId, TagList: []Tag{{Key: "team", Value: "pay"}}}, nil)
	before := e.describe(cl.ClusterId)
	e.close()
	e.open()
	after := e.describe(cl.ClusterId)
	if after.State != before.State || len(after.Hsms) != 2 || after.Certificates.ClusterCertificate != before.Certificates.ClusterCertificate ||
		!slices.Contains(after.TagList, Tag{Key: "team", Value: "pay"}) {
		t.Fatalf("after restart %+v, before %+v", after, before)
	}
	// New HSMs do not reuse addresses or node ids.
	h := e.createHsm(cl.ClusterId, "us-east-1a")
	if h.EniIp == before.Hsms[0].EniIp {
		t.Fatalf("address %s reused", h.EniIp)
	}
}
