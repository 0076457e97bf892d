package node

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/store"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// verifyLinked is the tests' Config.VerifyLinkedNode (and the server check
// of their LinkTLS): the leaf chains to anchor alone and its coffer:// URI
// names clusterID.
func verifyLinked(chain []*x509.Certificate, anchor *x509.Certificate, clusterID string, usage x509.ExtKeyUsage) error {
	if len(chain) == 0 {
		return errors.New("no certificate")
	}
	roots := x509.NewCertPool()
	roots.AddCert(anchor)
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return err
	}
	for _, u := range chain[0].URIs {
		if u.Scheme == "coffer" && u.Host == "cluster" && strings.HasPrefix(u.Path, "/"+clusterID+"/hsm/") {
			return nil
		}
	}
	return fmt.Errorf("certificate names no node of %s", clusterID)
}

// withLinks gives cfg the link hooks, dialling with node id's certificate.
func withLinks(t testing.TB, p *testPKI, cfg Config) Config {
	cert := p.nodeCert(t, cfg.NodeID)
	cfg.LinkTLS = func(host string, anchor *x509.Certificate, clusterID string) (*tls.Config, error) {
		return &tls.Config{
			Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				return verifyLinked(cs.PeerCertificates, anchor, clusterID, x509.ExtKeyUsageServerAuth)
			},
		}, nil
	}
	cfg.VerifyLinkedNode = func(chain []*x509.Certificate, anchor *x509.Certificate, clusterID string) error {
		return verifyLinked(chain, anchor, clusterID, x509.ExtKeyUsageClientAuth)
	}
	cfg.LinkInterval = 100 * time.Millisecond
	return cfg
}

// seedMK puts mk into the store of cfg's data dir before the node first
// opens it: how the first HSM of a clone starts with its source's masking
// key (a restore from a backup does the same).
func seedMK(t testing.TB, cfg Config, mk []byte) {
	t.Helper()
	key := filepath.Join(cfg.DataDir, NodeKeyFile)
	if err := store.CreateNodeKey(key); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.Context(), store.Config{Path: filepath.Join(cfg.DataDir, StoreFile), NodeKeyPath: key, Node: cfg.NodeID})
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

// linkedClusters are a source cluster A (one HSM) and a clone B (two HSMs)
// whose first HSM was given A's masking key, each activated with its own
// admin and the crypto user alice, with no link set yet.
type linkedClusters struct {
	pkiA, pkiB *testPKI
	a          *running
	b1, b2     *running
	cfgB1      Config
	cfgB2      Config
	ca, cb1    hsmv1.HSMClient
	cb2        hsmv1.HSMClient
}

func newLinkedClusters(t *testing.T, sameMK bool) *linkedClusters {
	t.Helper()
	lc := &linkedClusters{pkiA: newTestPKI(t, "cluster-a"), pkiB: newTestPKI(t, "cluster-b")}
	cfgA := withLinks(t, lc.pkiA, config(t, lc.pkiA, 1, MasterKeyCreate))
	cfgA.MetricsListen = "127.0.0.1:0"
	lc.a = start(t, cfgA)
	eventually(t, "A ready", lc.a.Ready)
	lc.ca = hsmv1.NewHSMClient(dial(t, lc.pkiA, lc.a.Addr()))
	activate(t, lc.ca)

	lc.cfgB1 = withLinks(t, lc.pkiB, config(t, lc.pkiB, 1, MasterKeyCreate))
	lc.cfgB2 = withLinks(t, lc.pkiB, config(t, lc.pkiB, 2, MasterKeyClone))
	lc.cfgB1.Peers = []PeerAddr{{ID: 2, Addr: lc.cfgB2.Listener.Addr().String()}}
	lc.cfgB2.Peers = []PeerAddr{{ID: 1, Addr: lc.cfgB1.Listener.Addr().String()}}
	if sameMK {
		mk, err := lc.a.store.MaskingKey()
		if err != nil {
			t.Fatal(err)
		}
		seedMK(t, lc.cfgB1, mk)
	}
	lc.b1, lc.b2 = start(t, lc.cfgB1), start(t, lc.cfgB2)
	eventually(t, "B1 ready", lc.b1.Ready)
	eventually(t, "B2 ready", lc.b2.Ready)
	lc.cb1 = hsmv1.NewHSMClient(dial(t, lc.pkiB, lc.b1.Addr()))
	lc.cb2 = hsmv1.NewHSMClient(dial(t, lc.pkiB, lc.b2.Addr()))
	activate(t, lc.cb1)
	eventually(t, "alice on B2", func() bool {
		s := open(t, lc.cb2)
		_, err := lc.cb2.Login(t.Context(), &hsmv1.LoginRequest{Session: s, Role: "crypto-user", Username: cuName, Password: cuPW})
		return err == nil
	})
	return lc
}

