package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/coffer-hsm/coffer/internal/batch"
	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/proto/hsmv1"
)

// A fake cluster of HSMs for the client's tests: real gRPC over real TLS on
// 127.0.0.1, with a shared "world" of objects standing in for replication.

const (
	fakeUser     = "alice"
	fakePassword = "correct horse"
)

// world is the objects of a fake cluster: which servers hold each.
type world struct {
	mu      sync.Mutex
	next    uint64
	holders map[uint64]uint64 // object → mask of server indexes
	servers []*fakeHSM
}

func (w *world) create(self *fakeHSM, minNodes uint32, token bool) (uint64, []uint32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.next++
	id := w.next
	mask := uint64(1) << self.idx
	stored := []uint32{self.nodeID}
	if token {
		for _, o := range w.servers {
			if uint32(len(stored)) >= minNodes {
				break
			}
			if o != self && o.running() {
				mask |= 1 << o.idx
				stored = append(stored, o.nodeID)
			}
		}
	}
	w.holders[id] = mask
	return id, stored
}

// replicate makes every server hold id.
func (w *world) replicate(id uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.holders[id] = ^uint64(0)
}

func (w *world) holds(s *fakeHSM, id uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.holders[id]&(1<<s.idx) != 0
}

func (w *world) list(s *fakeHSM) []uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []uint64
	for id, m := range w.holders {
		if m&(1<<s.idx) != 0 {
			out = append(out, id)
		}
	}
	return out
}

// fakeHSM is one fake HSM server.
type fakeHSM struct {
	hsmv1.UnimplementedHSMServer
	w      *world
	idx    int
	nodeID uint32
	addr   string
	tls    *tls.Config

	mu       sync.Mutex
	srv      *grpc.Server
	serving  sync.WaitGroup
	sessions map[uint64]bool // session → logged in
	nextSID  uint64
	calls    map[string]int
	fail     map[string]error     // method → error to answer
	hang     map[string]bool      // method → block until the request's context ends ("*": all)
	minNodes []uint32             // min_nodes of each creation request
	idem     []*hsmv1.Idempotency // of each GenerateKey request

	inflight atomic.Int64
	entered  chan string // each request that starts hanging is announced here
	logins   atomic.Int64
	notReady atomic.Bool
	noBatch  atomic.Bool // it predates Batch: the stream is UNIMPLEMENTED

	left bool // it left the cluster: its peers no longer list it (guarded by w.mu)
}

// address is where f serves (set by start).
func (f *fakeHSM) address() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addr
}

// refuse is the node's error shape: a status with an ErrorInfo.
func refuse(rv ck.RV, msg string) error {
	st, err := status.New(codes.FailedPrecondition, msg).WithDetails(&errdetails.ErrorInfo{
		Domain: "coffer.hsm", Reason: rv.String(), Metadata: map[string]string{"rv": fmt.Sprintf("0x%x", uint(rv))},
	})
	if err != nil {
		panic(err)
	}
	return st.Err()
}

func (f *fakeHSM) running() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.srv != nil
}

// start serves on f.addr (a new port the first time).
func (f *fakeHSM) start(t testing.TB) {
	t.Helper()
	addr := f.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addr = lis.Addr().String()
	f.sessions = map[uint64]bool{} // a restarted HSM has lost its sessions
	f.srv = grpc.NewServer(grpc.Creds(credentials.NewTLS(f.tls)))
	hsmv1.RegisterHSMServer(f.srv, f)
	srv := f.srv
	f.serving.Go(func() { _ = srv.Serve(lis) })
}

// Batch serves the Batch stream as a node does, each call through f's own
// method.
func (f *fakeHSM) Batch(st hsmv1.HSM_BatchServer) error {
	if f.noBatch.Load() {
		return f.UnimplementedHSMServer.Batch(st)
	}
	return batch.NewServer(f, nil).Serve(st)
}

// stop kills the server: connections close, requests in flight fail.
func (f *fakeHSM) stop() {
	f.mu.Lock()
	srv := f.srv
	f.srv = nil
	f.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
	f.serving.Wait()
}

func (f *fakeHSM) setFail(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[method] = err
}

func (f *fakeHSM) setHang(method string, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hang[method] = on
}

func (f *fakeHSM) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

