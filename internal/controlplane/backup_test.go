package controlplane

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// testClock is a clock tests move by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newClockEnv is a test environment whose server runs on a test clock.
func newClockEnv(t *testing.T, edit func(*Config)) (*testEnv, *testClock) {
	t.Helper()
	// A little ahead: certificates made now must be valid on it.
	clk := &testClock{t: time.Now().UTC().Add(2 * time.Second).Truncate(time.Millisecond)}
	e := newTestEnvWith(t, func(c *Config) {
		c.Now = clk.now
		if edit != nil {
			edit(c)
		}
	})
	return e, clk
}

// active takes a new cluster with one HSM per zone given to ACTIVE: a
// backup at initialization, another an hour later at activation.
func (e *testEnv) active(clk *testClock, azs ...string) Cluster {
	e.t.Helper()
	cl := e.initialized(azs...)
	clk.advance(time.Hour)
	e.prov.set(func(f *fakeProv) { f.activated = true })
	e.reconcile()
	if got := e.describe(cl.ClusterId).State; got != ClusterActive {
		e.t.Fatalf("cluster %s, want ACTIVE", got)
	}
	return e.describe(cl.ClusterId)
}

// backupsIn lists a region's backups (not DELETED) matching filters, newest first.
func (e *testEnv) backupsIn(region string, filters map[string][]string) []Backup {
	e.t.Helper()
	var out DescribeBackupsResponse
	if err := e.callIn(region, "DescribeBackups", DescribeBackupsRequest{Filters: filters}, &out); err != nil {
		e.t.Fatal(err)
	}
	if out.NextToken != "" {
		e.t.Fatal("more than one page of backups")
	}
	return out.Backups
}

func (e *testEnv) backupsOf(clusterID string) []Backup {
	e.t.Helper()
	return e.backupsIn("us-east-1", map[string][]string{"clusterIds": {clusterID}})
}

func states(bs []Backup) map[string]string {
	m := map[string]string{}
	for _, b := range bs {
		m[b.BackupId] = b.BackupState
	}
	return m
}

func (e *testEnv) blobPath(region, id string) string {
	return filepath.Join(e.dir, "backups", region, id)
}

