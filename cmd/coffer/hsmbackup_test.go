package main

import (
	"bytes"
	"crypto"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-hsm/coffer/internal/pki"
)

// TestHSMBackupTools: a hand-made cluster (`coffer hsm init --backup-key`)
// backs up through `coffer hsm backup`; `coffer hsm restore-cluster` gives
// back its cluster key and certificates, refuses a tampered or swapped blob
// with exit status 3 and leaves nothing; a node started with masking_key
// "restore" builds its store from the blob and serves.
func TestHSMBackupTools(t *testing.T) {
	c := newCluster(t, 1)
	keyPath := filepath.Join(t.TempDir(), "keys", "backup.key")
	coffer := func(args ...string) (string, string, error) {
		cmd := exec.Command(c.bin, args...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return out.String(), errb.String(), err
	}
	if _, stderr, err := coffer("hsm", "init", "--dir", c.dir, "--node", "1="+c.addr(1), "--backup-key", keyPath); err != nil {
		t.Fatalf("hsm init --backup-key: %v\n%s", err, stderr)
	}
	if fi, err := os.Stat(keyPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup key: %v %v", fi, err)
	}
	if out, _, err := coffer("hsm", "backup-key", "--create", keyPath); err != nil || !strings.HasPrefix(out, "exists") {
		t.Fatalf("backup-key --create on an existing key: %q %v", out, err)
	}
	c.start(t, 1)
	c.waitReady(t, 1)

	blob := filepath.Join(t.TempDir(), "backup-1.blob")
	sealing := filepath.Join(c.dir, "sealing.key")
	out, stderr, err := coffer("hsm", "backup", "--config", c.configPath(1), "--backup-id", "backup-1",
		"--cluster-dir", filepath.Join(c.dir, "cluster"), "--sealing-key", sealing, "--out", blob)
	if err != nil {
		t.Fatalf("hsm backup: %v\n%s", err, stderr)
	}
	var info struct{ Records, Bytes int64 }
	if err := json.Unmarshal([]byte(out), &info); err != nil || info.Records == 0 {
		t.Fatalf("hsm backup printed %q (%v)", out, err)
	}
	if fi, err := os.Stat(blob); err != nil || fi.Size() != info.Bytes {
		t.Fatalf("blob: %v, printed %d bytes", err, info.Bytes)
	}

	restore := func(dir, id, blob string) (string, string, error) {
		return coffer("hsm", "restore-cluster", "--dir", dir, "--backup-key", keyPath, "--backup-id", id, "--blob", blob, "--sealing-key", sealing)
	}
	t.Run("restore-cluster", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "new-cluster")
		out, stderr, err := restore(dir, "backup-1", blob)
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		var res restoredCluster
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatal(err)
		}
		certPEM, _ := os.ReadFile(filepath.Join(c.dir, "cluster", "cluster.crt"))
		csrPEM, _ := os.ReadFile(filepath.Join(c.dir, "cluster", "cluster.csr"))
		if res.SourceClusterID != "cluster-local" || res.ClusterCertificate != string(certPEM) || res.ClusterCSR != string(csrPEM) || res.Activated || res.Created == "" {
			t.Errorf("restore-cluster printed %+v", res)
		}
		sk, err := pki.SealingKeyFile(sealing, false)
		if err != nil {
			t.Fatal(err)
		}
		sealed := notPlaintextKey(t, filepath.Join(dir, pki.ClusterKeyFile))
		key, err := pki.OpenClusterKey(sk, sealed)
		if err != nil {
			t.Fatal(err)
		}
		cert, _ := pki.DecodeCertificatePEM(certPEM, "cluster certificate")
		if !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(cert.PublicKey) {
			t.Fatal("the restored cluster key is not the cluster certificate's")
		}
	})
	raw, _ := os.ReadFile(blob)
	edited := bytes.Clone(raw)
	edited[len(edited)/2] ^= 1
	editedPath := filepath.Join(t.TempDir(), "edited.blob")
	os.WriteFile(editedPath, edited, 0o600)
	for _, tc := range []struct {
		name, id, blob, want string
	}{
		{"edited", "backup-1", editedPath, "edited"},
		{"swapped", "backup-2", blob, "bound to another backup"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "new-cluster")
			_, stderr, err := restore(dir, tc.id, tc.blob)
			if ee, ok := errors.AsType[*exec.ExitError](err); !ok || ee.ExitCode() != exitRefused {
				t.Fatalf("got %v, want exit status %d\n%s", err, exitRefused, stderr)
			}
			if lines := strings.Split(strings.TrimSpace(stderr), "\n"); len(lines) != 1 || !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q, want one line naming %q", stderr, tc.want)
			}
			if exists(filepath.Join(dir, pki.ClusterKeyFile)) {
				t.Error("a refused blob left a cluster key")
			}
		})
	}

	t.Run("node restore", func(t *testing.T) {
		c.stop(t, 1)
		c.editConfig(t, 1, func(f *hsmFile) {
			f.DataDir = filepath.Join(t.TempDir(), "restored")
			f.MaskingKey, f.RestoreBlob, f.RestoreBackupID = "restore", blob, "backup-1"
		})
		c.start(t, 1)
		c.waitReady(t, 1)
		if !strings.Contains(c.output(t, 1), "restored the store from a backup") {
			t.Error("the node did not say it restored")
		}
	})
}