func (f *fakeHSM) forgetSessions() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sessions = map[uint64]bool{}
}

// enter is the start of every request: count it, then fail or hang as told.
func (f *fakeHSM) enter(ctx context.Context, method string) error {
	f.mu.Lock()
	f.calls[method]++
	err := f.fail[method]
	hang := f.hang[method] || f.hang["*"]
	f.mu.Unlock()
	if err != nil {
		return err
	}
	if hang {
		f.inflight.Add(1)
		defer f.inflight.Add(-1)
		select {
		case f.entered <- method:
		default:
		}
		<-ctx.Done()
		return status.Error(codes.Canceled, "hung request ended")
	}
	return nil
}

func (f *fakeHSM) session(ctx context.Context, method string, sid uint64) error {
	if err := f.enter(ctx, method); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	in, ok := f.sessions[sid]
	if !ok {
		return refuse(ck.CKR_SESSION_HANDLE_INVALID, "no such session")
	}
	if !in {
		return refuse(ck.CKR_USER_NOT_LOGGED_IN, "not logged in")
	}
	return nil
}

func (f *fakeHSM) key(ctx context.Context, method string, sid, key uint64) error {
	if err := f.session(ctx, method, sid); err != nil {
		return err
	}
	if key != 0 && !f.w.holds(f, key) {
		return refuse(ck.CKR_KEY_HANDLE_INVALID, fmt.Sprintf("HSM %d has no key %d", f.nodeID, key))
	}
	return nil
}

func (f *fakeHSM) created(ctx context.Context, method string, sid uint64, minNodes uint32, token bool) (*hsmv1.CreateResponse, error) {
	if err := f.session(ctx, method, sid); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.minNodes = append(f.minNodes, minNodes)
	f.mu.Unlock()
	id, stored := f.w.create(f, minNodes, token)
	return &hsmv1.CreateResponse{Object: id, StoredOn: stored}, nil
}

func wireToken(attrs []*hsmv1.Attribute) bool {
	for _, a := range attrs {
		if ck.AttributeType(a.GetType()) == ck.CKA_TOKEN {
			return len(a.GetValue()) > 0 && a.GetValue()[0] != 0
		}
	}
	return false
}

// The HSM service.

func (f *fakeHSM) NodeInfo(ctx context.Context, _ *hsmv1.Empty) (*hsmv1.NodeInfoResponse, error) {
	if err := f.enter(ctx, "NodeInfo"); err != nil {
		return nil, err
	}
	resp := &hsmv1.NodeInfoResponse{NodeId: f.nodeID, ClusterId: "cluster-test", Ready: !f.notReady.Load()}
	f.w.mu.Lock()
	defer f.w.mu.Unlock()
	for _, o := range f.w.servers { // the cluster's membership, as a node lists its peers
		if o != f && !o.left {
			resp.Peers = append(resp.Peers, &hsmv1.PeerStatus{NodeId: o.nodeID, Address: o.address(), Connected: o.running()})
		}
	}
	return resp, nil
}

func (f *fakeHSM) Mechanisms(ctx context.Context, _ *hsmv1.Empty) (*hsmv1.MechanismsResponse, error) {
	if err := f.enter(ctx, "Mechanisms"); err != nil {
		return nil, err
	}
	return &hsmv1.MechanismsResponse{Mechanisms: []*hsmv1.MechanismInfo{{Type: uint64(ck.CKM_AES_KEY_GEN), MinKeySize: 16, MaxKeySize: 32}}}, nil
}