func TestBackupRetention(t *testing.T) {
	e, clk := newClockEnv(t, nil)
	cl := e.active(clk, "us-east-1a")
	first := e.backupsOf(cl.ClusterId)
	if len(first) != 2 || first[0].BackupState != BackupReady || first[1].BackupState != BackupReady {
		t.Fatalf("backups after activation %+v", first)
	}
	activation, initialization := first[0], first[1]
	e.must("ModifyBackupAttributes", ModifyBackupAttributesRequest{BackupId: initialization.BackupId, NeverExpires: ptr(true)}, nil)
	e.must("ModifyCluster", ModifyClusterRequest{ClusterId: cl.ClusterId, BackupRetentionPolicy: &BackupRetentionPolicy{Type: "DAYS", Value: "7"}}, nil)

	// Ten days: one periodic backup a day.
	var periodic []string
	for range 10 {
		clk.advance(24 * time.Hour)
		e.reconcile()
		periodic = append(periodic, e.backupsOf(cl.ClusterId)[0].BackupId)
	}
	got := states(e.backupsOf(cl.ClusterId))
	want := map[string]string{initialization.BackupId: BackupReady, activation.BackupId: BackupPendingDeletion}
	for i, id := range periodic { // made 1..10 days after activation; now is 10 days after it
		want[id] = BackupReady
		if i < 3 {
			want[id] = BackupPendingDeletion
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d backups, want %d: %v", len(got), len(want), got)
	}
	for id, st := range want {
		if got[id] != st {
			t.Errorf("backup %s is %s, want %s", id, got[id], st)
		}
	}
	for _, b := range e.backupsOf(cl.ClusterId) {
		if b.BackupState == BackupPendingDeletion && (b.DeleteTimestamp == nil || !time.Time(*b.DeleteTimestamp).After(clk.now())) {
			t.Errorf("expired backup %s has DeleteTimestamp %v", b.BackupId, b.DeleteTimestamp)
		}
	}

	// An expired backup can be restored like a deleted one; with the
	// policy unchanged it expires again, so change the policy first.
	e.must("ModifyCluster", ModifyClusterRequest{ClusterId: cl.ClusterId, BackupRetentionPolicy: &BackupRetentionPolicy{Type: "DAYS", Value: "30"}}, nil)
	e.must("RestoreBackup", RestoreBackupRequest{BackupId: activation.BackupId}, nil)
	e.reconcile()
	if got := states(e.backupsOf(cl.ClusterId))[activation.BackupId]; got != BackupReady {
		t.Fatalf("restored expired backup is %s", got)
	}

	// Seven days later the expired ones are gone for good, blobs too.
	clk.advance(7*24*time.Hour + time.Minute)
	e.reconcile()
	got = states(e.backupsOf(cl.ClusterId))
	for i, id := range periodic[:3] {
		if _, ok := got[id]; ok {
			t.Errorf("expired backup %d (%s) is still listed as %s", i, id, got[id])
		}
		if _, err := os.Stat(e.blobPath("us-east-1", id)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("expired backup %s: blob still there: %v", id, err)
		}
	}
	if got[initialization.BackupId] != BackupReady || got[activation.BackupId] != BackupReady {
		t.Fatalf("never-expires or restored backup: %v", got)
	}
}

// The cluster's most recent backup is never expired, however old.
func TestRetentionKeepsNewest(t *testing.T) {
	e, clk := newClockEnv(t, nil)
	cl := e.active(clk, "us-east-1a")
	e.must("ModifyCluster", ModifyClusterRequest{ClusterId: cl.ClusterId, BackupRetentionPolicy: &BackupRetentionPolicy{Type: "DAYS", Value: "7"}}, nil)
	clk.advance(time.Hour)
	e.must("DeleteHsm", DeleteHsmRequest{ClusterId: cl.ClusterId, HsmId: cl.Hsms[0].HsmId}, nil)
	e.reconcile() // the backup before the removal, then the removal
	if n := len(e.describe(cl.ClusterId).Hsms); n != 0 {
		t.Fatalf("%d HSMs left", n)
	}
	newest := e.backupsOf(cl.ClusterId)[0]
	if newest.BackupState != BackupReady || e.prov.backupsBy[len(e.prov.backupsBy)-1] != cl.Hsms[0].HsmId {
		t.Fatalf("backup before removal %+v, taken from %v", newest, e.prov.backupsBy)
	}
	clk.advance(100 * 24 * time.Hour)
	e.reconcile()
	got := e.backupsOf(cl.ClusterId)
	for _, b := range got {
		want := BackupPendingDeletion
		if b.BackupId == newest.BackupId {
			want = BackupReady
		}
		if b.BackupState != want {
			t.Errorf("backup %s is %s, want %s", b.BackupId, b.BackupState, want)
		}
	}
	// It is what a new HSM of the cluster restores.
	h := e.createHsm(cl.ClusterId, "us-east-1a")
	e.reconcile()
	if e.prov.restored[h.HsmId] != newest.BackupId {
		t.Fatalf("new HSM restored %q, want %s", e.prov.restored[h.HsmId], newest.BackupId)
	}
}

func TestDeleteRestorePurge(t *testing.T) {
	e, clk := newClockEnv(t, nil)
	cl := e.active(clk, "us-east-1a")
	id := e.backupsOf(cl.ClusterId)[0].BackupId
	if _, err := os.Stat(e.blobPath("us-east-1", id)); err != nil {
		t.Fatalf("READY backup without blob: %v", err)
	}
	var del DeleteBackupResponse
	e.must("DeleteBackup", DeleteBackupRequest{BackupId: id}, &del)
	if del.Backup.BackupState != BackupPendingDeletion || !time.Time(*del.Backup.DeleteTimestamp).Equal(clk.now().Add(7*24*time.Hour)) {
		t.Fatalf("deleted %+v", del.Backup)
	}
	clk.advance(6 * 24 * time.Hour)
	e.reconcile()
	var res RestoreBackupResponse
	e.must("RestoreBackup", RestoreBackupRequest{BackupId: id}, &res)
	if res.Backup.BackupState != BackupReady || res.Backup.DeleteTimestamp != nil {
		t.Fatalf("restored %+v", res.Backup)
	}
	e.must("DeleteBackup", DeleteBackupRequest{BackupId: id}, nil)
	clk.advance(7*24*time.Hour - time.Second)
	e.reconcile()
	if got := states(e.backupsOf(cl.ClusterId))[id]; got != BackupPendingDeletion {
		t.Fatalf("a second before its DeleteTimestamp: %s", got)
	}
	clk.advance(time.Second)
	e.reconcile()
	if _, ok := states(e.backupsOf(cl.ClusterId))[id]; ok {
		t.Fatal("purged backup still listed")
	}
	wantErr(t, e.call("RestoreBackup", RestoreBackupRequest{BackupId: id}, nil), "CloudHsmResourceNotFoundException")
	if _, err := os.Stat(e.blobPath("us-east-1", id)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("purged backup's blob: %v", err)
	}
}

func TestPeriodicBackup(t *testing.T) {
	e, clk := newClockEnv(t, func(c *Config) { c.BackupInterval = time.Hour })
	cl := e.active(clk, "us-east-1a", "us-east-1b")
	n := len(e.backupsOf(cl.ClusterId))
	clk.advance(59 * time.Minute)
	e.reconcile()
	if got := len(e.backupsOf(cl.ClusterId)); got != n {
		t.Fatalf("%d backups before the interval, want %d", got, n)
	}
	clk.advance(2 * time.Minute)
	e.reconcile()
	bs := e.backupsOf(cl.ClusterId)
	if len(bs) != n+1 || bs[0].BackupState != BackupReady || !time.Time(*bs[0].CreateTimestamp).Equal(clk.now()) {
		e.s.mu.Lock()
		for _, b := range e.s.regions["us-east-1"].backups {
			t.Logf("%s %s %s %s", b.ID, b.Created, b.State, b.Reason)
		}
		e.s.mu.Unlock()
		t.Fatalf("after the interval (now %s) %d backups, want %d", clk.now(), len(bs), n+1)
	}
	// While the backup fails it stays CREATE_IN_PROGRESS and is retried;
	// the next one is due an interval after it started.
	e.prov.set(func(f *fakeProv) { f.backupErr = errors.New("disk full") })
	clk.advance(time.Hour)
	e.reconcile()
	e.reconcile()
	if bs := e.backupsOf(cl.ClusterId); len(bs) != n+2 || bs[0].BackupState != BackupCreateInProgress {
		t.Fatalf("failing backup %+v", bs[0])
	}
	e.prov.set(func(f *fakeProv) { f.backupErr = nil })
	e.reconcile()
	if bs := e.backupsOf(cl.ClusterId); len(bs) != n+2 || bs[0].BackupState != BackupReady {
		t.Fatalf("after the failure passed %+v", bs[0])
	}
}

// A removal waits for the backup taken before it; a backup that keeps
// failing is given up after maxBackupAttempts and the removal goes on.
func TestRemovalBackup(t *testing.T) {
	e, clk := newClockEnv(t, nil)
	cl := e.active(clk, "us-east-1a", "us-east-1b")
	n := len(e.backupsOf(cl.ClusterId))
	e.prov.set(func(f *fakeProv) { f.backupErr = errors.New("busy") })
	e.must("DeleteHsm", DeleteHsmRequest{ClusterId: cl.ClusterId, HsmId: cl.Hsms[0].HsmId}, nil)
	e.reconcile()
	if got := e.describe(cl.ClusterId).Hsms; len(got) != 2 || got[0].State != HsmDeleteInProgress {
		t.Fatalf("HSMs while the backup fails %+v", got)
	}
	e.prov.set(func(f *fakeProv) { f.backupErr = nil; f.backupsBy = nil })
	e.reconcile()
	if got := e.describe(cl.ClusterId).Hsms; len(got) != 1 || got[0].HsmId != cl.Hsms[1].HsmId {
		t.Fatalf("HSMs after the backup %+v", got)
	}
	bs := e.backupsOf(cl.ClusterId)
	if len(bs) != n+1 || bs[0].BackupState != BackupReady || !slices.Equal(e.prov.backupsBy, []string{cl.Hsms[1].HsmId}) {
		t.Fatalf("backup before removal %+v, taken from %v (want the HSM that stays)", bs[0], e.prov.backupsBy)
	}

	e.prov.set(func(f *fakeProv) { f.backupErr = errors.New("broken") })
	e.must("DeleteHsm", DeleteHsmRequest{ClusterId: cl.ClusterId, HsmId: cl.Hsms[1].HsmId}, nil)
	for i := range maxBackupAttempts {
		if len(e.describe(cl.ClusterId).Hsms) == 0 {
			t.Fatalf("removed after %d attempts", i)
		}
		e.reconcile()
	}
	if got := e.describe(cl.ClusterId).Hsms; len(got) != 0 {
		t.Fatalf("HSMs after the backup was given up %+v", got)
	}
	if got := len(e.backupsOf(cl.ClusterId)); got != n+1 {
		t.Fatalf("%d backups; the given-up one must not be listed", got)
	}
}

func TestCopyBackup(t *testing.T) {
	e, clk := newClockEnv(t, nil)
	cl := e.active(clk, "us-east-1a")
	src := e.backupsOf(cl.ClusterId)[0]
	e.must("TagResource", TagResourceRequest{ResourceId: src.BackupId, TagList: []Tag{{Key: "team", Value: "pay"}}}, nil)
	clk.advance(time.Minute)
	var cp CopyBackupToRegionResponse
	e.must("CopyBackupToRegion", CopyBackupToRegionRequest{DestinationRegion: "us-west-2", BackupId: src.BackupId}, &cp)
	d := cp.DestinationBackup
	if d.SourceBackup != src.BackupId || d.SourceCluster != cl.ClusterId || d.SourceRegion != "us-east-1" ||
		!time.Time(*d.CreateTimestamp).Equal(time.Time(*src.CreateTimestamp)) {
		t.Fatalf("DestinationBackup %+v, source %+v", d, src)
	}
	e.reconcile()
	west := e.backupsIn("us-west-2", map[string][]string{"sourceBackupIds": {src.BackupId}})
	if len(west) != 1 || west[0].BackupState != BackupReady || west[0].ClusterId != cl.ClusterId || west[0].CopyTimestamp == nil ||
		!slices.Contains(west[0].TagList, Tag{Key: "team", Value: "pay"}) {
		t.Fatalf("copy %+v", west)
	}
	a, err1 := os.ReadFile(e.blobPath("us-east-1", src.BackupId))
	b, err2 := os.ReadFile(e.blobPath("us-west-2", west[0].BackupId))
	if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
		t.Fatalf("blobs differ: %v %v", err1, err2)
	}
	// A copy of the copy, back in the first region, is still bound to the original.
	if err := e.callIn("us-west-2", "CopyBackupToRegion", CopyBackupToRegionRequest{DestinationRegion: "us-east-1", BackupId: west[0].BackupId}, nil); err != nil {
		t.Fatal(err)
	}
	e.reconcile()
	back := e.backupsIn("us-east-1", map[string][]string{"sourceBackupIds": {west[0].BackupId}})
	if len(back) != 1 || back[0].BackupState != BackupReady || back[0].SourceRegion != "us-west-2" {
		t.Fatalf("copy of the copy %+v", back)
	}
	e.s.mu.Lock()
	bound1, bound2 := e.s.regions["us-west-2"].backups[west[0].BackupId].BoundID, e.s.regions["us-east-1"].backups[back[0].BackupId].BoundID
	e.s.mu.Unlock()
	if bound1 != src.BackupId || bound2 != src.BackupId {
		t.Fatalf("bound ids %s %s, want %s", bound1, bound2, src.BackupId)
	}

	// Copies belong to no cluster: the retention policy does not expire them.
	e.must("ModifyCluster", ModifyClusterRequest{ClusterId: cl.ClusterId, BackupRetentionPolicy: &BackupRetentionPolicy{Type: "DAYS", Value: "7"}}, nil)
	clk.advance(30 * 24 * time.Hour)
	e.reconcile() // a periodic backup; src was still the newest READY one
	e.reconcile()
	if got := states(e.backupsIn("us-east-1", nil)); got[src.BackupId] != BackupPendingDeletion || got[back[0].BackupId] != BackupReady {
		t.Fatalf("after 30 days in us-east-1: %v", got)
	}
	if got := e.backupsIn("us-west-2", nil); len(got) != 1 || got[0].BackupState != BackupReady {
		t.Fatalf("after 30 days in us-west-2: %+v", got)
	}

	// A cluster from the copy, in the other region.
	var made CreateClusterResponse
	err := e.callIn("us-west-2", "CreateCluster", CreateClusterRequest{HsmType: "hsm1.medium", SubnetIds: []string{"subnet-1aaaaaaa"}, SourceBackupId: west[0].BackupId}, &made)
	if err != nil || made.Cluster.State != ClusterInitialized || made.Cluster.Certificates.ClusterCertificate != cl.Certificates.ClusterCertificate {
		t.Fatalf("cluster from the copy: %v %+v", err, made.Cluster)
	}
}