// link sets the outbound link on A and the inbound one on B.
func (lc *linkedClusters) link(t *testing.T, users bool) {
	t.Helper()
	lc.accept(t, users)
	lc.create(t, users)
}

// create sets the outbound link on A.
func (lc *linkedClusters) create(t *testing.T, users bool) {
	t.Helper()
	must(t)(lc.ca.CreateReplicationLink(t.Context(), &hsmv1.CreateReplicationLinkRequest{Session: adminSession(t, lc.ca), Link: &hsmv1.ReplicationLinkInfo{
		Direction: "outbound", ClusterId: "cluster-b", Address: lc.b1.Addr(), TrustAnchor: lc.pkiB.ca.Raw, Users: users,
	}}))
}

// accept sets the inbound link on B.
func (lc *linkedClusters) accept(t *testing.T, users bool) {
	t.Helper()
	must(t)(lc.cb1.CreateReplicationLink(t.Context(), &hsmv1.CreateReplicationLinkRequest{Session: adminSession(t, lc.cb1), Link: &hsmv1.ReplicationLinkInfo{
		Direction: "inbound", ClusterId: "cluster-a", TrustAnchor: lc.pkiA.ca.Raw, Users: users,
	}}))
}

func hasObject(t testing.TB, c hsmv1.HSMClient, s, obj uint64) bool {
	_, err := c.ObjectInfo(t.Context(), &hsmv1.ObjectRequest{Session: s, Object: obj})
	return err == nil
}