func (f *fakeHSM) OpenSession(ctx context.Context, _ *hsmv1.OpenSessionRequest) (*hsmv1.OpenSessionResponse, error) {
	if err := f.enter(ctx, "OpenSession"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextSID++
	f.sessions[f.nextSID] = false
	return &hsmv1.OpenSessionResponse{Session: f.nextSID}, nil
}

func (f *fakeHSM) CloseSession(ctx context.Context, r *hsmv1.SessionRequest) (*hsmv1.Empty, error) {
	if err := f.enter(ctx, "CloseSession"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.sessions[r.GetSession()]; !ok {
		return nil, refuse(ck.CKR_SESSION_HANDLE_INVALID, "no such session")
	}
	delete(f.sessions, r.GetSession())
	return &hsmv1.Empty{}, nil
}

func (f *fakeHSM) Login(ctx context.Context, r *hsmv1.LoginRequest) (*hsmv1.Empty, error) {
	if err := f.enter(ctx, "Login"); err != nil {
		return nil, err
	}
	f.logins.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.sessions[r.GetSession()]; !ok {
		return nil, refuse(ck.CKR_SESSION_HANDLE_INVALID, "no such session")
	}
	if r.GetUsername() != fakeUser || r.GetPassword() != fakePassword {
		return nil, refuse(ck.CKR_PIN_INCORRECT, "incorrect username or password")
	}
	f.sessions[r.GetSession()] = true
	return &hsmv1.Empty{}, nil
}

func (f *fakeHSM) GenerateKey(ctx context.Context, r *hsmv1.GenerateKeyRequest) (*hsmv1.CreateResponse, error) {
	f.mu.Lock()
	f.idem = append(f.idem, r.GetIdempotency())
	f.mu.Unlock()
	return f.created(ctx, "GenerateKey", r.GetSession(), r.GetMinNodes(), wireToken(r.GetTemplate()))
}

func (f *fakeHSM) GenerateKeyPair(ctx context.Context, r *hsmv1.GenerateKeyPairRequest) (*hsmv1.GenerateKeyPairResponse, error) {
	pub, err := f.created(ctx, "GenerateKeyPair", r.GetSession(), r.GetMinNodes(), wireToken(r.GetPublicTemplate()))
	if err != nil {
		return nil, err
	}
	priv, _ := f.w.create(f, r.GetMinNodes(), wireToken(r.GetPrivateTemplate()))
	return &hsmv1.GenerateKeyPairResponse{PublicKey: pub.GetObject(), PrivateKey: priv, StoredOn: pub.GetStoredOn()}, nil
}

func (f *fakeHSM) CreateObject(ctx context.Context, r *hsmv1.CreateObjectRequest) (*hsmv1.CreateResponse, error) {
	return f.created(ctx, "CreateObject", r.GetSession(), r.GetMinNodes(), wireToken(r.GetTemplate()))
}

func (f *fakeHSM) ImportKey(ctx context.Context, r *hsmv1.ImportKeyRequest) (*hsmv1.CreateResponse, error) {
	return f.created(ctx, "ImportKey", r.GetSession(), r.GetMinNodes(), wireToken(r.GetTemplate()))
}

func (f *fakeHSM) UnwrapKey(ctx context.Context, r *hsmv1.UnwrapKeyRequest) (*hsmv1.CreateResponse, error) {
	if err := f.key(ctx, "UnwrapKey.key", r.GetSession(), r.GetUnwrappingKey()); err != nil {
		return nil, err
	}
	return f.created(ctx, "UnwrapKey", r.GetSession(), r.GetMinNodes(), wireToken(r.GetTemplate()))
}

func (f *fakeHSM) DeriveKey(ctx context.Context, r *hsmv1.DeriveKeyRequest) (*hsmv1.CreateResponse, error) {
	if err := f.key(ctx, "DeriveKey.key", r.GetSession(), r.GetBaseKey()); err != nil {
		return nil, err
	}
	return f.created(ctx, "DeriveKey", r.GetSession(), r.GetMinNodes(), wireToken(r.GetTemplate()))
}

func (f *fakeHSM) FindObjects(ctx context.Context, r *hsmv1.FindObjectsRequest) (*hsmv1.FindObjectsResponse, error) {
	if err := f.session(ctx, "FindObjects", r.GetSession()); err != nil {
		return nil, err
	}
	return &hsmv1.FindObjectsResponse{Objects: f.w.list(f)}, nil
}

func (f *fakeHSM) GetAttributes(ctx context.Context, r *hsmv1.GetAttributesRequest) (*hsmv1.GetAttributesResponse, error) {
	if err := f.key(ctx, "GetAttributes", r.GetSession(), r.GetObject()); err != nil {
		return nil, err
	}
	out := &hsmv1.GetAttributesResponse{}
	for _, t := range r.GetTypes() {
		out.Values = append(out.Values, &hsmv1.AttributeValue{Type: t, Value: []byte(fmt.Sprint(f.nodeID))})
	}
	return out, nil
}

func (f *fakeHSM) SetAttributes(ctx context.Context, r *hsmv1.SetAttributesRequest) (*hsmv1.Empty, error) {
	if err := f.key(ctx, "SetAttributes", r.GetSession(), r.GetObject()); err != nil {
		return nil, err
	}
	return &hsmv1.Empty{}, nil
}

func (f *fakeHSM) DestroyObject(ctx context.Context, r *hsmv1.ObjectRequest) (*hsmv1.Empty, error) {
	if err := f.key(ctx, "DestroyObject", r.GetSession(), r.GetObject()); err != nil {
		return nil, err
	}
	return &hsmv1.Empty{}, nil
}

func (f *fakeHSM) ExportPublicKey(ctx context.Context, r *hsmv1.ObjectRequest) (*hsmv1.BytesResponse, error) {
	if err := f.key(ctx, "ExportPublicKey", r.GetSession(), r.GetObject()); err != nil {
		return nil, err
	}
	return &hsmv1.BytesResponse{Data: []byte("spki")}, nil
}

func (f *fakeHSM) crypt(ctx context.Context, method string, r *hsmv1.CryptRequest) (*hsmv1.BytesResponse, error) {
	if err := f.key(ctx, method, r.GetSession(), r.GetKey()); err != nil {
		return nil, err
	}
	return &hsmv1.BytesResponse{Data: append([]byte(method+":"), r.GetData()...)}, nil
}

func (f *fakeHSM) Encrypt(ctx context.Context, r *hsmv1.CryptRequest) (*hsmv1.BytesResponse, error) {
	return f.crypt(ctx, "Encrypt", r)
}

func (f *fakeHSM) Decrypt(ctx context.Context, r *hsmv1.CryptRequest) (*hsmv1.BytesResponse, error) {
	return f.crypt(ctx, "Decrypt", r)
}

func (f *fakeHSM) Sign(ctx context.Context, r *hsmv1.CryptRequest) (*hsmv1.BytesResponse, error) {
	return f.crypt(ctx, "Sign", r)
}

func (f *fakeHSM) Digest(ctx context.Context, r *hsmv1.CryptRequest) (*hsmv1.BytesResponse, error) {
	return f.crypt(ctx, "Digest", r)
}

func (f *fakeHSM) Verify(ctx context.Context, r *hsmv1.VerifyRequest) (*hsmv1.Empty, error) {
	if err := f.key(ctx, "Verify", r.GetSession(), r.GetKey()); err != nil {
		return nil, err
	}
	if string(r.GetSignature()) != "Sign:"+string(r.GetData()) {
		return nil, refuse(ck.CKR_SIGNATURE_INVALID, "bad signature")
	}
	return &hsmv1.Empty{}, nil
}

func (f *fakeHSM) WrapKey(ctx context.Context, r *hsmv1.WrapKeyRequest) (*hsmv1.BytesResponse, error) {
	if err := f.key(ctx, "WrapKey", r.GetSession(), r.GetWrappingKey()); err != nil {
		return nil, err
	}
	if !f.w.holds(f, r.GetKey()) {
		return nil, refuse(ck.CKR_KEY_HANDLE_INVALID, "no such key")
	}
	return &hsmv1.BytesResponse{Data: []byte("wrapped")}, nil
}

func (f *fakeHSM) GenerateRandom(ctx context.Context, r *hsmv1.RandomRequest) (*hsmv1.BytesResponse, error) {
	if err := f.session(ctx, "GenerateRandom", r.GetSession()); err != nil {
		return nil, err
	}
	return &hsmv1.BytesResponse{Data: make([]byte, r.GetLength())}, nil
}

func (f *fakeHSM) Begin(ctx context.Context, r *hsmv1.BeginRequest) (*hsmv1.BeginResponse, error) {
	if err := f.key(ctx, "Begin", r.GetSession(), r.GetKey()); err != nil {
		return nil, err
	}
	return &hsmv1.BeginResponse{Operation: 7}, nil
}

func (f *fakeHSM) Update(ctx context.Context, r *hsmv1.UpdateRequest) (*hsmv1.BytesResponse, error) {
	if err := f.session(ctx, "Update", r.GetSession()); err != nil {
		return nil, err
	}
	return &hsmv1.BytesResponse{Data: r.GetData()}, nil
}

func (f *fakeHSM) Finish(ctx context.Context, r *hsmv1.FinishRequest) (*hsmv1.BytesResponse, error) {
	if err := f.session(ctx, "Finish", r.GetSession()); err != nil {
		return nil, err
	}
	return &hsmv1.BytesResponse{Data: []byte("done")}, nil
}

func (f *fakeHSM) CreateUser(ctx context.Context, r *hsmv1.CreateUserRequest) (*hsmv1.Empty, error) {
	if err := f.session(ctx, "CreateUser", r.GetSession()); err != nil {
		return nil, err
	}
	return &hsmv1.Empty{}, nil
}

func (f *fakeHSM) QuorumToken(ctx context.Context, r *hsmv1.QuorumTokenRequest) (*hsmv1.QuorumTokenInfo, error) {
	if err := f.session(ctx, "QuorumToken", r.GetSession()); err != nil {
		return nil, err
	}
	return &hsmv1.QuorumTokenInfo{Id: fmt.Sprintf("token-of-%d", f.nodeID), Service: r.GetService()}, nil
}

func (f *fakeHSM) ListQuorumTokens(ctx context.Context, r *hsmv1.SessionRequest) (*hsmv1.ListQuorumTokensResponse, error) {
	if err := f.session(ctx, "ListQuorumTokens", r.GetSession()); err != nil {
		return nil, err
	}
	return &hsmv1.ListQuorumTokensResponse{Tokens: []*hsmv1.QuorumTokenInfo{{Id: fmt.Sprintf("token-of-%d", f.nodeID)}}}, nil
}

// testPKI is a CA and a server certificate for 127.0.0.1.
type testPKI struct {
	server *tls.Config
	client *tls.Config
}

func newTestPKI(t testing.TB) testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test cluster CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "hsm"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return testPKI{
		server: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: key}}, MinVersion: tls.VersionTLS13},
		client: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13},
	}
}