func TestCreateClusterFromBackup(t *testing.T) {
	e, clk := newClockEnv(t, nil)
	cl := e.active(clk, "us-east-1a")
	srcRef := ClusterRef{Region: "us-east-1", ClusterID: cl.ClusterId}
	e.prov.set(func(f *fakeProv) { f.objects[srcRef] = []string{"key-1", "key-2"} })
	clk.advance(time.Minute)
	e.createHsm(cl.ClusterId, "us-east-1b")
	e.reconcile()
	b := e.backupsOf(cl.ClusterId)[0]
	e.s.mu.Lock()
	records := e.s.regions["us-east-1"].backups[b.BackupId].Records
	e.s.mu.Unlock()
	if b.BackupState != BackupReady || records != 2 {
		t.Fatalf("backup at the second HSM %+v, %d records", b, records)
	}
	// From now on only the backup says the cluster was activated.
	e.prov.set(func(f *fakeProv) { f.activated = false })

	var made CreateClusterResponse
	e.must("CreateCluster", CreateClusterRequest{HsmType: "hsm1.medium", SubnetIds: []string{"subnet-0aaaaaaa", "subnet-0bbbbbbb"}, SourceBackupId: b.BackupId,
		TagList: []Tag{{Key: "dr", Value: "yes"}}}, &made)
	nc := made.Cluster
	if nc.State != ClusterInitialized || nc.SourceBackupId != b.BackupId || nc.Certificates == nil ||
		nc.Certificates.ClusterCertificate != cl.Certificates.ClusterCertificate || nc.Certificates.ClusterCsr != cl.Certificates.ClusterCsr ||
		len(nc.Hsms) != 0 {
		t.Fatalf("cluster from a backup %+v", nc)
	}
	e.reconcile()
	if got := e.describe(nc.ClusterId).State; got != ClusterInitialized {
		t.Fatalf("without HSMs the restored cluster is %s", got)
	}
	h1 := e.createHsm(nc.ClusterId, "us-east-1a")
	e.reconcile()
	newRef := ClusterRef{Region: "us-east-1", ClusterID: nc.ClusterId}
	spec := e.prov.specs[h1.HsmId]
	if spec.MaskingKey != "restore" || spec.Restore == nil || spec.Restore.BoundID != b.BackupId ||
		!slices.Equal(e.prov.objects[newRef], []string{"key-1", "key-2"}) {
		t.Fatalf("first HSM: spec %+v, objects %v", spec, e.prov.objects[newRef])
	}
	got := e.describe(nc.ClusterId)
	if got.State != ClusterActive || got.Hsms[0].State != HsmActive || got.Certificates.HsmCertificate == "" {
		t.Fatalf("restored cluster after its first HSM %+v", got)
	}
	h2 := e.createHsm(nc.ClusterId, "us-east-1b")
	e.reconcile()
	if spec := e.prov.specs[h2.HsmId]; spec.MaskingKey != "clone" || spec.Restore != nil {
		t.Fatalf("second HSM spec %+v", spec)
	}
	if own := e.backupsOf(nc.ClusterId); len(own) != 2 || own[0].BackupState != BackupReady || own[1].BackupState != BackupReady {
		t.Fatalf("backups of the restored cluster %+v", own)
	}

}

