package node

import (
	"flag"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

var backupKeys = flag.Int("backup-keys", 0, "TestBackupScale: back up and restore a node holding this many AES keys (0: skip)")

// TestBackupScale measures a backup and a restore of a node holding
// -backup-keys token AES-256 keys:
//
//	go test -run TestBackupScale -backup-keys 10000 ./internal/node/
func TestBackupScale(t *testing.T) {
	if *backupKeys == 0 {
		t.Skip("set -backup-keys N to run")
	}
	ctx := t.Context()
	keyPath := backupKeyFile(t)
	pki := newTestPKI(t, "cluster-scale")
	cfg := config(t, pki, 1, MasterKeyCreate)
	cfg.BackupKeyPath = keyPath
	a := start(t, cfg)
	eventually(t, "node ready", a.Ready)
	conn := dial(t, pki, a.Addr())
	c := hsmv1.NewHSMClient(conn)
	activate(t, c)
	start := time.Now()
	const workers = 16
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		s := cuSession(t, c)
		wg.Go(func() {
			for i := w; i < *backupKeys; i += workers {
				if _, err := aesKey(t, c, s, true, 0); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("made %d AES keys in %s", *backupKeys, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	blob, err := fetchBackup(t, pki, a.Addr(), ownCert(cfg), "backup-scale", nil)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("backup: %d bytes (%.0f per key) in %s", len(blob), float64(len(blob))/float64(*backupKeys), took.Round(time.Millisecond))
	path := filepath.Join(t.TempDir(), "restore.blob")
	if err := os.WriteFile(path, blob, 0o600); err != nil {
		t.Fatal(err)
	}

	rcfg := config(t, newTestPKI(t, "cluster-restored"), 1, MasterKeyRestore)
	rcfg.DataDir = filepath.Join(t.TempDir(), "data")
	rcfg.BackupKeyPath, rcfg.RestoreBlob, rcfg.RestoreBackupID = keyPath, path, "backup-scale"
	start = time.Now()
	n, err := New(ctx, rcfg)
	if err != nil {
		t.Fatal(err)
	}
	built := time.Since(start)
	r := run(t, n)
	eventually(t, "restored node ready", r.Ready)
	t.Logf("restore: store built in %s, node ready after %s", built.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	objects, err := r.countRecords(ctx, 1)
	if err != nil || objects < *backupKeys {
		t.Fatalf("restored node holds %d objects (%v), want %d", objects, err, *backupKeys)
	}
}
