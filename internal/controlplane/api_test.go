package controlplane

import (
	"fmt"
	"strings"
	"testing"
)

func TestRefusals(t *testing.T) {
	e := newTestEnv(t)
	cl := e.createCluster()
	e.reconcile()
	const (
		invalidReq = "CloudHsmInvalidRequestException"
		notFoundEx = "CloudHsmResourceNotFoundException"
		tagEx      = "CloudHsmTagException"
	)
	many := make([]Tag, 51)
	for i := range many {
		many[i] = Tag{Key: fmt.Sprintf("k%d", i), Value: "v"}
	}
	for _, c := range []struct {
		name, op string
		in       any
		want     string
	}{
		{"unknown cluster", "CreateHsm", CreateHsmRequest{ClusterId: "cluster-aaaaaaaaaaa", AvailabilityZone: "us-east-1a"}, notFoundEx},
		{"malformed cluster id", "CreateHsm", CreateHsmRequest{ClusterId: "cluster-1", AvailabilityZone: "us-east-1a"}, invalidReq},
		{"missing AZ", "CreateHsm", CreateHsmRequest{ClusterId: cl.ClusterId}, invalidReq},
		{"zone without subnet", "CreateHsm", CreateHsmRequest{ClusterId: cl.ClusterId, AvailabilityZone: "us-east-1c"}, invalidReq},
		{"address outside the subnet", "CreateHsm", CreateHsmRequest{ClusterId: cl.ClusterId, AvailabilityZone: "us-east-1a", IpAddress: "10.0.0.1"}, invalidReq},
		{"unknown subnet", "CreateCluster", CreateClusterRequest{HsmType: "hsm1.medium", SubnetIds: []string{"subnet-12345678"}}, invalidReq},
		{"subnet of another region", "CreateCluster", CreateClusterRequest{HsmType: "hsm1.medium", SubnetIds: []string{"subnet-1aaaaaaa"}}, invalidReq},
		{"two subnets in one zone", "CreateCluster", CreateClusterRequest{HsmType: "hsm1.medium", SubnetIds: []string{"subnet-0aaaaaaa", "subnet-0aaaaaaa"}}, invalidReq},
		{"no subnets", "CreateCluster", CreateClusterRequest{HsmType: "hsm1.medium"}, invalidReq},
		{"unknown HSM type", "CreateCluster", CreateClusterRequest{HsmType: "hsm9.huge", SubnetIds: []string{"subnet-0aaaaaaa"}}, invalidReq},
		{"mode for hsm1", "CreateCluster", CreateClusterRequest{HsmType: "hsm1.medium", Mode: "FIPS", SubnetIds: []string{"subnet-0aaaaaaa"}}, invalidReq},
		{"retention too short", "CreateCluster", CreateClusterRequest{HsmType: "hsm1.medium", SubnetIds: []string{"subnet-0aaaaaaa"}, BackupRetentionPolicy: &BackupRetentionPolicy{Type: "DAYS", Value: "3"}}, invalidReq},
		{"restore from unknown backup", "CreateCluster", CreateClusterRequest{HsmType: "hsm1.medium", SubnetIds: []string{"subnet-0aaaaaaa"}, SourceBackupId: "backup-aaaaaaaaaaa"}, notFoundEx},
		{"reserved tag key", "CreateCluster", CreateClusterRequest{HsmType: "hsm1.medium", SubnetIds: []string{"subnet-0aaaaaaa"}, TagList: []Tag{{Key: "aws:x", Value: "y"}}}, tagEx},
		{"51 tags", "TagResource", TagResourceRequest{ResourceId: cl.ClusterId, TagList: many}, tagEx},
		{"no tags", "TagResource", TagResourceRequest{ResourceId: cl.ClusterId}, invalidReq},
		{"tags of unknown cluster", "ListTags", ListTagsRequest{ResourceId: "cluster-aaaaaaaaaaa"}, notFoundEx},
		{"initialize without CSR", "InitializeCluster", InitializeClusterRequest{ClusterId: cl.ClusterId, SignedCert: "x", TrustAnchor: "y"}, invalidReq},
		{"initialize unknown cluster", "InitializeCluster", InitializeClusterRequest{ClusterId: "cluster-aaaaaaaaaaa", SignedCert: "x", TrustAnchor: "y"}, notFoundEx},
		{"initialize without certificate", "InitializeCluster", InitializeClusterRequest{ClusterId: cl.ClusterId}, invalidReq},
		{"delete HSM unnamed", "DeleteHsm", DeleteHsmRequest{ClusterId: cl.ClusterId}, invalidReq},
		{"delete unknown HSM", "DeleteHsm", DeleteHsmRequest{ClusterId: cl.ClusterId, HsmId: "hsm-aaaaaaaaaaa"}, notFoundEx},
		{"modify nothing", "ModifyCluster", ModifyClusterRequest{ClusterId: cl.ClusterId}, invalidReq},
		{"unknown filter", "DescribeClusters", DescribeClustersRequest{Filters: map[string][]string{"color": {"red"}}}, invalidReq},
		{"bad state filter", "DescribeClusters", DescribeClustersRequest{Filters: map[string][]string{"states": {"HAPPY"}}}, invalidReq},
		{"page too large", "DescribeClusters", DescribeClustersRequest{MaxResults: ptr(26)}, invalidReq},
		{"bad token", "DescribeClusters", DescribeClustersRequest{NextToken: "garbage"}, invalidReq},
		{"unknown backup", "DeleteBackup", DeleteBackupRequest{BackupId: "backup-aaaaaaaaaaa"}, notFoundEx},
		{"policy on a cluster", "GetResourcePolicy", GetResourcePolicyRequest{ResourceArn: "arn:aws:cloudhsm:us-east-1:123456789012:cluster/" + cl.ClusterId}, invalidReq},
		{"copy to unknown region", "CopyBackupToRegion", CopyBackupToRegionRequest{DestinationRegion: "eu-west-1", BackupId: "backup-aaaaaaaaaaa"}, invalidReq},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := e.call(c.op, c.in, nil)
			wantErr(t, err, c.want)
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestProtocolErrors(t *testing.T) {
	e := newTestEnv(t)
	for _, c := range []struct {
		name, op, body, want string
	}{
		{"unknown operation", "LaunchRocket", "{}", "UnknownOperationException"},
		{"not JSON", "DescribeClusters", "{", "SerializationException"},
		{"wrong JSON type", "DescribeClusters", `{"MaxResults": "ten"}`, "SerializationException"},
		{"filter of the wrong type", "DescribeClusters", `{"Filters": {"states": 3}}`, "SerializationException"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := e.request(c.op, []byte(c.body))
			SignRequest(req, []byte(c.body), testCred, "us-east-1", e.s.now())
			wantErr(t, e.do(req, nil), c.want)
		})
	}
	t.Run("empty body", func(t *testing.T) {
		req := e.request("DescribeClusters", nil)
		SignRequest(req, nil, testCred, "us-east-1", e.s.now())
		var out DescribeClustersResponse
		if err := e.do(req, &out); err != nil || out.Clusters == nil {
			t.Fatalf("%v %+v", err, out)
		}
	})
}

func TestPagination(t *testing.T) {
	e := newTestEnv(t)
	var ids []string
	for range 7 {
		ids = append(ids, e.createCluster().ClusterId)
	}
	var got []string
	token, pages := "", 0
	for {
		var out DescribeClustersResponse
		e.must("DescribeClusters", DescribeClustersRequest{MaxResults: ptr(3), NextToken: token}, &out)
		pages++
		for _, c := range out.Clusters {
			got = append(got, c.ClusterId)
		}
		if token = out.NextToken; token == "" {
			break
		}
	}
	if pages != 3 || strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Fatalf("%d pages: %v, want %v", pages, got, ids)
	}
	// Regions are separate.
	var west DescribeClustersResponse
	if err := e.callIn("us-west-2", "DescribeClusters", DescribeClustersRequest{}, &west); err != nil || len(west.Clusters) != 0 {
		t.Fatalf("us-west-2 sees %d clusters (%v)", len(west.Clusters), err)
	}
	// Tags page too.
	var tags []Tag
	for i := range 5 {
		tags = append(tags, Tag{Key: fmt.Sprintf("k%d", i), Value: "v"})
	}
	e.must("TagResource", TagResourceRequest{ResourceId: ids[0], TagList: tags}, nil)
	var lt ListTagsResponse
	e.must("ListTags", ListTagsRequest{ResourceId: ids[0], MaxResults: ptr(2)}, &lt)
	if len(lt.TagList) != 2 || lt.NextToken == "" {
		t.Fatalf("first tag page %+v", lt)
	}
	e.must("UntagResource", UntagResourceRequest{ResourceId: ids[0], TagKeyList: []string{"k0", "k1"}}, nil)
	e.must("ListTags", ListTagsRequest{ResourceId: ids[0]}, &lt)
	if len(lt.TagList) != 3 || lt.TagList[0].Key != "k2" {
		t.Fatalf("after untag %+v", lt)
	}
}