// A backup of a cluster not activated makes a cluster that waits for its
// activation, and the mode must match.
func TestCreateClusterFromBackupNotActivated(t *testing.T) {
	e := newTestEnv(t)
	var made CreateClusterResponse
	e2 := e.initialized("us-east-1b")
	var init Backup
	for _, x := range e.backupsOf(e2.ClusterId) {
		init = x
	}
	e.must("CreateCluster", CreateClusterRequest{HsmType: "hsm1.medium", SubnetIds: []string{"subnet-0bbbbbbb"}, SourceBackupId: init.BackupId}, &made)
	e.createHsm(made.Cluster.ClusterId, "us-east-1b")
	e.reconcile()
	if got := e.describe(made.Cluster.ClusterId).State; got != ClusterInitialized {
		t.Fatalf("cluster from a backup of a cluster not activated: %s", got)
	}
	err := e.call("CreateCluster", CreateClusterRequest{HsmType: "hsm2m.medium", Mode: "FIPS", SubnetIds: []string{"subnet-0aaaaaaa"}, SourceBackupId: init.BackupId}, nil)
	wantErr(t, err, "CloudHsmInvalidRequestException")
}

func TestRefusedBackup(t *testing.T) {
	e, clk := newClockEnv(t, nil)
	cl := e.active(clk, "us-east-1a")
	bs := e.backupsOf(cl.ClusterId)
	id, other := bs[0].BackupId, bs[1].BackupId
	path := e.blobPath("us-east-1", id)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	otherBlob, err := os.ReadFile(e.blobPath("us-east-1", other))
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.Clone(orig)
	edited[len(edited)/2] ^= 1
	setSize := func(n int64) {
		e.s.mu.Lock()
		e.s.regions["us-east-1"].backups[id].Bytes = n
		e.s.mu.Unlock()
	}
	clusters := func() int {
		var out DescribeClustersResponse
		e.must("DescribeClusters", DescribeClustersRequest{}, &out)
		return len(out.Clusters)
	}
	before := clusters()
	for _, c := range []struct {
		name string
		blob []byte // nil: no blob at all
		want string
	}{
		{"edited", edited, "authentication failed"},
		// A blob not of the backup's recorded size is refused before the
		// HSM side reads it (the HSM side's own refusals of these are
		// tested with the blob format).
		{"truncated", orig[:len(orig)-100], "not the size its backup recorded"},
		{"cut short", orig[:8], "not the size its backup recorded"},
		{"not a backup", []byte("PK\x03\x04 a zip file"), "not the size its backup recorded"},
		{"longer", append(bytes.Clone(orig), 0), "not the size its backup recorded"},
		// The other backup's blob, with the record's size edited to match
		// (by whoever holds the database too), reaches the HSM side.
		{"swapped", otherBlob, "is backup " + other + ", not " + id},
		{"missing", nil, "no contents"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.blob == nil {
				os.Remove(path)
			} else if err := os.WriteFile(path, c.blob, 0o600); err != nil {
				t.Fatal(err)
			}
			if c.name == "swapped" {
				setSize(int64(len(c.blob)))
				defer setSize(int64(len(orig)))
			}
			err := e.call("CreateCluster", CreateClusterRequest{HsmType: "hsm1.medium", SubnetIds: []string{"subnet-0aaaaaaa"}, SourceBackupId: id}, nil)
			wantErr(t, err, "CloudHsmInvalidRequestException")
			if !strings.Contains(err.Message, c.want) || !strings.Contains(err.Message, id) {
				t.Fatalf("message %q lacks %q or the backup id", err.Message, c.want)
			}
			if n := clusters(); n != before {
				t.Fatalf("%d clusters after a refused restore, want %d", n, before)
			}
			e.prov.mu.Lock()
			made := len(e.prov.clusters)
			e.prov.mu.Unlock()
			if made != 0 {
				t.Fatal("the HSM side kept something of a refused restore")
			}
		})
	}
	if err := os.WriteFile(path, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	heldBack := func() int {
		e.prov.mu.Lock()
		defer e.prov.mu.Unlock()
		return len(e.prov.clusters)
	}
	// A record edited to name another cluster than the blob does: the
	// HSM side accepted the blob, the control plane refuses and undoes it.
	e.s.mu.Lock()
	rec := e.s.regions["us-east-1"].backups[id]
	realCluster := rec.ClusterID
	rec.ClusterID = "cluster-aaaaaaaaaaa"
	e.s.mu.Unlock()
	aerr := e.call("CreateCluster", CreateClusterRequest{HsmType: "hsm1.medium", SubnetIds: []string{"subnet-0aaaaaaa"}, SourceBackupId: id}, nil)
	wantErr(t, aerr, "CloudHsmInvalidRequestException")
	if !strings.Contains(aerr.Message, "a backup of cluster "+realCluster) || clusters() != before || heldBack() != 0 {
		t.Fatalf("edited record: %v, %d clusters, %d on the HSM side", aerr, clusters(), heldBack())
	}
	e.s.mu.Lock()
	rec.ClusterID = realCluster
	e.s.mu.Unlock()
	// The HSM side failing (not refusing) is an internal failure, and makes nothing.
	e.prov.set(func(f *fakeProv) { f.restoreErr = errors.New("disk full") })
	wantErr(t, e.call("CreateCluster", CreateClusterRequest{HsmType: "hsm1.medium", SubnetIds: []string{"subnet-0aaaaaaa"}, SourceBackupId: id}, nil), "CloudHsmInternalFailureException")
	if clusters() != before {
		t.Fatal("a failed restore made a cluster")
	}
	e.prov.set(func(f *fakeProv) { f.restoreErr = nil })
	e.must("CreateCluster", CreateClusterRequest{HsmType: "hsm1.medium", SubnetIds: []string{"subnet-0aaaaaaa"}, SourceBackupId: id}, nil)
	if n := clusters(); n != before+1 {
		t.Fatalf("%d clusters after the restore, want %d", n, before+1)
	}
}
