package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/client"
	"github.com/coffer-hsm/coffer/internal/controlplane"
	"github.com/coffer-hsm/coffer/internal/pki"
)

// TestProcessesBackupRestore drives the Processes provisioner's backup
// methods against real `coffer hsm` processes: a backup of a running node,
// a tampered blob refused with nothing left of the new cluster, a new
// cluster's HSM side restored, and its first node started from the blob.
func TestProcessesBackupRestore(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the HSMs need their own loopback addresses")
	}
	ctx := t.Context()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "coffer")
	if err := os.Symlink(exe, bin); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	dir := filepath.Join(root, "hsm-side")
	prov, err := controlplane.NewProcesses(controlplane.ProcessesConfig{
		Dir: dir, Executable: bin, SealingKeyPath: filepath.Join(root, "sealing.key"), StopTimeout: 5 * time.Second,
		TestPasswordCost: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prov.Close(t.Context(), true) })
	if fi, err := os.Stat(filepath.Join(dir, "backup.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the backup key was not made 0600 in the HSM side's directory: %v %v", fi, err)
	}

	ca, caKey, err := pki.NewCustomerCA("test CA", time.Now().AddDate(1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	anchor := string(pki.EncodeCertificatesPEM(ca))
	spec := func(ref controlplane.ClusterRef, ip, mk, certPEM string) controlplane.NodeSpec {
		return controlplane.NodeSpec{
			HSMRef: controlplane.HSMRef{ClusterRef: ref, HsmID: "hsm-" + ref.ClusterID}, NodeID: 1, IP: ip,
			Port: freeLoopbackPort(t, ip), MetricsPort: freeLoopbackPort(t, ip), MaskingKey: mk,
			ClusterCertificate: certPEM, TrustAnchor: anchor,
		}
	}
	waitReady := func(s controlplane.NodeSpec) {
		t.Helper()
		pollUntil(t, s.HsmID+" ready", func() error {
			st, err := prov.Ensure(ctx, s, false)
			if err != nil {
				return err
			}
			if !st.Ready {
				return errors.New(st.Message)
			}
			return nil
		})
	}

	src := controlplane.ClusterRef{Region: "r1", ClusterID: "cluster-src"}
	key, err := prov.ClusterKey(ctx, src, "hsm-cluster-src")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := pki.SignCSR(ca, caKey, []byte(key.ClusterCSR), time.Now().AddDate(1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	s1 := spec(src, "127.0.0.41", "create", string(certPEM))
	waitReady(s1)

	var blob bytes.Buffer
	info, err := prov.Backup(ctx, s1, "backup-1", &blob)
	if err != nil {
		t.Fatal(err)
	}
	if info.Records == 0 || info.Bytes != int64(blob.Len()) {
		t.Fatalf("Backup: %+v, %d bytes written", info, blob.Len())
	}

	// The restored cluster, under an id of its own in another region,
	// keeps the source's certificate: its node serves under its own id,
	// its node certificate naming it under the certificate whose
	// CommonName is the source's id.
	dst := controlplane.ClusterRef{Region: "r2", ClusterID: "cluster-dst"}
	tampered := bytes.Clone(blob.Bytes())
	tampered[len(tampered)/2] ^= 1
	for _, tc := range []struct {
		name, id string
		blob     []byte
		want     string
	}{
		{"tampered", "backup-1", tampered, "edited"},
		{"swapped", "backup-9", blob.Bytes(), "bound to another backup"},
		{"truncated", "backup-1", blob.Bytes()[:blob.Len()-3], "truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := prov.RestoreCluster(ctx, dst, tc.id, bytes.NewReader(tc.blob))
			if !errors.Is(err, controlplane.ErrBackupRefused) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrBackupRefused naming %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dir, dst.Region, dst.ClusterID)); !os.IsNotExist(err) {
				t.Fatalf("a refused restore left the cluster's HSM side (%v)", err)
			}
		})
	}

	rc, err := prov.RestoreCluster(ctx, dst, "backup-1", bytes.NewReader(blob.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if rc.SourceClusterID != src.ClusterID || rc.ClusterCSR != key.ClusterCSR || rc.ClusterCertificate != string(certPEM) ||
		rc.TrustAnchor != anchor || rc.Created.IsZero() || rc.NextNodeID != 2 {
		t.Fatalf("RestoreCluster: %+v", rc)
	}
	if !exists(filepath.Join(dir, dst.Region, dst.ClusterID, "cluster.key")) {
		t.Fatal("RestoreCluster wrote no cluster key")
	}
	// The first HSM of the new cluster starts from the blob, fetched once
	// while it has no store.
	s2 := spec(dst, "127.0.0.42", "restore", rc.ClusterCertificate)
	opened := 0
	s2.Restore = &controlplane.RestoreSource{BoundID: "backup-1", Open: func(context.Context) (io.ReadCloser, error) {
		opened++
		return io.NopCloser(bytes.NewReader(blob.Bytes())), nil
	}}
	waitReady(s2)
	hsmDir := filepath.Join(dir, dst.Region, dst.ClusterID, s2.HsmID)
	log, _ := os.ReadFile(filepath.Join(hsmDir, "hsm.log"))
	if !bytes.Contains(log, []byte("restored the store from a backup")) {
		t.Errorf("the node did not restore:\n%s", log)
	}
	if opened != 1 {
		t.Errorf("the blob was opened %d times, want once", opened)
	}
	if _, err := prov.Ensure(ctx, s2, false); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(hsmDir, "restore.blob")) {
		t.Error("restore.blob is kept after the node restored")
	}

	// It runs as cluster-dst: its config, the client configure makes (which
	// learns the id from the node certificate, verified under the anchor),
	// and the node itself say so.
	nf, err := readHSMFile(filepath.Join(hsmDir, "hsm.json"))
	if err != nil {
		t.Fatal(err)
	}
	if nf.ClusterID != dst.ClusterID || nf.CertificateClusterID != src.ClusterID {
		t.Fatalf("hsm.json: cluster %q, certificate cluster %q; want %s under %s's certificate", nf.ClusterID, nf.CertificateClusterID, dst.ClusterID, src.ClusterID)
	}
	anchorFile := filepath.Join(root, "customerCA.crt")
	if err := os.WriteFile(anchorFile, []byte(anchor), 0o644); err != nil {
		t.Fatal(err)
	}
	cliPath := filepath.Join(root, "cli.json")
	addr := net.JoinHostPort(s2.IP, strconv.Itoa(s2.Port))
	var out bytes.Buffer
	if err := runConfigure(ctx, []string{"cli", "-a", addr, "--hsm-ca-cert", anchorFile, "--path", cliPath}, &out, io.Discard); err != nil {
		t.Fatalf("configure cli: %v", err)
	}
	cf, err := client.ReadFile(cliPath)
	if err != nil {
		t.Fatal(err)
	}
	if cf.ClusterID != dst.ClusterID || cf.CertificateClusterID != src.ClusterID {
		t.Fatalf("configure learned cluster %q under %q's certificate, want %s under %s's (%s)", cf.ClusterID, cf.CertificateClusterID, dst.ClusterID, src.ClusterID, out.String())
	}
	cfg, err := cf.Config(nil)
	if err != nil {
		t.Fatal(err)
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cl, err := client.Dial(dctx, cfg)
	if err != nil {
		t.Fatalf("dial the restored cluster with the configured trust: %v", err)
	}
	defer cl.Close()
	hsms := cl.ClusterInfo(dctx)
	if len(hsms) != 1 || hsms[0].Err != nil || hsms[0].Info == nil || hsms[0].Info.ClusterID != dst.ClusterID {
		t.Fatalf("ClusterInfo of the restored cluster: %+v", hsms)
	}
	// add-cluster takes the clone by its own id, and refuses the source's.
	addSrc := []string{"cli", "add-cluster", "--cluster-id", src.ClusterID, "-a", addr, "--hsm-ca-cert", anchorFile, "--path", filepath.Join(root, "multi.json")}
	if err := runConfigure(ctx, addSrc, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "belong to cluster "+dst.ClusterID) {
		t.Fatalf("add-cluster of the clone under the source's id: %v", err)
	}
	addDst := []string{"cli", "add-cluster", "--cluster-id", dst.ClusterID, "-a", addr, "--hsm-ca-cert", anchorFile, "--path", filepath.Join(root, "multi.json")}
	if err := runConfigure(ctx, addDst, io.Discard, io.Discard); err != nil {
		t.Fatalf("add-cluster of the clone: %v", err)
	}

}
