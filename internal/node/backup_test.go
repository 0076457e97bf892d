package node

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/coffer-hsm/coffer/internal/backup"
	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/store"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// fetchBackup asks the node at addr for a backup, presenting cert.
func fetchBackup(t testing.TB, pki *testPKI, addr string, cert tls.Certificate, id string, clusterKey []byte) ([]byte, error) {
	t.Helper()
	c := hsmv1.NewOperatorClient(dial(t, pki, addr, cert))
	stream, err := c.Backup(t.Context(), &hsmv1.BackupRequest{BackupId: id, ClusterKey: clusterKey, ClusterCsr: "csr", ClusterCertificate: "cert", TrustAnchor: "anchor"})
	if err != nil {
		return nil, err
	}
	var blob bytes.Buffer
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return blob.Bytes(), nil
		}
		if err != nil {
			return nil, err
		}
		blob.Write(chunk.GetData())
	}
}

func backupKeyFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "backup.key")
	if _, err := backup.CreateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	return path
}

func ownCert(cfg Config) tls.Certificate { return cfg.ServerTLS.Certificates[0] }

var labelDR = &hsmv1.Attribute{Type: uint64(ck.CKA_LABEL), Value: []byte("dr-key")}

// sourceNode is an activated node with alice, a labelled token AES key, a
// deleted token key and a session key; it returns the key's ECB
// encryption of one block.
func sourceNode(t *testing.T, pki *testPKI, keyPath string) (*running, Config, []byte) {
	t.Helper()
	ctx := t.Context()
	cfg := config(t, pki, 1, MasterKeyCreate)
	cfg.BackupKeyPath = keyPath
	a := start(t, cfg)
	eventually(t, "node ready", a.Ready)
	c := hsmv1.NewHSMClient(dial(t, pki, a.Addr()))
	activate(t, c)
	s := cuSession(t, c)
	key, err := c.GenerateKey(ctx, &hsmv1.GenerateKeyRequest{
		Session: s, Mechanism: mechOf(ck.CKM_AES_KEY_GEN),
		Template: []*hsmv1.Attribute{ulongAttr(ck.CKA_VALUE_LEN, 32), boolAttr(ck.CKA_TOKEN, true), labelDR},
	})
	if err != nil {
		t.Fatal(err)
	}
	gone, err := aesKey(t, c, s, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	must(t)(c.DestroyObject(ctx, &hsmv1.ObjectRequest{Session: s, Object: gone.GetObject()}))
	must(t)(aesKey(t, c, s, false, 0))
	ct, err := c.Encrypt(ctx, &hsmv1.CryptRequest{Session: s, Key: key.GetObject(), Mechanism: mechOf(ck.CKM_AES_ECB), Data: make([]byte, 16)})
	if err != nil {
		t.Fatal(err)
	}
	return a, cfg, ct.GetData()
}

func TestBackupRestore(t *testing.T) {
	ctx := t.Context()
	keyPath := backupKeyFile(t)
	src := newTestPKI(t, "cluster-src")
	a, cfgA, want := sourceNode(t, src, keyPath)

	blob, err := fetchBackup(t, src, a.Addr(), ownCert(cfgA), "backup-1", []byte("cluster key der"))
	if err != nil {
		t.Fatal(err)
	}
	bk, err := backup.ReadKeyFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	b, err := backup.Open(bytes.NewReader(blob), int64(len(blob)), bk, "backup-1")
	if err != nil {
		t.Fatal(err)
	}
	h := b.Header
	if h.SourceClusterID != "cluster-src" || !h.Activated || h.NodeID != 1 || h.ClusterCSR != "csr" || !bytes.Equal(b.ClusterKey(), []byte("cluster key der")) {
		t.Errorf("header %+v", h)
	}
	// Every record of the store, tombstones included.
	var want0 []store.Sealed
	var newest store.Version
	a.store.Versions(ctx, func(k store.Kind, id string, v store.Version, _ bool) error {
		rec, err := a.store.Export(ctx, k, id)
		if err != nil {
			t.Fatal(err)
		}
		want0 = append(want0, rec)
		if v.Compare(newest) > 0 {
			newest = v
		}
		return nil
	})
	var got []store.Sealed
	tombstones := 0
	if err := b.Records(ctx, func(r store.Sealed) error {
		got = append(got, r)
		if r.Tombstone {
			tombstones++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want0) || tombstones == 0 {
		t.Fatalf("blob holds %d records (%d tombstones), the store %d", len(got), tombstones, len(want0))
	}
	path := filepath.Join(t.TempDir(), "restore.blob")
	if err := os.WriteFile(path, blob, 0o600); err != nil {
		t.Fatal(err)
	}

	// A node of a new cluster restored from the blob serves the same keys
	// and users.
	dst := newTestPKI(t, "cluster-dst")
	cfgB := config(t, dst, 1, MasterKeyRestore)
	cfgB.DataDir = filepath.Join(t.TempDir(), "data")
	cfgB.BackupKeyPath, cfgB.RestoreBlob, cfgB.RestoreBackupID = keyPath, path, "backup-1"
	// An empty data dir is replaced; what a crashed restore left is removed.
	if err := os.MkdirAll(cfgB.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(cfgB.DataDir+restoreSuffix, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfgB.DataDir+restoreSuffix, StoreFile), []byte("half made"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := start(t, cfgB)
	eventually(t, "restored node ready", r.Ready)
	if _, err := os.Stat(cfgB.DataDir + restoreSuffix); !os.IsNotExist(err) {
		t.Errorf("the temporary restore directory is still there: %v", err)
	}
	c := hsmv1.NewHSMClient(dial(t, dst, r.Addr()))
	s := cuSession(t, c)
	found, err := c.FindObjects(ctx, &hsmv1.FindObjectsRequest{Session: s, Template: []*hsmv1.Attribute{labelDR}})
	if err != nil || len(found.GetObjects()) != 1 {
		t.Fatalf("find by label: %v %v", found, err)
	}
	ct, err := c.Encrypt(ctx, &hsmv1.CryptRequest{Session: s, Key: found.GetObjects()[0], Mechanism: mechOf(ck.CKM_AES_ECB), Data: make([]byte, 16)})
	if err != nil || !bytes.Equal(ct.GetData(), want) {
		t.Fatalf("encrypt on the restored node: %x %v, want %x", ct.GetData(), err, want)
	}
	as := open(t, c)
	must(t)(c.Login(ctx, &hsmv1.LoginRequest{Session: as, Role: "admin", Username: "admin", Password: adminPW}))
	// The clock is past every version of the backup.
	if v, err := r.store.Put(ctx, store.KindSetting, "after-restore", []byte("x")); err != nil || v.Compare(newest) <= 0 {
		t.Fatalf("a write after the restore has version %s (%v), the backup's newest is %s", v, err, newest)
	}
	// A restart with the same settings uses the store as it is.
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	cfgB.Listener = listen(t)
	r2 := start(t, cfgB)
	eventually(t, "restarted node ready", r2.Ready)
}

func TestRestoreRefused(t *testing.T) {
	keyPath := backupKeyFile(t)
	src := newTestPKI(t, "cluster-src")
	a, cfgA, _ := sourceNode(t, src, keyPath)
	blob, err := fetchBackup(t, src, a.Addr(), ownCert(cfgA), "backup-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.Clone(blob)
	edited[len(edited)-100] ^= 1
	for _, tc := range []struct {
		name string
		blob []byte
		id   string
		key  string
		want backup.Reason
	}{
		{"edited", edited, "backup-1", keyPath, backup.Edited},
		{"truncated", blob[:len(blob)-10], "backup-1", keyPath, backup.Truncated},
		{"other id", blob, "backup-2", keyPath, backup.OtherBackup},
		{"wrong key", blob, "backup-1", backupKeyFile(t), backup.WrongKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "restore.blob")
			os.WriteFile(path, tc.blob, 0o600)
			cfg := config(t, newTestPKI(t, "cluster-dst"), 1, MasterKeyRestore)
			cfg.DataDir = filepath.Join(t.TempDir(), "data")
			cfg.BackupKeyPath, cfg.RestoreBlob, cfg.RestoreBackupID = tc.key, path, tc.id
			n, err := New(t.Context(), cfg)
			if err == nil {
				n.Close()
				t.Fatal("restore from a bad blob succeeded")
			}
			if e, ok := errors.AsType[*backup.RefusedError](err); !ok || e.Reason != tc.want {
				t.Fatalf("got %v, want %s", err, tc.want)
			}
			for _, d := range []string{cfg.DataDir, cfg.DataDir + restoreSuffix} {
				if _, err := os.Stat(d); !os.IsNotExist(err) {
					t.Errorf("%s is left behind (%v)", d, err)
				}
			}
		})
	}
}

func TestBackupAuthorization(t *testing.T) {
	keyPath := backupKeyFile(t)
	pki := newTestPKI(t, "cluster-auth")
	a, cfgA, _ := sourceNode(t, pki, keyPath)
	other := newTestPKI(t, "cluster-other")
	for _, tc := range []struct {
		name string
		cert []tls.Certificate
	}{
		{"no certificate", nil},
		{"a peer's node certificate", []tls.Certificate{pki.nodeCert(t, 2)}},
		{"this node's id, another certificate", []tls.Certificate{pki.nodeCert(t, 1)}},
		{"a client certificate", []tls.Certificate{pki.cert(t, "app", nil)}},
		{"another cluster's node", []tls.Certificate{other.nodeCert(t, 1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cert tls.Certificate
			if tc.cert != nil {
				cert = tc.cert[0]
			}
			_, err := fetchBackup(t, pki, a.Addr(), cert, "backup-x", nil)
			if err == nil {
				t.Fatal("backup handed out")
			}
			if c := status.Code(err); c != codes.PermissionDenied && c != codes.Unavailable {
				t.Fatalf("got %v, want PermissionDenied (or a refused handshake)", err)
			}
		})
	}
	t.Run("own certificate", func(t *testing.T) {
		if _, err := fetchBackup(t, pki, a.Addr(), ownCert(cfgA), "backup-x", nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("no backup key", func(t *testing.T) {
		cfg := config(t, pki, 3, MasterKeyCreate)
		n := start(t, cfg)
		eventually(t, "ready", n.Ready)
		_, err := fetchBackup(t, pki, n.Addr(), ownCert(cfg), "backup-x", nil)
		if status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("got %v, want FailedPrecondition", err)
		}
	})
}

// TestRestoreFIPSOnlyIntoFIPS: a backup of a FIPS cluster restores into a
// FIPS node only, and a refused restore leaves no data dir.
func TestRestoreFIPSOnlyIntoFIPS(t *testing.T) {
	keyPath := backupKeyFile(t)
	pki := newTestPKI(t, "cluster-fips")
	cfg := config(t, pki, 1, MasterKeyCreate)
	cfg.BackupKeyPath, cfg.Device.FIPS = keyPath, true
	a := start(t, cfg)
	eventually(t, "node ready", a.Ready)
	blob, err := fetchBackup(t, pki, a.Addr(), ownCert(cfg), "backup-fips", nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "restore.blob")
	os.WriteFile(path, blob, 0o600)
	for _, fips := range []bool{false, true} {
		rcfg := config(t, newTestPKI(t, "cluster-dst"), 1, MasterKeyRestore)
		rcfg.DataDir = filepath.Join(t.TempDir(), "data")
		rcfg.BackupKeyPath, rcfg.RestoreBlob, rcfg.RestoreBackupID, rcfg.Device.FIPS = keyPath, path, "backup-fips", fips
		n, err := New(t.Context(), rcfg)
		if fips {
			if err != nil {
				t.Fatalf("restore into a FIPS node: %v", err)
			}
			n.Close()
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "FIPS") {
			if n != nil {
				n.Close()
			}
			t.Fatalf("restore of a FIPS backup into a non-FIPS node: %v", err)
		}
		if _, err := os.Stat(rcfg.DataDir); !os.IsNotExist(err) {
			t.Errorf("a refused restore left %s (%v)", rcfg.DataDir, err)
		}
	}
}

// TestRestoreNonFIPSNotIntoFIPS: a backup of a non-FIPS cluster does not
// restore into a FIPS node either (CloudHSM: a backup restores into a
// cluster of its own mode). Its keys were made without FIPS rules, and the
// two clusters would share a masking key: a key made under FIPS rules on
// the FIPS one could be replicated (key replicate, a link) to the non-FIPS
// one, and so used with mechanisms that are not approved, the thing a FIPS
// backup's restore into a non-FIPS node is refused for.
func TestRestoreNonFIPSNotIntoFIPS(t *testing.T) {
	keyPath := backupKeyFile(t)
	pki := newTestPKI(t, "cluster-plain")
	cfg := config(t, pki, 1, MasterKeyCreate)
	cfg.BackupKeyPath = keyPath
	a := start(t, cfg)
	eventually(t, "node ready", a.Ready)
	blob, err := fetchBackup(t, pki, a.Addr(), ownCert(cfg), "backup-plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "restore.blob")
	if err := os.WriteFile(path, blob, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, fips := range []bool{true, false} {
		rcfg := config(t, newTestPKI(t, "cluster-dst"), 1, MasterKeyRestore)
		rcfg.DataDir = filepath.Join(t.TempDir(), "data")
		rcfg.BackupKeyPath, rcfg.RestoreBlob, rcfg.RestoreBackupID, rcfg.Device.FIPS = keyPath, path, "backup-plain", fips
		n, err := New(t.Context(), rcfg)
		if !fips {
			if err != nil {
				t.Fatalf("restore into a non-FIPS node: %v", err)
			}
			n.Close()
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "FIPS") {
			if n != nil {
				n.Close()
			}
			t.Fatalf("restore of a non-FIPS backup into a FIPS node: %v", err)
		}
		if _, err := os.Stat(rcfg.DataDir); !os.IsNotExist(err) {
			t.Errorf("a refused restore left %s (%v)", rcfg.DataDir, err)
		}
	}
}

// TestRestoreDropsReplicationLinks: a cluster made from a backup starts
// with no replication links. A link is an agreement between two clusters,
// each side's admins with their quorum; the backup's links are its source
// cluster's. Restored, a copy of the source would otherwise push its own
// keys and deletions into the source's linked clone (a test copy's
// deletions destroying the clone's keys) and admit what the source's
// linked clusters push, none of them having agreed to it.
func TestRestoreDropsReplicationLinks(t *testing.T) {
	keyPath := backupKeyFile(t)
	src := newTestPKI(t, "cluster-src")
	other := newTestPKI(t, "cluster-other")
	cfg := withLinks(t, src, config(t, src, 1, MasterKeyCreate))
	cfg.BackupKeyPath = keyPath
	a := start(t, cfg)
	eventually(t, "node ready", a.Ready)
	c := hsmv1.NewHSMClient(dial(t, src, a.Addr()))
	activate(t, c)
	for _, l := range []*hsmv1.ReplicationLinkInfo{
		{Direction: "outbound", ClusterId: "cluster-other", Address: "127.0.0.1:9", TrustAnchor: other.ca.Raw},
		{Direction: "inbound", ClusterId: "cluster-other", TrustAnchor: other.ca.Raw},
	} {
		must(t)(c.CreateReplicationLink(t.Context(), &hsmv1.CreateReplicationLinkRequest{Session: adminSession(t, c), Link: l}))
	}
	if ls, err := c.ListReplicationLinks(t.Context(), &hsmv1.SessionRequest{}); err != nil || len(ls.GetLinks()) != 2 {
		t.Fatalf("the source's links: %v, %v", ls, err)
	}
	blob, err := fetchBackup(t, src, a.Addr(), ownCert(cfg), "backup-links", nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "restore.blob")
	if err := os.WriteFile(path, blob, 0o600); err != nil {
		t.Fatal(err)
	}
	dst := newTestPKI(t, "cluster-dst")
	rcfg := withLinks(t, dst, config(t, dst, 1, MasterKeyRestore))
	rcfg.DataDir = filepath.Join(t.TempDir(), "data")
	rcfg.BackupKeyPath, rcfg.RestoreBlob, rcfg.RestoreBackupID = keyPath, path, "backup-links"
	r := start(t, rcfg)
	eventually(t, "restored node ready", r.Ready)
	rc := hsmv1.NewHSMClient(dial(t, dst, r.Addr()))
	ls, err := rc.ListReplicationLinks(t.Context(), &hsmv1.SessionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ls.GetLinks()) != 0 {
		t.Fatalf("a cluster made from a backup has its source's links: %v", ls.GetLinks())
	}
	// The rest of the backup is there: alice logs in.
	cuSession(t, rc)
}
