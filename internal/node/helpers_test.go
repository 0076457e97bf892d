package node

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/hsm"
	"github.com/coffer-hsm/coffer/internal/testwait"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// testPKI is a throwaway CA issuing node certificates with an IP SAN for
// 127.0.0.1 and the URI SAN coffer://cluster/<cluster>/hsm/<node id>.
type testPKI struct {
	cluster string
	ca      *x509.Certificate
	caKey   *ecdsa.PrivateKey
	pool    *x509.CertPool
}

func newTestPKI(t testing.TB, cluster string) *testPKI {
	t.Helper()
	key := mustKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA " + cluster},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &testPKI{cluster: cluster, ca: ca, caKey: key, pool: pool}
}

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// cert issues a certificate; uri may be nil (a certificate of no node).
func (p *testPKI) cert(t testing.TB, cn string, uri *url.URL) tls.Certificate {
	t.Helper()
	key := mustKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	if uri != nil {
		tmpl.URIs = []*url.URL{uri}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func (p *testPKI) nodeCert(t testing.TB, id uint32) tls.Certificate {
	u := &url.URL{Scheme: "coffer", Host: "cluster", Path: fmt.Sprintf("/%s/hsm/%d", p.cluster, id)}
	return p.cert(t, fmt.Sprintf("node %d", id), u)
}

// serverTLS asks for a client certificate but lets HSM clients connect
// without one; Peer RPCs then refuse them in AuthorizePeer. As Config
// requires, it verifies node certificates (here: any certificate of the
// test CA) in VerifyConnection.
func (p *testPKI) serverTLS(t testing.TB, id uint32) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{p.nodeCert(t, id)}, ClientAuth: tls.RequestClientCert, VerifyConnection: p.verifyNode}
}

func (p *testPKI) verifyNode(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return nil
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: p.pool, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err
}

func (p *testPKI) peerTLS(t testing.TB, id uint32) func(string) (*tls.Config, error) {
	cert := p.nodeCert(t, id)
	return func(string) (*tls.Config, error) {
		return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: p.pool}, nil
	}
}

// authorize is the tests' AuthorizePeer: the client certificate's coffer://
// URI names this cluster and a node id (the node has checked it is a node
// certificate: verifyNode).
func (p *testPKI) authorize(ctx context.Context) (uint32, error) {
	pr, ok := peer.FromContext(ctx)
	if !ok {
		return 0, errors.New("no peer")
	}
	ti, ok := pr.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 {
		return 0, errors.New("no client certificate")
	}
	for _, u := range ti.State.PeerCertificates[0].URIs {
		rest, ok := strings.CutPrefix(u.Path, "/"+p.cluster+"/hsm/")
		if u.Scheme != "coffer" || u.Host != "cluster" || !ok {
			continue
		}
		id, err := strconv.ParseUint(rest, 10, 32)
		if err != nil || id == 0 {
			return 0, fmt.Errorf("bad node id in %s", u)
		}
		return uint32(id), nil
	}
	return 0, errors.New("certificate names no node of this cluster")
}

// testCost makes password hashing cheap.
var testCost = hsm.PasswordCost{Argon2Time: 1, Argon2MemoryKiB: 64, Argon2Threads: 1, PBKDF2Iterations: 1000}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// config is a node of pki's cluster on its own listener and data dir.
func config(t testing.TB, pki *testPKI, id uint32, src MasterKeySource) Config {
	return Config{
		DataDir: t.TempDir(), Listener: listen(t), NodeID: id, ClusterID: pki.cluster, HSMID: fmt.Sprintf("hsm-%d", id),
		ServerTLS: pki.serverTLS(t, id), PeerTLS: pki.peerTLS(t, id), MasterKey: src,
		AuthorizePeer: pki.authorize, SyncInterval: 100 * time.Millisecond, ShutdownTimeout: 2 * time.Second,
		Device: DeviceConfig{Password: testCost},
	}
}

// running is a node whose Run goroutine the test owns.
type running struct {
	*Node
	stop func() error // ends Run and returns its error; later calls return it again
}

func start(t testing.TB, cfg Config) *running {
	t.Helper()
	n, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return run(t, n)
}