func outboundLink(t testing.TB, c hsmv1.HSMClient) *hsmv1.ReplicationLinkInfo {
	t.Helper()
	resp, err := c.ListReplicationLinks(t.Context(), &hsmv1.SessionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range resp.GetLinks() {
		if l.GetDirection() == "outbound" {
			return l
		}
	}
	t.Fatal("no outbound link listed")
	return nil
}

// TestReplicationLink: keys made on A arrive on both HSMs of B, also those
// made while B was down, once it is back; the lag is listed and exported.
func TestReplicationLink(t *testing.T) {
	lc := newLinkedClusters(t, true)
	ctx := t.Context()
	lc.link(t, false)
	sa := cuSession(t, lc.ca)
	key, err := aesKey(t, lc.ca, sa, true, 1)
	if err != nil {
		t.Fatal(err)
	}
	sb1, sb2 := cuSession(t, lc.cb1), cuSession(t, lc.cb2)
	eventually(t, "A's key on B1", func() bool { return hasObject(t, lc.cb1, sb1, key.GetObject()) })
	eventually(t, "A's key on B2 (B's own sync)", func() bool { return hasObject(t, lc.cb2, sb2, key.GetObject()) })
	// It works there: encrypt on A, decrypt on B.
	iv := make([]byte, 16)
	ct, err := lc.ca.Encrypt(ctx, &hsmv1.CryptRequest{Session: sa, Key: key.GetObject(), Mechanism: &hsmv1.Mechanism{Type: uint64(ck.CKM_AES_CBC_PAD), Iv: iv}, Data: []byte("sixteen byte msg")})
	if err != nil {
		t.Fatal(err)
	}
	pt, err := lc.cb2.Decrypt(ctx, &hsmv1.CryptRequest{Session: sb2, Key: key.GetObject(), Mechanism: &hsmv1.Mechanism{Type: uint64(ck.CKM_AES_CBC_PAD), Iv: iv}, Data: ct.GetData()})
	if err != nil || string(pt.GetData()) != "sixteen byte msg" {
		t.Fatalf("decrypt on B: %q, %v", pt.GetData(), err)
	}
	eventually(t, "link in sync", func() bool { return outboundLink(t, lc.ca).GetState() == linkInSync })

	// B down: keys made on A wait, and A says how far behind B is.
	addr1, addr2 := lc.b1.Addr(), lc.b2.Addr()
	if err := lc.b1.stop(); err != nil {
		t.Fatal(err)
	}
	if err := lc.b2.stop(); err != nil {
		t.Fatal(err)
	}
	var later []uint64
	for range 3 {
		k, err := aesKey(t, lc.ca, sa, true, 1)
		if err != nil {
			t.Fatal(err)
		}
		later = append(later, k.GetObject())
	}
	eventually(t, "A sees B unreachable and 3 records behind", func() bool {
		l := outboundLink(t, lc.ca)
		return l.GetState() == linkUnreachable && l.GetRecordsBehind() >= 3 && l.GetLagNanos() > 0
	})
	resp, err := http.Get("http://" + lc.a.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`coffer_replication_link_lag_seconds{cluster="cluster-b"}`, `coffer_replication_link_records_behind{cluster="cluster-b"} 3`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// B back: the keys arrive.
	restart := func(cfg Config, addr string) *running {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Listener = ln
		return start(t, cfg)
	}
	lc.b1, lc.b2 = restart(lc.cfgB1, addr1), restart(lc.cfgB2, addr2)
	eventually(t, "B ready again", func() bool { return lc.b1.Ready() && lc.b2.Ready() })
	lc.cb2 = hsmv1.NewHSMClient(dial(t, lc.pkiB, addr2))
	sb2 = cuSession(t, lc.cb2)
	for _, obj := range later {
		eventually(t, "a key made while B was down, on B2", func() bool { return hasObject(t, lc.cb2, sb2, obj) })
	}
	eventually(t, "link in sync again", func() bool {
		l := outboundLink(t, lc.ca)
		return l.GetState() == linkInSync && l.GetRecordsBehind() == 0 && l.GetLagNanos() == 0
	})
	// Users were not chosen: B's admin is still B's own (A's password
	// would not log in if A's admin record had crossed), and a user made
	// on A does not arrive.
	must(t)(lc.ca.CreateUser(ctx, &hsmv1.CreateUserRequest{Session: adminSession(t, lc.ca), Username: "bob", Role: "crypto-user", Password: cuPW}))
	k, err := aesKey(t, lc.ca, sa, true, 1)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "a later key on B2", func() bool { return hasObject(t, lc.cb2, sb2, k.GetObject()) })
	users, err := lc.cb2.ListUsers(ctx, &hsmv1.SessionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(users.GetUsers(), func(u *hsmv1.UserInfo) bool { return u.GetUsername() == "bob" }) {
		t.Error("a user crossed a link that does not replicate users")
	}
}

// TestReplicationLinkNotAClone: a cluster with another masking key is
// refused, and says so on both sides.
func TestReplicationLinkNotAClone(t *testing.T) {
	lc := newLinkedClusters(t, false)
	lc.link(t, false)
	sa := cuSession(t, lc.ca)
	key, err := aesKey(t, lc.ca, sa, true, 1)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "A reports not a clone", func() bool {
		l := outboundLink(t, lc.ca)
		return l.GetState() == linkNotAClone && strings.Contains(l.GetError(), "not a clone: masking keys differ")
	})
	// Pushing the sealed record anyway is refused.
	rec := exportObject(t, lc.a, key.GetObject())
	_, err = lc.linkRPC(t, lc.pkiA.nodeCert(t, 1), lc.b1.Addr()).Push(t.Context(), &hsmv1.LinkPushRequest{Kinds: []uint32{uint32(store.KindObject)}, Records: rec})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "not a clone: masking keys differ") {
		t.Fatalf("push into a non-clone: %v", err)
	}
	sb := cuSession(t, lc.cb1)
	if hasObject(t, lc.cb1, sb, key.GetObject()) {
		t.Fatal("a non-clone holds A's key")
	}
}

func exportObject(t testing.TB, n *running, obj uint64) []*hsmv1.SealedRecord {
	t.Helper()
	return exportRecord(t, n, store.KindObject, fmt.Sprintf("%016x", obj))
}

