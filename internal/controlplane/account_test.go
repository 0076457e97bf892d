package controlplane

import (
	"encoding/json"
	"strings"
	"testing"
)

// otherCred is an access key of another AWS account than testCred's.
var otherCred = Credential{AccessKeyID: "AKIAOTHEROTHER000002", SecretAccessKey: "other-secret-other-secret", AccountID: "210987654321"}

// callAs signs one operation in region with cred.
func (e *testEnv) callAs(cred Credential, region, op string, in, out any) *apiError {
	e.t.Helper()
	body, err := json.Marshal(in)
	if err != nil {
		e.t.Fatal(err)
	}
	req := e.request(op, body)
	SignRequest(req, body, cred, region, e.s.now())
	return e.do(req, out)
}

// A caller of another account neither sees nor touches a cluster or a
// backup of this one: it cannot list them, make a cluster from the backup
// (and so get its keys and users onto HSMs it runs), copy, delete, restore,
// tag or change them, or add HSMs to the cluster.
func TestOtherAccountIsolated(t *testing.T) {
	e, clk := newClockEnv(t, func(c *Config) { c.Credentials = append(c.Credentials, otherCred) })
	cl := e.active(clk, "us-east-1a")
	bs := e.backupsOf(cl.ClusterId)
	if len(bs) == 0 || bs[0].BackupState != BackupReady {
		t.Fatalf("backups of the cluster %+v", bs)
	}
	bid := bs[0].BackupId
	as := func(op string, in, out any) *apiError { return e.callAs(otherCred, "us-east-1", op, in, out) }

	var dc DescribeClustersResponse
	if err := as("DescribeClusters", DescribeClustersRequest{}, &dc); err != nil || len(dc.Clusters) != 0 {
		t.Fatalf("DescribeClusters by another account: %v, %+v", err, dc.Clusters)
	}
	var db DescribeBackupsResponse
	if err := as("DescribeBackups", DescribeBackupsRequest{}, &db); err != nil || len(db.Backups) != 0 {
		t.Fatalf("DescribeBackups by another account: %v, %+v", err, db.Backups)
	}
	wantErr(t, as("CreateCluster", CreateClusterRequest{HsmType: "hsm1.medium", SubnetIds: []string{"subnet-0aaaaaaa"}, SourceBackupId: bid}, nil),
		"CloudHsmResourceNotFoundException")
	wantErr(t, as("CopyBackupToRegion", CopyBackupToRegionRequest{DestinationRegion: "us-west-2", BackupId: bid}, nil),
		"CloudHsmResourceNotFoundException")
	wantErr(t, as("ModifyBackupAttributes", ModifyBackupAttributesRequest{BackupId: bid, NeverExpires: new(bool)}, nil),
		"CloudHsmResourceNotFoundException")
	wantErr(t, as("DeleteBackup", DeleteBackupRequest{BackupId: bid}, nil), "CloudHsmResourceNotFoundException")
	wantErr(t, as("TagResource", TagResourceRequest{ResourceId: bid, TagList: []Tag{{Key: "k", Value: "v"}}}, nil),
		"CloudHsmResourceNotFoundException")
	wantErr(t, as("TagResource", TagResourceRequest{ResourceId: cl.ClusterId, TagList: []Tag{{Key: "k", Value: "v"}}}, nil),
		"CloudHsmResourceNotFoundException")
	wantErr(t, as("CreateHsm", CreateHsmRequest{ClusterId: cl.ClusterId, AvailabilityZone: "us-east-1b"}, nil),
		"CloudHsmResourceNotFoundException")
	wantErr(t, as("ModifyCluster", ModifyClusterRequest{ClusterId: cl.ClusterId,
		BackupRetentionPolicy: &BackupRetentionPolicy{Type: "DAYS", Value: "7"}}, nil), "CloudHsmResourceNotFoundException")
	wantErr(t, as("DeleteCluster", DeleteClusterRequest{ClusterId: cl.ClusterId}, nil), "CloudHsmResourceNotFoundException")

	// The owner still has all of it, and a cluster the other account makes
	// is its own.
	if got := e.backupsOf(cl.ClusterId); len(got) != len(bs) || got[0].BackupState != BackupReady {
		t.Fatalf("the owner's backups after the other account's calls %+v", got)
	}
	// The owner's copy in another region is the owner's too.
	e.must("CopyBackupToRegion", CopyBackupToRegionRequest{DestinationRegion: "us-west-2", BackupId: bid}, nil)
	e.reconcile()
	if west := e.backupsIn("us-west-2", nil); len(west) != 1 || west[0].BackupState != BackupReady {
		t.Fatalf("the owner's copy %+v", west)
	}
	if err := e.callAs(otherCred, "us-west-2", "DescribeBackups", DescribeBackupsRequest{}, &db); err != nil || len(db.Backups) != 0 {
		t.Fatalf("DescribeBackups of the copy's region by another account: %v, %+v", err, db.Backups)
	}
	var mine CreateClusterResponse
	if err := as("CreateCluster", CreateClusterRequest{HsmType: "hsm1.medium", SubnetIds: []string{"subnet-0aaaaaaa"}}, &mine); err != nil {
		t.Fatal(err)
	}
	if err := as("DescribeClusters", DescribeClustersRequest{}, &dc); err != nil || len(dc.Clusters) != 1 || dc.Clusters[0].ClusterId != mine.Cluster.ClusterId {
		t.Fatalf("the other account's own clusters: %v, %+v", err, dc.Clusters)
	}
	var own DescribeClustersResponse
	e.must("DescribeClusters", DescribeClustersRequest{}, &own)
	for _, c := range own.Clusters {
		if c.ClusterId == mine.Cluster.ClusterId {
			t.Fatalf("the owner sees the other account's cluster %s", c.ClusterId)
		}
	}
}

// A record written before records named their account belongs to the
// account of the first configured access key, and to no other.
func TestRecordWithoutAccount(t *testing.T) {
	e := newTestEnvWith(t, func(c *Config) { c.Credentials = append(c.Credentials, otherCred) })
	cl := e.createCluster()
	e.s.mu.Lock()
	rec := e.s.regions["us-east-1"].clusters[cl.ClusterId]
	rec.Account = ""
	err := e.s.saveCluster(rec)
	e.s.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	e.close()
	e.open()
	e.describe(cl.ClusterId)
	var dc DescribeClustersResponse
	if err := e.callAs(otherCred, "us-east-1", "DescribeClusters", DescribeClustersRequest{}, &dc); err != nil || len(dc.Clusters) != 0 {
		t.Fatalf("another account sees a record without an account: %v, %+v", err, dc.Clusters)
	}
}

// An access key id listed twice is refused: with accounts owning what they
// make, which account a key acts for must not depend on the order of the
// credentials file.
func TestDuplicateAccessKeyRefused(t *testing.T) {
	dup := otherCred
	dup.AccessKeyID = testCred.AccessKeyID
	cfg := testConfig(t.TempDir(), newFakeProv())
	cfg.Credentials = append(cfg.Credentials, dup)
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Fatalf("a duplicate access key: %v", err)
	}
}
