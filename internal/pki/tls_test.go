package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"testing"
	"time"
)

// result is what both ends of one handshake saw.
type result struct {
	clientErr, serverErr error
	readErr              error
	client, server       tls.ConnectionState
	reply                string
}

// handshake runs one TLS connection over 127.0.0.1: the server handshakes,
// writes "ok" and closes; the client handshakes and reads to EOF (which
// also takes in TLS 1.3 session tickets). The deadline only keeps a broken
// test from hanging.
func handshake(t *testing.T, server, client *tls.Config) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	type serverResult struct {
		err   error
		state tls.ConnectionState
	}
	done := make(chan serverResult, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- serverResult{err: err}
			return
		}
		defer conn.Close()
		if d, ok := ctx.Deadline(); ok {
			_ = conn.SetDeadline(d)
		}
		tc := tls.Server(conn, server)
		if err := tc.HandshakeContext(ctx); err != nil {
			done <- serverResult{err: err}
			return
		}
		state := tc.ConnectionState()
		_, err = tc.Write([]byte("ok"))
		_ = tc.Close()
		done <- serverResult{err: err, state: state}
	}()
	var r result
	raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		ln.Close()
		<-done
		t.Fatal(err)
	}
	if d, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(d)
	}
	c := tls.Client(raw, client)
	r.clientErr = c.HandshakeContext(ctx)
	if r.clientErr == nil {
		r.client = c.ConnectionState()
		b, err := io.ReadAll(c)
		r.reply, r.readErr = string(b), err
	}
	_ = c.Close()
	s := <-done
	ln.Close()
	r.serverErr, r.server = s.err, s.state
	return r
}