func exportRecord(t testing.TB, n *running, kind store.Kind, id string) []*hsmv1.SealedRecord {
	t.Helper()
	rec, err := n.store.Export(t.Context(), kind, id)
	if err != nil {
		t.Fatalf("export %s %s: %v", kind, id, err)
	}
	w, err := sealedToWire([]store.Sealed{rec})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// linkRPC dials B's node at addr as the holder of cert.
func (lc *linkedClusters) linkRPC(t testing.TB, cert tls.Certificate, addr string) hsmv1.ReplicationLinkClient {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(lc.pkiA.ca)
	pool.AddCert(lc.pkiB.ca)
	tc := &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return hsmv1.NewReplicationLinkClient(conn)
}

// TestReplicationLinkHostile: what a link admits, and from whom. B accepts
// from A, but A's outbound link is set only at the end, so nothing reaches
// B but what the test pushes itself.
func TestReplicationLinkHostile(t *testing.T) {
	lc := newLinkedClusters(t, true)
	lc.accept(t, false)
	ctx := t.Context()
	sa := cuSession(t, lc.ca)
	key, err := aesKey(t, lc.ca, sa, true, 1)
	if err != nil {
		t.Fatal(err)
	}
	objects := []uint32{uint32(store.KindObject)}
	asA := lc.linkRPC(t, lc.pkiA.nodeCert(t, 1), lc.b1.Addr())
	sb := cuSession(t, lc.cb1)

	t.Run("stranger's certificate", func(t *testing.T) {
		// A certificate of another CA naming cluster-a, and one of A's CA
		// naming another cluster: neither is admitted.
		stranger := newTestPKI(t, "cluster-a")
		otherCluster := &testPKI{cluster: "cluster-x", ca: lc.pkiA.ca, caKey: lc.pkiA.caKey, pool: lc.pkiA.pool}
		for name, cert := range map[string]tls.Certificate{"other CA": stranger.nodeCert(t, 1), "other cluster": otherCluster.nodeCert(t, 1)} {
			rpc := lc.linkRPC(t, cert, lc.b1.Addr())
			_, err := rpc.Push(ctx, &hsmv1.LinkPushRequest{Kinds: objects, Records: exportObject(t, lc.a, key.GetObject())})
			if err == nil {
				t.Errorf("%s: push admitted", name)
			}
			if _, err := rpc.Digest(ctx, &hsmv1.LinkDigestRequest{Buckets: 1, Kinds: objects}); err == nil {
				t.Errorf("%s: digest admitted", name)
			}
		}
		if hasObject(t, lc.cb1, sb, key.GetObject()) {
			t.Error("a stranger's push was applied")
		}
	})
	t.Run("B pushes into A", func(t *testing.T) {
		// A holds only an outbound link: B's nodes are nobody to it.
		sb1 := cuSession(t, lc.cb1)
		bKey, err := aesKey(t, lc.cb1, sb1, true, 1)
		if err != nil {
			t.Fatal(err)
		}
		rpc := lc.linkRPC(t, lc.pkiB.nodeCert(t, 1), lc.a.Addr())
		if _, err := rpc.Push(ctx, &hsmv1.LinkPushRequest{Kinds: objects, Records: exportObject(t, lc.b1, bKey.GetObject())}); err == nil {
			t.Error("B's push into A admitted")
		}
		if hasObject(t, lc.ca, sa, bKey.GetObject()) {
			t.Error("B's key is on A")
		}
	})
	t.Run("settings", func(t *testing.T) {
		before, err := lc.b1.store.Export(ctx, store.KindSetting, "cluster")
		if err != nil {
			t.Fatal(err)
		}
		settings := exportRecord(t, lc.a, store.KindSetting, "cluster")
		for _, kinds := range [][]uint32{{uint32(store.KindSetting)}, objects} {
			_, err := asA.Push(ctx, &hsmv1.LinkPushRequest{Kinds: kinds, Records: settings})
			if status.Code(err) != codes.PermissionDenied {
				t.Errorf("push of A's settings as kinds %v: %v", kinds, err)
			}
		}
		after, err := lc.b1.store.Export(ctx, store.KindSetting, "cluster")
		if err != nil || after.Version != before.Version {
			t.Errorf("B's settings changed: %v → %v, %v", before.Version, after.Version, err)
		}
	})
	t.Run("users not chosen", func(t *testing.T) {
		admin := exportRecord(t, lc.a, store.KindUser, "admin")
		for _, kinds := range [][]uint32{{uint32(store.KindUser)}, objects} {
			if _, err := asA.Push(ctx, &hsmv1.LinkPushRequest{Kinds: kinds, Records: admin}); status.Code(err) != codes.PermissionDenied {
				t.Errorf("push of A's admin as kinds %v: %v", kinds, err)
			}
		}
		// B's admin still logs in with B's password only (A's is the same
		// in these tests, so check the record instead).
		rec, err := lc.b1.store.Export(ctx, store.KindUser, "admin")
		if err != nil {
			t.Fatal(err)
		}
		if a, _ := lc.a.store.Export(ctx, store.KindUser, "admin"); a.Version == rec.Version {
			t.Error("A's admin record is on B")
		}
	})
	t.Run("A's own node", func(t *testing.T) {
		// The control: A's node certificate and a key of alice are admitted.
		if _, err := asA.Push(ctx, &hsmv1.LinkPushRequest{Kinds: objects, Records: exportObject(t, lc.a, key.GetObject())}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the pushed key on B", func() bool { return hasObject(t, lc.cb1, sb, key.GetObject()) })
	})
	t.Run("key of a user B lacks", func(t *testing.T) {
		// A key owned by bob, a crypto user A has and B has not, is refused:
		// it would be nobody's there (or the wrong bob's).
		must(t)(lc.ca.CreateUser(ctx, &hsmv1.CreateUserRequest{Session: adminSession(t, lc.ca), Username: "bob", Role: "crypto-user", Password: cuPW}))
		s := open(t, lc.ca)
		must(t)(lc.ca.Login(ctx, &hsmv1.LoginRequest{Session: s, Role: "crypto-user", Username: "bob", Password: cuPW}))
		bobs, err := aesKey(t, lc.ca, s, true, 1)
		if err != nil {
			t.Fatal(err)
		}
		_, err = asA.Push(ctx, &hsmv1.LinkPushRequest{Kinds: objects, Records: exportObject(t, lc.a, bobs.GetObject())})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "crypto user bob") {
			t.Errorf("push of bob's key: %v", err)
		}
		// Through the link, bob's key holds it up no more than that, and A
		// says why.
		lc.create(t, false)
		later, err := aesKey(t, lc.ca, sa, true, 1)
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "A reports the link behind", func() bool {
			l := outboundLink(t, lc.ca)
			return l.GetState() == linkBehind && strings.Contains(l.GetError(), "bob")
		})
		if hasObject(t, lc.cb1, sb, bobs.GetObject()) {
			t.Error("bob's key is on B")
		}
		eventually(t, "alice's later key on B", func() bool { return hasObject(t, lc.cb1, sb, later.GetObject()) })
	})
}

