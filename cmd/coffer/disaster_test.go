package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
	"github.com/coffer-hsm/coffer/internal/testtool"
)

// The passwords of the clusters these tests make (the admin's is the one
// cofferCmd gives coffer cli).
const (
	drAdminPassword = "admin-password-1"
	drCUPassword    = "app-password-1"
)

// TestSeed000CloneAcrossRegions is seed 000 (how to clone a CloudHSM
// cluster across regions) as written, with the real aws CLI, coffer cli and
// pkcs11-tool: an activated cluster with a crypto user in region 1; an added
// HSM triggers a backup; a non-extractable AES-256 key made after it; the
// backup copied to region 2 and a cluster created from it there; the
// region 1 users and the backup's keys work in region 2; key replicate
// brings the later key, which decrypts in region 2, through the PKCS#11
// module, what region 1 encrypted. Then: a replicate into an unrelated
// cluster is refused, and so is a tampered backup.
func TestSeed000CloneAcrossRegions(t *testing.T) {
	testtool.Require(t, "aws", "openssl", "pkcs11-tool")
	w := startWalkthrough(t)
	east, west := w, w.in("us-west-2")

	// Step 1: the first cluster, in region 1, activated, with a crypto
	// user, and a key made before the backup.
	src := east.activeCluster("us-east-1", "subnet-0aaaaaaa", "subnet-0bbbbbbb")
	src.cli(w, "key", "generate-symmetric", "aes", "--label", "before-backup", "--key-length-bytes", "32", "--attributes", "extractable=false")

	// Step 2: "Trigger a backup of your cluster": add an HSM.
	seen := east.backupIDs(src.id)
	east.aws("create-hsm", "--cluster-id", src.id, "--availability-zone", "us-east-1b")
	east.waitFor("ACTIVE ACTIVE", "describe-clusters", "--filters", "clusterIds="+src.id, "--query", "join(' ', Clusters[0].Hsms[].State)")
	backupID := east.newBackup(src.id, seen)

	// Step 3: a non-extractable AES-256 key made after the backup
	// (genSymKey -t 31 -s 32 -l aes256 -nex).
	src.cli(w, "key", "generate-symmetric", "aes", "--label", "aes256", "--key-length-bytes", "32", "--attributes", "extractable=false")

	// Step 4: copy the backup to region 2 and create a cluster from it.
	var copied struct {
		DestinationBackup struct {
			CreateTimestamp float64
			SourceBackup    string
			SourceCluster   string
			SourceRegion    string
		}
	}
	east.awsJSON(&copied, "copy-backup-to-region", "--destination-region", "us-west-2", "--backup-id", backupID)
	d := copied.DestinationBackup
	if d.SourceBackup != backupID || d.SourceCluster != src.id || d.SourceRegion != "us-east-1" || d.CreateTimestamp == 0 {
		t.Fatalf("copy-backup-to-region: %+v", d)
	}
	var copyID string
	west.eventually("the copy in region 2", func() (bool, string) {
		for _, b := range west.backups("") {
			if b.SourceBackup == backupID && b.BackupState == "READY" {
				copyID = b.BackupId
			}
		}
		return copyID != "", west.aws("describe-backups")
	})
	var created struct {
		Cluster struct{ ClusterId, State, SourceBackupId string }
	}
	west.awsJSON(&created, "create-cluster", "--hsm-type", "hsm1.medium", "--subnet-ids", "subnet-1aaaaaaa", "--source-backup-id", copyID)
	clone := &drCluster{id: created.Cluster.ClusterId, region: "us-west-2"}
	if created.Cluster.SourceBackupId != copyID {
		t.Fatalf("create-cluster from the copy: %+v", created.Cluster)
	}
	// "This cluster will launch already initialized for you."
	west.waitFor("INITIALIZED", "describe-clusters", "--filters", "clusterIds="+clone.id, "--query", "Clusters[0].State")
	west.aws("create-hsm", "--cluster-id", clone.id, "--availability-zone", "us-west-2a")
	west.waitFor("ACTIVE", "describe-clusters", "--filters", "clusterIds="+clone.id, "--query", "Clusters[0].Hsms[0].State")
	west.waitFor("ACTIVE", "describe-clusters", "--filters", "clusterIds="+clone.id, "--query", "Clusters[0].State")
	clone.ip = west.aws("describe-clusters", "--filters", "clusterIds="+clone.id, "--query", "Clusters[0].Hsms[0].EniIp")
	clone.config = w.cliConfig(clone.id, clone.ip)

	// The same cluster certificate and trust anchor: the client trusts the
	// clone's HSM under the customer CA of region 1, and the clone's
	// certificate is the one region 1 was initialized with.
	if got, want := west.aws("describe-clusters", "--filters", "clusterIds="+clone.id, "--query", "Clusters[0].Certificates.ClusterCertificate"),
		east.aws("describe-clusters", "--filters", "clusterIds="+src.id, "--query", "Clusters[0].Certificates.ClusterCertificate"); got != want {
		t.Errorf("the clone's cluster certificate differs from its source's:\n%s\n%s", got, want)
	}

	// The admin's password and the crypto user of region 1 work in region
	// 2; the backup's key is there, the later one is not yet.
	clone.adminCmd(w, "user", "list")
	if out := clone.cli(w, "key", "list", "--filter", "attr.label=before-backup"); !strings.Contains(out, `"total_key_count": 1`) {
		t.Fatalf("the backup's key in the clone:\n%s", out)
	}
	if out := clone.cli(w, "key", "list", "--filter", "attr.label=aes256"); !strings.Contains(out, `"total_key_count": 0`) {
		t.Fatalf("a key made after the backup is already in the clone:\n%s", out)
	}

	// Region 1 encrypts with the later key through the PKCS#11 module.
	plain := filepath.Join(w.dir, "plain.txt")
	if err := os.WriteFile(plain, []byte("encrypted in region 1, decrypted in region 2"), 0o600); err != nil {
		t.Fatal(err)
	}
	const iv = "000102030405060708090a0b0c0d0e0f"
	w.pkcs11Tool(src.id, src.ip, "app_user:"+drCUPassword, "--encrypt", "--mechanism", "AES-CBC-PAD", "--iv", iv,
		"--label", "aes256", "--input-file", plain, "--output-file", filepath.Join(w.dir, "sealed.bin"))

	// Steps 5–6: syncKey, as CloudHSM CLI's key replicate, with one client
	// configuration naming both clusters.
	both := filepath.Join(w.dir, "both.json")
	w.cofferCmd("configure", "cli", "add-cluster", "--cluster-id", src.id, "-a", net.JoinHostPort(src.ip, "2223"), "--hsm-ca-cert", filepath.Join(w.dir, "ca-cert.pem"), "--path", both)
	w.cofferCmd("configure", "cli", "add-cluster", "--cluster-id", clone.id, "-a", clone.ip, "--hsm-ca-cert", filepath.Join(w.dir, "ca-cert.pem"), "--path", both)
	replicate := func(dst string) (string, error) {
		return w.cofferErr([]string{"DESTINATION_CLOUDHSM_PIN=app_user:" + drCUPassword, "DESTINATION_CLOUDHSM_ROLE=crypto-user"},
			"cli", "--cluster-config", both, "--cluster-id", src.id, "--username", "app_user", "--role", "crypto-user", "--password", drCUPassword,
			"key", "replicate", "--filter", "attr.label=aes256", "--source-cluster-id", src.id, "--destination-cluster-id", dst)
	}
	if out, err := replicate(clone.id); err != nil {
		t.Fatalf("key replicate: %v\n%s", err, out)
	}
	if out := clone.cli(w, "key", "list", "--filter", "attr.label=aes256", "--verbose"); !strings.Contains(out, `"extractable": false`) ||
		!strings.Contains(out, `"owner": "app_user"`) {
		t.Fatalf("the replicated key in the clone:\n%s", out)
	}
	opened := filepath.Join(w.dir, "opened.txt")
	w.pkcs11ToolAs(clone.id, src.id, clone.ip, "app_user:"+drCUPassword, "--decrypt", "--mechanism", "AES-CBC-PAD", "--iv", iv,
		"--label", "aes256", "--input-file", filepath.Join(w.dir, "sealed.bin"), "--output-file", opened)
	if a, b := readFile(t, plain), readFile(t, opened); !bytes.Equal(a, b) {
		t.Fatalf("region 2 decrypted %q, region 1 encrypted %q", b, a)
	}

	// A cluster that was not made from the backup shares no masking key:
	// the same replicate into it is refused, saying why.
	other := east.activeCluster("us-east-1", "subnet-0ccccccc")
	w.cofferCmd("configure", "cli", "add-cluster", "--cluster-id", other.id, "-a", net.JoinHostPort(other.ip, "2223"), "--hsm-ca-cert", filepath.Join(w.dir, "ca-cert.pem"), "--path", both)
	if out, err := replicate(other.id); err == nil || !strings.Contains(out, "masking key") {
		t.Fatalf("key replicate into an unrelated cluster: %v\n%s", err, out)
	}

	// A tampered backup is refused at restore, and no cluster is made.
	blob := backupBlob(t, w, "us-west-2", copyID)
	b := readFile(t, blob)
	b[len(b)/2] ^= 1
	if err := os.WriteFile(blob, b, 0o600); err != nil {
		t.Fatal(err)
	}
	before := west.aws("describe-clusters", "--query", "length(Clusters)")
	out, err := west.awsErr("create-cluster", "--hsm-type", "hsm1.medium", "--subnet-ids", "subnet-1aaaaaaa", "--source-backup-id", copyID)
	if err == nil || !strings.Contains(out, "InvalidRequestException") {
		t.Fatalf("create-cluster from a tampered backup: %v\n%s", err, out)
	}
	if after := west.aws("describe-clusters", "--query", "length(Clusters)"); after != before {
		t.Fatalf("a refused restore left a cluster: %s clusters before, %s after", before, after)
	}
}