func TestBackups(t *testing.T) {
	e := newTestEnv(t)
	cl := e.initialized("us-east-1a")
	var out DescribeBackupsResponse
	e.must("DescribeBackups", DescribeBackupsRequest{}, &out)
	if len(out.Backups) != 1 || out.Backups[0].BackupState != BackupCreateInProgress && out.Backups[0].BackupState != BackupReady {
		t.Fatalf("backups %+v", out.Backups)
	}
	e.reconcile()
	id := out.Backups[0].BackupId
	arn := out.Backups[0].BackupArn
	if arn != "arn:aws:cloudhsm:us-east-1:123456789012:backup/"+id {
		t.Fatalf("ARN %s", arn)
	}

	var mod ModifyBackupAttributesResponse
	e.must("ModifyBackupAttributes", ModifyBackupAttributesRequest{BackupId: id, NeverExpires: ptr(true)}, &mod)
	if !*mod.Backup.NeverExpires {
		t.Fatal("NeverExpires not set")
	}
	e.must("DescribeBackups", DescribeBackupsRequest{Filters: map[string][]string{"neverExpires": {"true"}, "clusterIds": {cl.ClusterId}}}, &out)
	if len(out.Backups) != 1 {
		t.Fatalf("filter neverExpires: %d", len(out.Backups))
	}

	var cp CopyBackupToRegionResponse
	e.must("CopyBackupToRegion", CopyBackupToRegionRequest{DestinationRegion: "us-west-2", BackupId: id}, &cp)
	if cp.DestinationBackup.SourceBackup != id || cp.DestinationBackup.SourceRegion != "us-east-1" {
		t.Fatalf("copy %+v", cp)
	}
	e.reconcile()
	var west DescribeBackupsResponse
	if err := e.callIn("us-west-2", "DescribeBackups", DescribeBackupsRequest{Filters: map[string][]string{"sourceBackupIds": {id}}}, &west); err != nil {
		t.Fatal(err)
	}
	if len(west.Backups) != 1 || west.Backups[0].BackupState != BackupReady || west.Backups[0].SourceRegion != "us-east-1" {
		t.Fatalf("copied backup %+v", west.Backups)
	}

	e.must("PutResourcePolicy", PutResourcePolicyRequest{ResourceArn: arn, Policy: `{"Version":"2012-10-17","Statement":[]}`}, nil)
	var pol GetResourcePolicyResponse
	e.must("GetResourcePolicy", GetResourcePolicyRequest{ResourceArn: arn}, &pol)
	if !strings.Contains(pol.Policy, "2012-10-17") {
		t.Fatalf("policy %q", pol.Policy)
	}
	wantErr(t, e.call("PutResourcePolicy", PutResourcePolicyRequest{ResourceArn: arn, Policy: "not json"}, nil), "CloudHsmInvalidRequestException")
	e.must("DeleteResourcePolicy", DeleteResourcePolicyRequest{ResourceArn: arn}, nil)

	var del DeleteBackupResponse
	e.must("DeleteBackup", DeleteBackupRequest{BackupId: id}, &del)
	if del.Backup.BackupState != BackupPendingDeletion || del.Backup.DeleteTimestamp == nil {
		t.Fatalf("deleted backup %+v", del.Backup)
	}
	wantErr(t, e.call("DeleteBackup", DeleteBackupRequest{BackupId: id}, nil), "CloudHsmInvalidRequestException")
	var res RestoreBackupResponse
	e.must("RestoreBackup", RestoreBackupRequest{BackupId: id}, &res)
	if res.Backup.BackupState != BackupReady || res.Backup.DeleteTimestamp != nil {
		t.Fatalf("restored backup %+v", res.Backup)
	}
	// A cluster from the backup, named by its ARN.
	var made CreateClusterResponse
	e.must("CreateCluster", CreateClusterRequest{HsmType: "hsm1.medium", SubnetIds: []string{"subnet-0aaaaaaa"}, SourceBackupId: arn}, &made)
	if made.Cluster.State != ClusterInitialized || made.Cluster.SourceBackupId != id {
		t.Fatalf("cluster from a backup %+v", made.Cluster)
	}
}

func TestModifyCluster(t *testing.T) {
	e := newTestEnv(t)
	cl := e.createCluster()
	var out ModifyClusterResponse
	e.must("ModifyCluster", ModifyClusterRequest{ClusterId: cl.ClusterId, BackupRetentionPolicy: &BackupRetentionPolicy{Type: "DAYS", Value: "30"}}, &out)
	if out.Cluster.BackupRetentionPolicy.Value != "30" {
		t.Fatalf("retention %+v", out.Cluster.BackupRetentionPolicy)
	}
	e.must("ModifyCluster", ModifyClusterRequest{ClusterId: cl.ClusterId, HsmType: "hsm2m.medium"}, &out)
	if out.Cluster.HsmType != "hsm2m.medium" {
		t.Fatalf("type %s", out.Cluster.HsmType)
	}
	wantErr(t, e.call("ModifyCluster", ModifyClusterRequest{ClusterId: cl.ClusterId, HsmType: "hsm1.medium"}, nil), "CloudHsmInvalidRequestException")
}