// TestReplicationLinkUsers: with users chosen on both sides, a crypto user
// made on A reaches B, logs in there, and the key it made on A arrives
// after it (users go first); a link whose clone did not choose users is
// refused and says why.
func TestReplicationLinkUsers(t *testing.T) {
	lc := newLinkedClusters(t, true)
	ctx := t.Context()
	lc.link(t, true)
	must(t)(lc.ca.CreateUser(ctx, &hsmv1.CreateUserRequest{Session: adminSession(t, lc.ca), Username: "bob", Role: "crypto-user", Password: cuPW}))
	s := open(t, lc.ca)
	must(t)(lc.ca.Login(ctx, &hsmv1.LoginRequest{Session: s, Role: "crypto-user", Username: "bob", Password: cuPW}))
	key, err := aesKey(t, lc.ca, s, true, 1)
	if err != nil {
		t.Fatal(err)
	}
	var sb uint64
	eventually(t, "bob logs in on B2", func() bool {
		sb = open(t, lc.cb2)
		_, err := lc.cb2.Login(ctx, &hsmv1.LoginRequest{Session: sb, Role: "crypto-user", Username: "bob", Password: cuPW})
		return err == nil
	})
	eventually(t, "bob's key on B2", func() bool { return hasObject(t, lc.cb2, sb, key.GetObject()) })

	// B's admin deletes its side and accepts again without users: A's
	// link, which asks for users, is refused.
	admin := adminSession(t, lc.cb1)
	must(t)(lc.cb1.DeleteReplicationLink(ctx, &hsmv1.DeleteReplicationLinkRequest{Session: admin, Direction: "inbound", ClusterId: "cluster-a"}))
	lc.accept(t, false)
	eventually(t, "A reports the link refused", func() bool {
		l := outboundLink(t, lc.ca)
		return l.GetState() == linkRefused && strings.Contains(l.GetError(), "admits")
	})
}