// TestDisasterRecoveryFromLastBackup kills every HSM of a cluster with
// SIGKILL and deletes their data directories: a new cluster made from the
// cluster's last backup serves every key the backup held.
func TestDisasterRecoveryFromLastBackup(t *testing.T) {
	testtool.Require(t, "aws", "openssl")
	w := startWalkthrough(t)
	src := w.activeCluster("us-east-1", "subnet-0aaaaaaa", "subnet-0bbbbbbb")
	labels := []string{"dr-aes-1", "dr-aes-2", "dr-aes-3"}
	for _, l := range labels {
		src.cli(w, "key", "generate-symmetric", "aes", "--label", l, "--key-length-bytes", "32", "--attributes", "extractable=false")
	}
	ctx := t.Context()
	s := w.login(ctx, src.id, []string{src.ip}, "crypto-user", "app_user", drCUPassword)
	gcm := client.Mechanism{Type: ck.CKM_AES_GCM, IV: []byte("coffer-iv-12"), TagBits: 128}
	sealed := map[string][]byte{}
	for _, l := range labels {
		keys, err := s.FindObjects(ctx, []client.Attribute{{Type: ck.CKA_LABEL, Value: []byte(l)}})
		if err != nil || len(keys) != 1 {
			t.Fatalf("key %s: %v %v", l, keys, err)
		}
		if sealed[l], err = s.Encrypt(ctx, keys[0], gcm, []byte("kept by "+l)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close(ctx)

	// The backup CloudHSM takes when an HSM is added holds the keys.
	seen := w.backupIDs(src.id)
	w.aws("create-hsm", "--cluster-id", src.id, "--availability-zone", "us-east-1b")
	w.waitFor("ACTIVE ACTIVE", "describe-clusters", "--filters", "clusterIds="+src.id, "--query", "join(' ', Clusters[0].Hsms[].State)")
	last := w.newBackup(src.id, seen)

	// Every HSM of the cluster killed, its data gone.
	dirs, err := filepath.Glob(filepath.Join(w.dir, "cp", "hsm-side", "us-east-1", src.id, "hsm-*"))
	if err != nil || len(dirs) != 2 {
		t.Fatalf("HSM directories of %s: %v %v", src.id, dirs, err)
	}
	for _, d := range dirs {
		pid := readFile(t, filepath.Join(d, "node.pid"))
		var p int
		if _, err := fmt.Sscan(string(pid), &p); err != nil {
			t.Fatal(err)
		}
		syscall.Kill(p, syscall.SIGKILL)
		if err := os.RemoveAll(filepath.Join(d, "data")); err != nil {
			t.Fatal(err)
		}
	}

	// A new cluster from the last backup.
	var created struct{ Cluster struct{ ClusterId string } }
	w.awsJSON(&created, "create-cluster", "--hsm-type", "hsm1.medium", "--subnet-ids", "subnet-0ccccccc", "--source-backup-id", last)
	id := created.Cluster.ClusterId
	w.waitFor("INITIALIZED", "describe-clusters", "--filters", "clusterIds="+id, "--query", "Clusters[0].State")
	w.aws("create-hsm", "--cluster-id", id, "--availability-zone", "us-east-1c")
	w.waitFor("ACTIVE", "describe-clusters", "--filters", "clusterIds="+id, "--query", "Clusters[0].Hsms[0].State")
	ip := w.aws("describe-clusters", "--filters", "clusterIds="+id, "--query", "Clusters[0].Hsms[0].EniIp")
	// The restored cluster runs under its own id, with its source's
	// cluster certificate.
	s = w.loginAs(ctx, id, src.id, []string{ip}, "crypto-user", "app_user", drCUPassword)
	defer s.Close(ctx)
	for _, l := range labels {
		keys, err := s.FindObjects(ctx, []client.Attribute{{Type: ck.CKA_LABEL, Value: []byte(l)}})
		if err != nil || len(keys) != 1 {
			t.Fatalf("key %s in the restored cluster: %v %v", l, keys, err)
		}
		plain, err := s.Decrypt(ctx, keys[0], gcm, sealed[l])
		if err != nil || string(plain) != "kept by "+l {
			t.Fatalf("key %s decrypts %q, %v", l, plain, err)
		}
	}
}

// drCluster is an activated cluster with the crypto user app_user.
type drCluster struct {
	id, region string
	ip         string // its first HSM's ENI address
	config     string // a coffer cli configuration naming that HSM
}

// activeCluster makes a cluster in the given subnets with one HSM (in the
// first subnet's AZ), initializes it with a certificate signed by the test's
// openssl CA (made on first use), activates it and creates the crypto user
// app_user: seed 000's step 1.
func (w *walkthrough) activeCluster(region string, subnets ...string) *drCluster {
	w.t.Helper()
	var created struct{ Cluster struct{ ClusterId string } }
	w.awsJSON(&created, append([]string{"create-cluster", "--hsm-type", "hsm1.medium", "--subnet-ids"}, subnets...)...)
	c := &drCluster{id: created.Cluster.ClusterId, region: region}
	w.waitFor("UNINITIALIZED", "describe-clusters", "--filters", "clusterIds="+c.id, "--query", "Clusters[0].State")
	var az string
	for a, s := range w.subnetMapping(c.id) {
		if s == subnets[0] {
			az = a
		}
	}
	w.aws("create-hsm", "--cluster-id", c.id, "--availability-zone", az)
	w.waitFor("ACTIVE", "describe-clusters", "--filters", "clusterIds="+c.id, "--query", "Clusters[0].Hsms[0].State")
	csr := w.aws("describe-clusters", "--filters", "clusterIds="+c.id, "--query", "Clusters[0].Certificates.ClusterCsr")
	w.write(c.id+"-csr.pem", csr)
	if _, err := os.Stat(filepath.Join(w.dir, "ca-cert.pem")); err != nil {
		w.openssl("genrsa", "-out", "ca-key.pem", "2048")
		w.openssl("req", "-new", "-x509", "-key", "ca-key.pem", "-out", "ca-cert.pem", "-days", "3650", "-subj", "/CN=CloudHSM CA")
	}
	w.openssl("x509", "-req", "-in", c.id+"-csr.pem", "-CA", "ca-cert.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
		"-out", c.id+"-cert.pem", "-days", "3650", "-sha256")
	w.aws("initialize-cluster", "--cluster-id", c.id, "--signed-cert", "file://"+c.id+"-cert.pem", "--trust-anchor", "file://ca-cert.pem")
	w.waitFor("INITIALIZED", "describe-clusters", "--filters", "clusterIds="+c.id, "--query", "Clusters[0].State")
	c.ip = w.aws("describe-clusters", "--filters", "clusterIds="+c.id, "--query", "Clusters[0].Hsms[0].EniIp")
	c.config = w.cliConfig(c.id, c.ip)
	w.cofferCmd("cli", "--cluster-config", c.config, "cluster", "activate", "--password", drAdminPassword)
	c.adminCmd(w, "user", "create", "--username", "app_user", "--role", "crypto-user", "--password", drCUPassword)
	w.waitFor("ACTIVE", "describe-clusters", "--filters", "clusterIds="+c.id, "--query", "Clusters[0].State")
	return c
}

// subnetMapping returns a cluster's AZ → subnet map.
func (w *walkthrough) subnetMapping(id string) map[string]string {
	w.t.Helper()
	var out struct {
		Clusters []struct{ SubnetMapping map[string]string }
	}
	w.awsJSON(&out, "describe-clusters", "--filters", "clusterIds="+id)
	if len(out.Clusters) != 1 {
		w.t.Fatalf("describe-clusters %s: %+v", id, out)
	}
	return out.Clusters[0].SubnetMapping
}

// newBackup waits for a READY backup of the cluster that is not in seen.
func (w *walkthrough) newBackup(id string, seen map[string]bool) string {
	w.t.Helper()
	var found string
	w.eventually("a new READY backup of "+id, func() (bool, string) {
		bs := w.backups(id)
		for _, b := range bs {
			if b.BackupState == "READY" && !seen[b.BackupId] {
				found = b.BackupId
			}
		}
		return found != "", fmt.Sprint(bs)
	})
	return found
}

// backupIDs returns the ids of the cluster's backups.
func (w *walkthrough) backupIDs(id string) map[string]bool {
	w.t.Helper()
	ids := map[string]bool{}
	for _, b := range w.backups(id) {
		ids[b.BackupId] = true
	}
	return ids
}

// drBackup is a backup as describe-backups shows it.
type drBackup struct {
	BackupId, BackupState, ClusterId, SourceBackup, SourceRegion string
	CreateTimestamp                                              float64
}

// backups lists the region's backups, of one cluster if id is set.
func (w *walkthrough) backups(id string) []drBackup {
	w.t.Helper()
	args := []string{"describe-backups"}
	if id != "" {
		args = append(args, "--filters", "clusterIds="+id)
	}
	var out struct{ Backups []drBackup }
	w.awsJSON(&out, args...)
	return out.Backups
}

// cliConfig writes a coffer cli configuration for the HSM at ip.
func (w *walkthrough) cliConfig(id, ip string) string {
	w.t.Helper()
	path := filepath.Join(w.dir, id+".json")
	w.cofferCmd("configure", "cli", "-a", net.JoinHostPort(ip, "2223"), "--hsm-ca-cert", filepath.Join(w.dir, "ca-cert.pem"), "--path", path)
	return path
}

// cli runs coffer cli on the cluster as the crypto user.
func (c *drCluster) cli(w *walkthrough, args ...string) string {
	w.t.Helper()
	return w.cofferCmd(append([]string{"cli", "--cluster-config", c.config, "--username", "app_user", "--role", "crypto-user", "--password", drCUPassword}, args...)...)
}

// adminCmd runs coffer cli on the cluster as its admin.
func (c *drCluster) adminCmd(w *walkthrough, args ...string) string {
	w.t.Helper()
	return w.cofferCmd(append([]string{"cli", "--cluster-config", c.config, "--username", "admin", "--role", "admin", "--password", drAdminPassword}, args...)...)
}

// backupBlob finds the blob of a backup in the region's local blob store.
func backupBlob(t *testing.T, w *walkthrough, region, id string) string {
	t.Helper()
	var found []string
	filepath.Walk(filepath.Join(w.dir, "cp"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && strings.Contains(p, region) && strings.Contains(filepath.Base(p), id) {
			found = append(found, p)
		}
		return nil
	})
	if len(found) != 1 {
		t.Fatalf("the blob of %s in %s: found %v", id, region, found)
	}
	return found[0]
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