func run(t testing.TB, n *Node) *running {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	var (
		stopped bool
		result  error
	)
	r := &running{Node: n, stop: func() error {
		if !stopped {
			cancel()
			result, stopped = <-done, true
		}
		return result
	}}
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("node %d: Run: %v", n.cfg.NodeID, err)
		}
	})
	return r
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if testwait.Eventually(t.Context(), 20*time.Second, 10*time.Millisecond, testwait.Holds(cond)) != nil {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// dial is an HSM client over TLS, without a client certificate unless cert
// is given.
func dial(t testing.TB, pki *testPKI, addr string, cert ...tls.Certificate) *grpc.ClientConn {
	t.Helper()
	tc := &tls.Config{RootCAs: pki.pool, Certificates: cert, MinVersion: tls.VersionTLS13}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// The users of the tests.
const (
	adminPW = "admin-password-1"
	cuName  = "alice"
	cuPW    = "alice-password-1"
)

// activate has the pre-admin activate the cluster and create the crypto
// user alice.
func activate(t testing.TB, c hsmv1.HSMClient) {
	t.Helper()
	ctx := t.Context()
	s := open(t, c)
	must(t)(c.Login(ctx, &hsmv1.LoginRequest{Session: s, Role: "admin", Username: "admin", Password: "password"}))
	must(t)(c.Activate(ctx, &hsmv1.ActivateRequest{Session: s, NewPassword: adminPW}))
	must(t)(c.CreateUser(ctx, &hsmv1.CreateUserRequest{Session: s, Username: cuName, Role: "crypto-user", Password: cuPW}))
	must(t)(c.CloseSession(ctx, &hsmv1.SessionRequest{Session: s}))
}

func open(t testing.TB, c hsmv1.HSMClient) uint64 {
	t.Helper()
	r, err := c.OpenSession(t.Context(), &hsmv1.OpenSessionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return r.GetSession()
}

// cuSession opens a session logged in as alice.
func cuSession(t testing.TB, c hsmv1.HSMClient) uint64 {
	t.Helper()
	s := open(t, c)
	must(t)(c.Login(t.Context(), &hsmv1.LoginRequest{Session: s, Role: "crypto-user", Username: cuName, Password: cuPW}))
	return s
}

// must fails the test on an error of a call returning (response, error).
func must(t testing.TB) func(any, error) {
	return func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
}

// rvName is the name of the PKCS#11 return value in err's ErrorInfo (e.g.
// "CKR_PIN_INCORRECT"), "" if it carries none.
func rvName(err error) string {
	if rv, ok := refusalRV(err); ok {
		return rv.String()
	}
	return ""
}

// reasonOf is the ErrorInfo reason of err, "" if it carries none.
func reasonOf(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

// wantErr checks a status code and the PKCS#11 return value.
func wantErr(t testing.TB, err error, code codes.Code, rv string) {
	t.Helper()
	if status.Code(err) != code || rvName(err) != rv {
		t.Fatalf("got %v (%q), want code %v, %q", err, rvName(err), code, rv)
	}
}

func boolAttr(t ck.AttributeType, v bool) *hsmv1.Attribute {
	b := []byte{0}
	if v {
		b[0] = 1
	}
	return &hsmv1.Attribute{Type: uint64(t), Value: b}
}

func ulongAttr(t ck.AttributeType, v uint64) *hsmv1.Attribute {
	return &hsmv1.Attribute{Type: uint64(t), Value: binary.LittleEndian.AppendUint64(nil, v)}
}

func p256Params(t testing.TB) []byte {
	b, err := asn1.Marshal(asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mechOf(m ck.MechanismType) *hsmv1.Mechanism { return &hsmv1.Mechanism{Type: uint64(m)} }

// aesKey generates an AES-256 key (a token key if token).
func aesKey(t testing.TB, c hsmv1.HSMClient, s uint64, token bool, minNodes uint32) (*hsmv1.CreateResponse, error) {
	return c.GenerateKey(t.Context(), &hsmv1.GenerateKeyRequest{
		Session: s, Mechanism: mechOf(ck.CKM_AES_KEY_GEN), MinNodes: minNodes,
		Template: []*hsmv1.Attribute{ulongAttr(ck.CKA_VALUE_LEN, 32), boolAttr(ck.CKA_TOKEN, token)},
	})
}

func ecPair(t testing.TB, c hsmv1.HSMClient, s uint64, token bool, minNodes uint32) (*hsmv1.GenerateKeyPairResponse, error) {
	return c.GenerateKeyPair(t.Context(), &hsmv1.GenerateKeyPairRequest{
		Session: s, Mechanism: mechOf(ck.CKM_EC_KEY_PAIR_GEN), MinNodes: minNodes,
		PublicTemplate: []*hsmv1.Attribute{
			{Type: uint64(ck.CKA_EC_PARAMS), Value: p256Params(t)}, boolAttr(ck.CKA_TOKEN, token),
		},
		PrivateTemplate: []*hsmv1.Attribute{boolAttr(ck.CKA_TOKEN, token)},
	})
}