// TestReplicationLinkAdmit: a record pushed through a link meets the rule
// a one-shot replica meets (TestReplicaPolicy), so a source's node cannot
// push what key replicate and user replicate refuse. B accepts from A with
// users; A's outbound link is never set, so only the test's pushes arrive.
func TestReplicationLinkAdmit(t *testing.T) {
	lc := newLinkedClusters(t, true)
	lc.accept(t, true)
	ctx := t.Context()
	sa, sb := cuSession(t, lc.ca), cuSession(t, lc.cb1)
	asA := lc.linkRPC(t, lc.pkiA.nodeCert(t, 1), lc.b1.Addr())
	push := func(kind store.Kind, recs []*hsmv1.SealedRecord) error {
		_, err := asA.Push(ctx, &hsmv1.LinkPushRequest{Kinds: []uint32{uint32(kind)}, Records: recs})
		return err
	}
	wantRefused := func(t *testing.T, err error, want string) {
		t.Helper()
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), want) {
			t.Fatalf("push = %v, want InvalidArgument saying %q", err, want)
		}
	}
	k := genKey(t, lc.ca, sa, "k", true, true)
	if err := push(store.KindObject, exportObject(t, lc.a, k)); err != nil { // the control: alice's key is admitted
		t.Fatal(err)
	}
	eventually(t, "k on B", func() bool { return hasObject(t, lc.cb1, sb, k) })

	t.Run("a one-way attribute does not go back", func(t *testing.T) {
		// The owner makes the key non-extractable on B; a newer change on A
		// (its label) must not bring back an extractable copy.
		must(t)(lc.cb1.SetAttributes(ctx, &hsmv1.SetAttributesRequest{Session: sb, Object: k,
			Template: []*hsmv1.Attribute{boolAttr(ck.CKA_EXTRACTABLE, false)}}))
		must(t)(lc.ca.SetAttributes(ctx, &hsmv1.SetAttributesRequest{Session: sa, Object: k,
			Template: []*hsmv1.Attribute{labelAttr("renamed-on-a")}}))
		wantRefused(t, push(store.KindObject, exportObject(t, lc.a, k)), "CKA_EXTRACTABLE is false there")
		if _, err := lc.cb1.ExportKey(ctx, &hsmv1.ObjectRequest{Session: sb, Object: k}); err == nil {
			t.Fatal("the key became extractable on B")
		}
	})
	t.Run("a key trusted on the source", func(t *testing.T) {
		pair, err := ecPair(t, lc.ca, sa, true, 0)
		if err != nil {
			t.Fatal(err)
		}
		must(t)(lc.ca.SetAttributes(ctx, &hsmv1.SetAttributesRequest{Session: adminSession(t, lc.ca), Object: pair.GetPublicKey(),
			Template: []*hsmv1.Attribute{boolAttr(ck.CKA_TRUSTED, true)}}))
		wantRefused(t, push(store.KindObject, exportObject(t, lc.a, pair.GetPublicKey())), "only an admin of the destination marks a key trusted")
		if hasObject(t, lc.cb1, sb, pair.GetPublicKey()) {
			t.Fatal("a trusted key crossed the link")
		}
	})
	t.Run("the deletion of a key trusted on the destination", func(t *testing.T) {
		pair, err := ecPair(t, lc.ca, sa, true, 0)
		if err != nil {
			t.Fatal(err)
		}
		pub := pair.GetPublicKey()
		if err := push(store.KindObject, exportObject(t, lc.a, pub)); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the public key on B", func() bool { return hasObject(t, lc.cb1, sb, pub) })
		must(t)(lc.cb1.SetAttributes(ctx, &hsmv1.SetAttributesRequest{Session: adminSession(t, lc.cb1), Object: pub,
			Template: []*hsmv1.Attribute{boolAttr(ck.CKA_TRUSTED, true)}}))
		must(t)(lc.ca.DestroyObject(ctx, &hsmv1.ObjectRequest{Session: sa, Object: pub}))
		wantRefused(t, push(store.KindObject, exportObject(t, lc.a, pub)), "the object is trusted")
		if !hasObject(t, lc.cb1, sb, pub) {
			t.Fatal("the link deleted a key B's admin trusts")
		}
	})
	t.Run("a user's role", func(t *testing.T) {
		// dora is a crypto user on B and an admin on A: A's record must not
		// make her an admin of B.
		createUser(t, lc.cb1, "crypto-user", "dora", "dora-password-1")
		createUser(t, lc.ca, "admin", "dora", "dora-password-1")
		wantRefused(t, push(store.KindUser, exportRecord(t, lc.a, store.KindUser, "dora")), "has role crypto-user on the destination")
		s := open(t, lc.cb1)
		if _, err := lc.cb1.Login(ctx, &hsmv1.LoginRequest{Session: s, Role: "admin", Username: "dora", Password: "dora-password-1"}); err == nil {
			t.Fatal("dora is an admin of B")
		}
	})
}