func TestTLSHandshakes(t *testing.T) {
	ca := newTestCA(t, "Customer CA")
	otherCA := newTestCA(t, "Other CA")
	a := newTestCluster(t, ca, "cluster-a")
	b := newTestCluster(t, ca, "cluster-b")
	ip1, ip2 := net.IPv4(127, 0, 0, 1), net.IPv4(127, 0, 0, 2)
	const host = "127.0.0.1"

	serverA := a.tlsCert(t, "hsm-a1", ip1)
	peerA := a.tlsCert(t, "hsm-a2", ip2)
	peerB := b.tlsCert(t, "hsm-b2", ip2)
	shortKey := mustKey(t)
	shortCert, err := IssueNodeCert(a.key, a.certs.Certificate, NodeCertRequest{
		HsmID: "hsm-a3", PublicKey: shortKey.Public(), IPs: []net.IP{ip2},
		NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	shortPeer, err := NodeTLSCertificate(shortKey, shortCert, a.certs.Chain())
	if err != nil {
		t.Fatal(err)
	}

	must := func(c *tls.Config, err error) *tls.Config {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	pinnedA := a.certs.Trust(clockAt(testNow))
	nodeServer := func(cert tls.Certificate, tr Trust) *tls.Config { return must(NodeServerConfig(cert, tr)) }
	clusterClient := func(tr Trust, host string) *tls.Config { return must(ClusterClientConfig(tr, host)) }
	nodeClient := func(cert tls.Certificate, tr Trust) *tls.Config { return must(NodeClientConfig(cert, tr, host)) }
	at := func(tr Trust, now time.Time) Trust { tr.Now = clockAt(now); return tr }

	tls12 := clusterClient(a.clientTrust(testNow), host)
	tls12.MinVersion, tls12.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	anchorPool := x509.NewCertPool()
	anchorPool.AddCert(ca.cert)
	goDefault := &tls.Config{RootCAs: anchorPool, ServerName: host, MinVersion: tls.VersionTLS13, Time: clockAt(testNow)}

	tests := []struct {
		name           string
		server, client *tls.Config
		wantClient     error // reason on the client; nil: handshake succeeds
		wantServer     error // reason on the server
		clientFails    bool  // the client's handshake fails, reason not ours
		serverSeesPeer string
	}{
		{"cluster client, no client certificate", nodeServer(serverA, pinnedA), clusterClient(a.clientTrust(testNow), host), nil, nil, false, ""},
		{"node to node, mutual TLS", nodeServer(serverA, pinnedA), nodeClient(peerA, pinnedA), nil, nil, false, "hsm-a2"},
		{"client trusts another anchor", nodeServer(serverA, pinnedA), clusterClient(Trust{TrustAnchor: otherCA.cert, ClusterID: "cluster-a", Now: clockAt(testNow)}, host), ErrNotChained, nil, false, ""},
		{"server certificate expired (client clock)", nodeServer(serverA, pinnedA), clusterClient(a.clientTrust(yearFrom(testNow).Add(time.Minute)), host), ErrExpired, nil, false, ""},
		{"server certificate for another IP", nodeServer(peerA, pinnedA), clusterClient(a.clientTrust(testNow), host), ErrHostname, nil, false, ""},
		{"server of another cluster, same anchor", nodeServer(peerB, b.certs.Trust(clockAt(testNow))), clusterClient(a.clientTrust(testNow), "127.0.0.2"), ErrWrongCluster, nil, false, ""},
		{"node client of another cluster", nodeServer(serverA, pinnedA), nodeClient(peerB, pinnedA), nil, ErrWrongCluster, false, ""},
		{"node client certificate expired (server clock)", nodeServer(serverA, at(pinnedA, testNow.Add(2*time.Hour))), nodeClient(shortPeer, pinnedA), nil, ErrExpired, false, ""},
		{"TLS 1.2 client", nodeServer(serverA, pinnedA), tls12, nil, nil, true, ""},
		{"Go's default verifier refuses the chain", nodeServer(serverA, pinnedA), goDefault, nil, nil, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := handshake(t, tt.server, tt.client)
			switch {
			case tt.clientFails:
				if r.clientErr == nil {
					t.Fatal("client handshake succeeded")
				}
				t.Logf("client: %v; server: %v", r.clientErr, r.serverErr)
			case tt.wantClient != nil:
				wantReason(t, r.clientErr, tt.wantClient)
				if r.serverErr == nil {
					t.Fatal("server completed a handshake the client refused")
				}
			case tt.wantServer != nil:
				wantReason(t, r.serverErr, tt.wantServer)
				// TLS 1.3: the client finishes first and learns of the refusal on read.
				if r.clientErr == nil && (r.readErr == nil || r.reply == "ok") {
					t.Fatalf("client read %q, %v after the server refused it", r.reply, r.readErr)
				}
			default:
				if r.clientErr != nil || r.serverErr != nil || r.readErr != nil || r.reply != "ok" {
					t.Fatalf("client %v, server %v, read %q %v", r.clientErr, r.serverErr, r.reply, r.readErr)
				}
				if r.client.Version != tls.VersionTLS13 {
					t.Fatalf("version %x", r.client.Version)
				}
				id, ok := PeerNode(r.client)
				if !ok || id.HsmID != "hsm-a1" || id.ClusterID != "cluster-a" {
					t.Fatalf("client sees %+v, %v", id, ok)
				}
				id, ok = PeerNode(r.server)
				if ok != (tt.serverSeesPeer != "") || id.HsmID != tt.serverSeesPeer {
					t.Fatalf("server sees %+v, %v; want %q", id, ok, tt.serverSeesPeer)
				}
			}
		})
	}
}

// TestTLSResumptionReverifies: a resumed TLS 1.3 session runs
// VerifyConnection again, at the configuration's clock, over the whole
// chain. Go's client drops a cached session whose leaf has expired, but not
// one whose cluster certificate has: here the cluster certificate expires
// before the node certificate, and the resumed handshake is refused.
func TestTLSResumptionReverifies(t *testing.T) {
	ca := newTestCA(t, "Customer CA")
	a := newTestCluster(t, ca, "cluster-a")
	csr, err := NewClusterCSR(a.key, "cluster-a")
	if err != nil {
		t.Fatal(err)
	}
	short := clusterTmpl(t, csr)
	short.NotAfter = testNow.Add(time.Hour)
	shortCluster := mustCert(t, short, ca.cert, a.key.Public(), ca.key)
	key := mustKey(t)
	node := mustCert(t, nodeTmpl("cluster-a", "hsm-a1"), shortCluster, key.Public(), a.key) // outlives its issuer
	tc, err := NodeTLSCertificate(key, node, []*x509.Certificate{shortCluster})
	if err != nil {
		t.Fatal(err)
	}
	server, err := NodeServerConfig(tc, a.certs.Trust(clockAt(testNow)))
	if err != nil {
		t.Fatal(err)
	}
	now := testNow
	trust := a.clientTrust(testNow)
	trust.Now = func() time.Time { return now } // moved between handshakes, never during one
	client, err := ClusterClientConfig(trust, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	client.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	var resumed []bool
	verify := client.VerifyConnection
	client.VerifyConnection = func(cs tls.ConnectionState) error {
		resumed = append(resumed, cs.DidResume)
		return verify(cs)
	}

	if r := handshake(t, server, client); r.clientErr != nil || r.reply != "ok" {
		t.Fatalf("first handshake: %v %q", r.clientErr, r.reply)
	}
	if r := handshake(t, server, client); r.clientErr != nil || !r.client.DidResume {
		t.Fatalf("second handshake: %v, resumed %v", r.clientErr, r.client.DidResume)
	}
	now = testNow.Add(2 * time.Hour) // the cluster certificate has expired, the node's has not
	r := handshake(t, server, client)
	wantReason(t, r.clientErr, ErrExpired)
	if len(resumed) != 3 || resumed[0] || !resumed[1] || !resumed[2] {
		t.Fatalf("VerifyConnection calls, resumed: %v; want [false true true]", resumed)
	}
}

func TestTLSConfigs(t *testing.T) {
	ca := newTestCA(t, "Customer CA")
	a := newTestCluster(t, ca, "cluster-a")
	cert := a.tlsCert(t, "hsm-a1", loopback...)
	trust := a.certs.Trust(nil)
	var configs []*tls.Config
	add := func(c *tls.Config, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		configs = append(configs, c)
	}
	add(NodeServerConfig(cert, trust))
	add(NodeClientConfig(cert, trust, "127.0.0.1"))
	add(ClusterClientConfig(a.clientTrust(testNow), "hsm-a1.example"))
	for i, c := range configs {
		if c.MinVersion != tls.VersionTLS13 || c.MaxVersion != tls.VersionTLS13 {
			t.Errorf("config %d: versions %x..%x, want TLS 1.3 only", i, c.MinVersion, c.MaxVersion)
		}
		if c.InsecureSkipVerify && c.VerifyConnection == nil {
			t.Errorf("config %d: InsecureSkipVerify without VerifyConnection", i)
		}
		if c.VerifyConnection == nil {
			t.Errorf("config %d: no VerifyConnection", i)
		}
	}
	if configs[0].ClientAuth != tls.RequestClientCert || len(configs[0].Certificates) != 1 {
		t.Error("server: client certificates must be requested, not required, and verified by VerifyConnection")
	}
	if configs[1].ServerName != "127.0.0.1" || len(configs[1].Certificates) != 1 {
		t.Error("node client: server name or certificate missing")
	}

	t.Run("refusals", func(t *testing.T) {
		for _, tt := range []struct {
			name string
			err  error
			want error
		}{
			{"host with port", second(ClusterClientConfig(trust, "127.0.0.1:2223")), ErrConfig},
			{"empty host", second(ClusterClientConfig(trust, "")), ErrConfig},
			{"no trust anchor", second(ClusterClientConfig(Trust{ClusterID: "cluster-a"}, "127.0.0.1")), ErrConfig},
			{"server without certificate", second(NodeServerConfig(tls.Certificate{}, trust)), ErrConfig},
			{"node client without certificate", second(NodeClientConfig(tls.Certificate{}, trust, "127.0.0.1")), ErrConfig},
			{"server with bad trust", second(NodeServerConfig(cert, Trust{TrustAnchor: ca.cert})), ErrInvalidID},
		} {
			t.Run(tt.name, func(t *testing.T) { wantReason(t, tt.err, tt.want) })
		}
	})
}

func second[T any](_ T, err error) error { return err }

// An HSM of cluster-bbb, restored from a backup of cluster-aaa (so under
// cluster-aaa's certificate and key), is dialled: NodeClientConfigAny with
// a link's two trusts (the linked cluster's own certificate, or this
// lineage's) accepts it; the first alone does not.
func TestTLSHandshakeRestoredCluster(t *testing.T) {
	ca := newTestCA(t, "Customer CA")
	aaa := newTestCluster(t, ca, "cluster-aaa")
	key, err := NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := IssueNodeCert(aaa.key, aaa.certs.Certificate, NodeCertRequest{
		HsmID: "hsm-b1", ClusterID: "cluster-bbb", PublicKey: key.Public(), IPs: loopback,
		NotBefore: testNow.Add(-time.Hour), NotAfter: yearFrom(testNow),
	})
	if err != nil {
		t.Fatal(err)
	}
	cloneCert, err := NodeTLSCertificate(key, cert, aaa.certs.Chain())
	if err != nil {
		t.Fatal(err)
	}
	server, err := NodeServerConfig(cloneCert, aaa.certs.TrustAs("cluster-bbb", clockAt(testNow)))
	if err != nil {
		t.Fatal(err)
	}
	// The client is another HSM of the clone, so the server's own trust
	// admits its certificate; what is tested is the client's side.
	peer := func() tls.Certificate {
		k, _ := NewNodeKey()
		c, err := IssueNodeCert(aaa.key, aaa.certs.Certificate, NodeCertRequest{
			HsmID: "hsm-b2", ClusterID: "cluster-bbb", PublicKey: k.Public(), IPs: loopback,
			NotBefore: testNow.Add(-time.Hour), NotAfter: yearFrom(testNow),
		})
		if err != nil {
			t.Fatal(err)
		}
		tc, err := NodeTLSCertificate(k, c, aaa.certs.Chain())
		if err != nil {
			t.Fatal(err)
		}
		return tc
	}()
	own := Trust{TrustAnchor: ca.cert, ClusterID: "cluster-bbb", Now: clockAt(testNow)}
	lineage := own
	lineage.CertificateClusterID = "cluster-aaa"
	client, err := NodeClientConfigAny(peer, []Trust{own, lineage}, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if r := handshake(t, server, client); r.clientErr != nil || r.serverErr != nil || r.reply != "ok" {
		t.Fatalf("link trusts: client %v, server %v, reply %q", r.clientErr, r.serverErr, r.reply)
	}
	alone, err := NodeClientConfigAny(peer, []Trust{own}, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	r := handshake(t, server, alone)
	wantReason(t, r.clientErr, ErrWrongCluster)
	if _, err := NodeClientConfigAny(peer, nil, "127.0.0.1"); err == nil {
		t.Fatal("NodeClientConfigAny without trusts accepted")
	}
}