// newFakeCluster starts n fake HSMs (node ids 1..n), stopped at cleanup.
func newFakeCluster(t testing.TB, n int) (*world, testPKI) {
	t.Helper()
	pki := newTestPKI(t)
	w := &world{holders: map[uint64]uint64{}}
	for i := range n {
		f := &fakeHSM{
			w: w, idx: i, nodeID: uint32(i + 1), tls: pki.server,
			calls: map[string]int{}, fail: map[string]error{}, hang: map[string]bool{},
			entered: make(chan string, 64),
		}
		f.start(t)
		w.servers = append(w.servers, f)
		t.Cleanup(f.stop)
	}
	return w, pki
}

// join starts one more fake HSM (the next node id) serving under tlsCfg and
// makes it a member: its peers list it from now on.
func (w *world) join(t testing.TB, tlsCfg *tls.Config) *fakeHSM {
	t.Helper()
	w.mu.Lock()
	f := &fakeHSM{
		w: w, idx: len(w.servers), nodeID: uint32(len(w.servers) + 1), tls: tlsCfg,
		calls: map[string]int{}, fail: map[string]error{}, hang: map[string]bool{},
		entered: make(chan string, 64),
	}
	w.mu.Unlock()
	f.start(t)
	t.Cleanup(f.stop)
	w.mu.Lock()
	w.servers = append(w.servers, f)
	w.mu.Unlock()
	return f
}

// leave takes f out of the cluster: stopped, and no longer listed.
func (w *world) leave(f *fakeHSM) {
	w.mu.Lock()
	f.left = true
	w.mu.Unlock()
	f.stop()
}

func (w *world) addrs() []string {
	out := make([]string, len(w.servers))
	for i, s := range w.servers {
		out[i] = s.addr
	}
	return out
}

// tlsFor is the client's per-HSM TLS configuration: the test CA, and the
// address dialled as the name to verify.
func (p testPKI) tlsFor(host string) (*tls.Config, error) {
	c := p.client.Clone()
	c.ServerName = host
	return c, nil
}

// lastIdem is the idempotency of the last GenerateKey request f received.
func (f *fakeHSM) lastIdem(t *testing.T) *hsmv1.Idempotency {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.idem) == 0 {
		t.Fatalf("HSM %d received no GenerateKey", f.nodeID)
	}
	return f.idem[len(f.idem)-1]
}
