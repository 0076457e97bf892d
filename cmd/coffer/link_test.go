package main

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-hsm/coffer/internal/client"
	"github.com/coffer-hsm/coffer/internal/hsm"
	"github.com/coffer-hsm/coffer/internal/node"
	"github.com/coffer-hsm/coffer/internal/pki"
	"github.com/coffer-hsm/coffer/internal/store"
)

// newNamedCluster is newCluster for a cluster of its own id: `coffer hsm
// init --cluster-id` makes it another customer CA, cluster certificate and
// node certificates.
func newNamedCluster(t *testing.T, clusterID string, id uint32) *testCluster {
	t.Helper()
	if clusterID == localClusterID {
		return newCluster(t, id)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "coffer")
	if err := os.Symlink(exe, bin); err != nil {
		t.Fatal(err)
	}
	c := &testCluster{
		t: t, dir: filepath.Join(t.TempDir(), "cluster"), bin: bin, logs: t.TempDir(),
		addrs: map[uint32]string{}, procs: map[uint32]*hsmProc{},
	}
	t.Cleanup(c.report)
	t.Cleanup(c.stopAll)
	c.mu.Lock()
	c.addrs[id] = fmt.Sprintf("%s:%d", loopbackOf(id), freeLoopbackPort(t, loopbackOf(id)))
	c.mu.Unlock()
	args := []string{"hsm", "init", "--dir", c.dir, "--cluster-id", clusterID, "--login-failure-delay", "1ms", "--node", fmt.Sprintf("%d=%s", id, c.addr(id))}
	if out, err := exec.Command(c.bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("coffer %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	anchorPEM, err := os.ReadFile(filepath.Join(c.dir, "customerCA.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if c.anchor, err = pki.DecodeCertificatePEM(anchorPEM, "customer CA"); err != nil {
		t.Fatal(err)
	}
	return c
}

// seedMaskingKey gives HSM id's store mk before its first start: a clone's
// first HSM, as a restore from a backup of the source would make it.
func (c *testCluster) seedMaskingKey(t *testing.T, id uint32, mk []byte) {
	t.Helper()
	f, err := readHSMFile(c.configPath(id))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(f.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(f.DataDir, node.NodeKeyFile)
	if err := store.CreateNodeKey(key); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.Context(), store.Config{Path: filepath.Join(f.DataDir, node.StoreFile), NodeKeyPath: key, Node: id})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetMaskingKey(t.Context(), mk); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// clusterClient is a client of HSM id of a cluster named clusterID.
func (c *testCluster) clusterClient(t *testing.T, clusterID string, id uint32) *client.Cluster {
	cfg := c.clientConfig(1, id)
	trust := pki.Trust{TrustAnchor: c.anchor, ClusterID: clusterID}
	cfg.TLS = func(host string) (*tls.Config, error) { return pki.ClusterClientConfig(trust, host) }
	return c.dialConfig(t, cfg)
}

// cli runs `coffer cli` against HSM id as its admin and returns stdout.
func (c *testCluster) cli(t *testing.T, id uint32, args ...string) string {
	t.Helper()
	cfg := filepath.Join(c.dir, "cli.json")
	if _, err := os.Stat(cfg); err != nil {
		if err := runConfigure(t.Context(), []string{"cli", "-a", c.addr(id), "--hsm-ca-cert", filepath.Join(c.dir, "customerCA.crt"), "--path", cfg}, os.Stderr, os.Stderr); err != nil {
			t.Fatalf("configure cli: %v", err)
		}
	}
	cmd := exec.Command(c.bin, append([]string{"cli", "--cluster-config", cfg, "--username", "admin", "--role", "admin"}, args...)...)
	cmd.Env = append(os.Environ(), "COFFER_CLI_PASSWORD="+testAdminPW, "XDG_STATE_HOME="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("coffer cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// linkState reads `coffer cli cluster info` of HSM id: the state and
// records behind of the link with clusterID.
func (c *testCluster) linkState(t *testing.T, id uint32, clusterID string) (string, int) {
	t.Helper()
	var out struct {
		Data struct {
			Links []struct {
				ClusterID string `json:"cluster-id"`
				HSMs      []struct {
					State         string `json:"state"`
					RecordsBehind int    `json:"records-behind"`
				} `json:"hsms"`
			} `json:"replication-links"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(c.cli(t, id, "cluster", "info")), &out); err != nil {
		t.Fatal(err)
	}
	for _, l := range out.Data.Links {
		if l.ClusterID == clusterID && len(l.HSMs) > 0 {
			return l.HSMs[0].State, l.HSMs[0].RecordsBehind
		}
	}
	return "", 0
}

// TestReplicationLinkBetweenClones: two clusters of real `coffer hsm`
// processes, each with its own customer CA, sharing a masking key; the
// link is set with `coffer cli`; keys made on A arrive on B, also those
// made while B was down, and `cluster info` and the metrics say how far
// behind B is meanwhile.
func TestReplicationLinkBetweenClones(t *testing.T) {
	const clusterB = "cluster-b"
	a := newCluster(t, 1)
	b := newNamedCluster(t, clusterB, 2)
	mk := make([]byte, 32)
	if _, err := rand.Read(mk); err != nil {
		t.Fatal(err)
	}
	a.seedMaskingKey(t, 1, mk)
	b.seedMaskingKey(t, 2, mk)
	a.start(t, 1)
	b.start(t, 2)
	a.waitReady(t, 1)
	b.waitReady(t, 2)
	a.activate(t, 1)
	bAdmin := loginT(t, b.clusterClient(t, clusterB, 2), "admin", hsm.DefaultAdminName, hsm.DefaultPreAdminPIN)
	if err := bAdmin.Activate(t.Context(), testAdminPW); err != nil {
		t.Fatal(err)
	}
	if err := bAdmin.CreateUser(t.Context(), testCU, "crypto-user", testCUPW, nil); err != nil {
		t.Fatal(err)
	}

	a.cli(t, 1, "cluster", "replication-link", "create", "--to-cluster-id", clusterB, "--address", b.addr(2),
		"--trust-anchor", filepath.Join(b.dir, "customerCA.crt"))
	b.cli(t, 2, "cluster", "replication-link", "accept", "--from-cluster-id", localClusterID,
		"--trust-anchor", filepath.Join(a.dir, "customerCA.crt"))

	sa := loginT(t, a.dial(t, 1, 1), "crypto-user", testCU, testCUPW)
	newKey := func(label string) client.ObjectID {
		k, err := sa.GenerateKey(t.Context(), mechAESKeyGen, aesTokenTemplate(label))
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	first := newKey("before")
	sb := loginT(t, b.clusterClient(t, clusterB, 2), "crypto-user", testCU, testCUPW)
	b.holdsAll(t, 2, sb, []client.ObjectID{first})
	pollUntil(t, "the link in sync", func() error {
		if st, _ := a.linkState(t, 1, clusterB); st != "in-sync" {
			return fmt.Errorf("state %q", st)
		}
		return nil
	})

	b.stop(t, 2)
	later := []client.ObjectID{newKey("while B is down 1"), newKey("while B is down 2")}
	pollUntil(t, "A reports B unreachable, 2 records behind", func() error {
		st, behind := a.linkState(t, 1, clusterB)
		if st != "unreachable" || behind < 2 {
			return fmt.Errorf("state %q, %d behind", st, behind)
		}
		if v := a.metricValue(t, 1, `coffer_replication_link_records_behind{cluster="cluster-b"}`); v < 2 {
			return fmt.Errorf("metric says %v behind", v)
		}
		return nil
	})

	b.start(t, 2)
	b.waitReady(t, 2)
	sb = loginT(t, b.clusterClient(t, clusterB, 2), "crypto-user", testCU, testCUPW)
	b.holdsAll(t, 2, sb, append(later, first))
	pollUntil(t, "the link in sync again", func() error {
		if st, behind := a.linkState(t, 1, clusterB); st != "in-sync" || behind != 0 {
			return fmt.Errorf("state %q, %d behind", st, behind)
		}
		return nil
	})
	// The clone's side sees the source.
	if st, _ := b.linkState(t, 2, localClusterID); st != "receiving" {
		t.Errorf("B's inbound link: %q", st)
	}
}

// newLineageClone is a cluster clusterID of one HSM, id, made as a restore
// from a backup of a makes one: a's cluster certificate, cluster key and
// trust anchor, its own id. Its node certificate is issued by `coffer hsm
// issue-cert --cluster-id` with a's cluster key; its store is not made.
func newLineageClone(t *testing.T, a *testCluster, clusterID string, id uint32) *testCluster {
	t.Helper()
	c := &testCluster{
		t: t, dir: filepath.Join(t.TempDir(), "cluster"), bin: a.bin, logs: t.TempDir(), anchor: a.anchor,
		addrs: map[uint32]string{}, procs: map[uint32]*hsmProc{},
	}
	t.Cleanup(c.report)
	t.Cleanup(c.stopAll)
	ip := loopbackOf(id)
	c.mu.Lock()
	c.addrs[id] = fmt.Sprintf("%s:%d", ip, freeLoopbackPort(t, ip))
	c.mu.Unlock()
	name := fmt.Sprintf("hsm-%d", id)
	args := []string{"hsm", "issue-cert", "--cluster-dir", filepath.Join(a.dir, "cluster"),
		"--cluster-cert", filepath.Join(a.dir, "cluster", "cluster.crt"), "--cluster-id", clusterID,
		"--hsm-id", name, "--ip", ip, "--out", filepath.Join(c.dir, name), "--sealing-key", filepath.Join(a.dir, "sealing.key")}
	if out, err := exec.Command(c.bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("coffer %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	anchorPEM, err := os.ReadFile(filepath.Join(a.dir, "customerCA.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.dir, "customerCA.crt"), anchorPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	f := hsmFile{
		DataDir: filepath.Join(name, "data"), Listen: c.addr(id), MetricsListen: ip + ":0", NodeID: id,
		ClusterID: clusterID, CertificateClusterID: localClusterID, HSMID: name,
		Certificate: filepath.Join(name, "node.crt"), PrivateKey: filepath.Join(name, "node.key.pem"),
		ClusterCertificate: filepath.Join(a.dir, "cluster", "cluster.crt"), TrustAnchor: "customerCA.crt",
		Peers: []peerFile{}, MaskingKey: "create", LoginFailureDelay: "1ms", LoginMaxFailureDelay: "1ms",
		TestPasswordCost: true,
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.configPath(id), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestReplicationLinkSameLineage: a clone that keeps its source's cluster
// certificate, as a restore from a backup makes it, serves under its own
// id: configure learns that id, and a replication link from the source
// (whose HSMs accept a linked HSM under their own cluster certificate)
// reaches it, both ways verified.
func TestReplicationLinkSameLineage(t *testing.T) {
	const clusterB = "cluster-b"
	a := newCluster(t, 1)
	b := newLineageClone(t, a, clusterB, 2)
	mk := make([]byte, 32)
	if _, err := rand.Read(mk); err != nil {
		t.Fatal(err)
	}
	a.seedMaskingKey(t, 1, mk)
	b.seedMaskingKey(t, 2, mk)
	a.start(t, 1)
	b.start(t, 2)
	a.waitReady(t, 1)
	b.waitReady(t, 2)
	a.activate(t, 1)

	// A client that pins the clone's id and the lineage reaches it; one
	// that expects the certificate to name the clone's id, or the source's
	// id, does not.
	trust := pki.Trust{TrustAnchor: b.anchor, ClusterID: clusterB, CertificateClusterID: localClusterID}
	cfg := b.clientConfig(1, 2)
	cfg.TLS = func(host string) (*tls.Config, error) { return pki.ClusterClientConfig(trust, host) }
	bAdmin := loginT(t, b.dialConfig(t, cfg), "admin", hsm.DefaultAdminName, hsm.DefaultPreAdminPIN)
	for _, wrong := range []pki.Trust{{TrustAnchor: b.anchor, ClusterID: clusterB}, {TrustAnchor: b.anchor, ClusterID: localClusterID}} {
		tc, err := pki.ClusterClientConfig(wrong, loopbackOf(2))
		if err != nil {
			t.Fatal(err)
		}
		if conn, err := tls.Dial("tcp", b.addr(2), tc); err == nil {
			conn.Close()
			t.Fatalf("trust %+v accepted the clone", wrong)
		} else if !errors.Is(err, pki.ErrWrongCluster) {
			t.Fatalf("trust %+v: %v, want ErrWrongCluster", wrong, err)
		}
	}
	if err := bAdmin.Activate(t.Context(), testAdminPW); err != nil {
		t.Fatal(err)
	}
	if err := bAdmin.CreateUser(t.Context(), testCU, "crypto-user", testCUPW, nil); err != nil {
		t.Fatal(err)
	}

	a.cli(t, 1, "cluster", "replication-link", "create", "--to-cluster-id", clusterB, "--address", b.addr(2),
		"--trust-anchor", filepath.Join(a.dir, "customerCA.crt"))
	// b.cli configures the CLI with `coffer configure cli -a`: it learns
	// cluster-b under cluster-local's certificate.
	b.cli(t, 2, "cluster", "replication-link", "accept", "--from-cluster-id", localClusterID,
		"--trust-anchor", filepath.Join(a.dir, "customerCA.crt"))
	cf, err := client.ReadFile(filepath.Join(b.dir, "cli.json"))
	if err != nil {
		t.Fatal(err)
	}
	if cf.ClusterID != clusterB || cf.CertificateClusterID != localClusterID {
		t.Fatalf("configure learned cluster %q under %q's certificate", cf.ClusterID, cf.CertificateClusterID)
	}

	sa := loginT(t, a.dial(t, 1, 1), "crypto-user", testCU, testCUPW)
	k, err := sa.GenerateKey(t.Context(), mechAESKeyGen, aesTokenTemplate("lineage"))
	if err != nil {
		t.Fatal(err)
	}
	sb := loginT(t, b.dialConfig(t, cfg), "crypto-user", testCU, testCUPW)
	b.holdsAll(t, 2, sb, []client.ObjectID{k})
	pollUntil(t, "the link in sync", func() error {
		if st, _ := a.linkState(t, 1, clusterB); st != "in-sync" {
			return fmt.Errorf("state %q", st)
		}
		return nil
	})
	if st, _ := b.linkState(t, 2, localClusterID); st != "receiving" {
		t.Errorf("B's inbound link: %q", st)
	}
}
