package controlplane

import (
	"bytes"
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/pki"
)

// fakeProv is an in-process Provisioner: the cluster key in memory, nodes
// that are "ready" at once unless told otherwise. Its backups are blobs of
// its own making, authenticated with HMAC-SHA256 under a backup key only
// it holds, so that tampering is detected as the HSM side would.
type fakeProv struct {
	mu        sync.Mutex
	keys      map[ClusterRef]crypto.Signer
	csrs      map[ClusterRef]string
	specs     map[string]NodeSpec // by HSM id, the last Ensure
	notReady  map[string]bool
	died      map[string]bool
	removed   []string
	activated bool

	backupKey  []byte
	objects    map[ClusterRef][]string // the token objects a cluster's HSMs hold
	stores     map[string]bool         // HSMs whose node has a store
	restored   map[string]string       // HSM id → the bound id of the backup its node started from
	backupsBy  []string                // the HSMs Backup was asked of, in order
	backupErr  error                   // Backup fails with it
	restoreErr error                   // RestoreCluster fails with it (not a refusal)
	clusters   map[ClusterRef]bool     // clusters RestoreCluster prepared
}

func newFakeProv() *fakeProv {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		panic(err)
	}
	return &fakeProv{keys: map[ClusterRef]crypto.Signer{}, csrs: map[ClusterRef]string{}, specs: map[string]NodeSpec{},
		notReady: map[string]bool{}, died: map[string]bool{}, backupKey: key, objects: map[ClusterRef][]string{},
		stores: map[string]bool{}, restored: map[string]string{}, clusters: map[ClusterRef]bool{}}
}

// fakeBackupMagic starts every fakeProv blob; an HMAC-SHA256 of all before
// it ends it.
const fakeBackupMagic = "coffer fake backup v1\n"

// fakeBackup is what a fakeProv blob holds.
type fakeBackup struct {
	BackupID    string    `json:"backup_id"`
	ClusterID   string    `json:"cluster_id"`
	ClusterKey  []byte    `json:"cluster_key"` // PKCS#8
	CSR         string    `json:"csr"`
	Certificate string    `json:"certificate"`
	TrustAnchor string    `json:"trust_anchor"`
	Activated   bool      `json:"activated"`
	FIPS        bool      `json:"fips"`
	Created     time.Time `json:"created"`
	Objects     []string  `json:"objects"`
}

func (f *fakeProv) Backup(_ context.Context, spec NodeSpec, backupID string, w io.Writer) (BackupInfo, error) {
	f.mu.Lock()
	f.backupsBy = append(f.backupsBy, spec.HsmID)
	_, running := f.specs[spec.HsmID]
	key := f.keys[spec.ClusterRef]
	fb := fakeBackup{
		BackupID: backupID, ClusterID: spec.ClusterID, CSR: f.csrs[spec.ClusterRef], Certificate: spec.ClusterCertificate,
		TrustAnchor: spec.TrustAnchor, Activated: f.activated, FIPS: spec.FIPS, Created: time.Now().UTC(),
		Objects: slices.Clone(f.objects[spec.ClusterRef]),
	}
	err := f.backupErr
	switch {
	case err != nil:
	case !running || f.notReady[spec.HsmID]:
		err = fmt.Errorf("the node of HSM %s is not running", spec.HsmID)
	case key == nil:
		err = fmt.Errorf("no cluster key for %s", spec.ClusterID)
	}
	bkey := f.backupKey
	f.mu.Unlock()
	if err != nil {
		return BackupInfo{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return BackupInfo{}, err
	}
	fb.ClusterKey = der
	payload, err := json.Marshal(fb)
	if err != nil {
		return BackupInfo{}, err
	}
	blob := append([]byte(fakeBackupMagic), payload...)
	mac := hmac.New(sha256.New, bkey)
	mac.Write(blob)
	blob = mac.Sum(blob)
	// Written in pieces, as a node streams it.
	var n int64
	for len(blob) > 0 {
		k := min(len(blob), 1000)
		m, err := w.Write(blob[:k])
		n += int64(m)
		if err != nil {
			return BackupInfo{}, err
		}
		blob = blob[k:]
	}
	return BackupInfo{Records: len(fb.Objects), Bytes: n}, nil
}

// openFakeBackup verifies a blob as backup boundID.
func openFakeBackup(key []byte, boundID string, r io.Reader) (fakeBackup, error) {
	var fb fakeBackup
	blob, err := io.ReadAll(io.LimitReader(r, 64<<20))
	if err != nil {
		return fb, err
	}
	if len(blob) < len(fakeBackupMagic)+sha256.Size || !bytes.HasPrefix(blob, []byte(fakeBackupMagic)) {
		if bytes.HasPrefix([]byte(fakeBackupMagic), blob) || bytes.HasPrefix(blob, []byte(fakeBackupMagic)) {
			return fb, fmt.Errorf("%w: truncated (%d bytes)", ErrBackupRefused, len(blob))
		}
		return fb, fmt.Errorf("%w: not a Coffer backup", ErrBackupRefused)
	}
	body, sum := blob[:len(blob)-sha256.Size], blob[len(blob)-sha256.Size:]
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil), sum) {
		return fb, fmt.Errorf("%w: authentication failed: the blob was edited or truncated, or made with another backup key", ErrBackupRefused)
	}
	if err := json.Unmarshal(body[len(fakeBackupMagic):], &fb); err != nil {
		return fb, fmt.Errorf("%w: malformed: %v", ErrBackupRefused, err)
	}
	if fb.BackupID != boundID {
		return fb, fmt.Errorf("%w: the blob is backup %s, not %s", ErrBackupRefused, fb.BackupID, boundID)
	}
	return fb, nil
}

func (f *fakeProv) RestoreCluster(_ context.Context, ref ClusterRef, boundID string, blob io.Reader) (RestoredCluster, error) {
	f.mu.Lock()
	bkey, rerr := f.backupKey, f.restoreErr
	f.mu.Unlock()
	if rerr != nil {
		return RestoredCluster{}, rerr
	}
	fb, err := openFakeBackup(bkey, boundID, blob)
	if err != nil {
		return RestoredCluster{}, err
	}
	k, err := x509.ParsePKCS8PrivateKey(fb.ClusterKey)
	if err != nil {
		return RestoredCluster{}, fmt.Errorf("%w: cluster key: %v", ErrBackupRefused, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys[ref], f.csrs[ref], f.clusters[ref] = k.(crypto.Signer), fb.CSR, true
	return RestoredCluster{
		SourceClusterID: fb.ClusterID, ClusterCSR: fb.CSR, ClusterCertificate: fb.Certificate, TrustAnchor: fb.TrustAnchor,
		Activated: fb.Activated, FIPS: fb.FIPS, Created: fb.Created,
	}, nil
}

func (f *fakeProv) ClusterKey(_ context.Context, ref ClusterRef, hsmID string) (ClusterKeyResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key, ok := f.keys[ref]
	if !ok {
		k, err := pki.NewClusterKey()
		if err != nil {
			return ClusterKeyResult{}, err
		}
		csr, err := pki.NewClusterCSR(k, ref.ClusterID)
		if err != nil {
			return ClusterKeyResult{}, err
		}
		key, f.keys[ref], f.csrs[ref] = k, k, string(csr)
	}
	now := time.Now()
	cert, err := pki.NewHsmCertificate(key, ref.ClusterID, hsmID, now.Add(-time.Minute), now.Add(time.Hour))
	if err != nil {
		return ClusterKeyResult{}, err
	}
	return ClusterKeyResult{ClusterCSR: f.csrs[ref], HsmCertificate: string(pki.EncodeCertificatesPEM(cert))}, nil
}

func (f *fakeProv) Ensure(ctx context.Context, spec NodeSpec, _ bool) (NodeStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.stores[spec.HsmID] {
		// A node's first start: restore, create or clone its store.
		switch spec.MaskingKey {
		case "restore":
			if spec.Restore == nil {
				return NodeStatus{}, fmt.Errorf("HSM %s: masking key restore without a backup", spec.HsmID)
			}
			rc, err := spec.Restore.Open(ctx)
			if err != nil {
				return NodeStatus{}, err
			}
			fb, err := openFakeBackup(f.backupKey, spec.Restore.BoundID, rc)
			rc.Close()
			if err != nil {
				return NodeStatus{}, err
			}
			f.objects[spec.ClusterRef] = fb.Objects
			f.restored[spec.HsmID] = spec.Restore.BoundID
		case "create", "clone":
		default:
			return NodeStatus{}, fmt.Errorf("HSM %s: masking key %q", spec.HsmID, spec.MaskingKey)
		}
		f.stores[spec.HsmID] = true
	}
	f.specs[spec.HsmID] = spec
	st := NodeStatus{Running: true, Ready: !f.notReady[spec.HsmID]}
	if f.died[spec.HsmID] {
		delete(f.died, spec.HsmID)
		st.Restarted, st.Ready = true, false
	}
	return st, nil
}

func (f *fakeProv) Activated(context.Context, NodeSpec) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.activated, nil
}

func (f *fakeProv) RemoveHSM(_ context.Context, ref HSMRef) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, ref.HsmID)
	delete(f.specs, ref.HsmID)
	delete(f.stores, ref.HsmID)
	return nil
}

func (f *fakeProv) RemoveCluster(_ context.Context, ref ClusterRef) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.keys, ref)
	delete(f.clusters, ref)
	return nil
}

func (f *fakeProv) Close(context.Context, bool) error { return nil }

func (f *fakeProv) set(fn func(f *fakeProv)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

var testCred = Credential{AccessKeyID: "AKIATESTTESTTEST0001", SecretAccessKey: "secret-secret-secret-secret", AccountID: "123456789012"}

// testEnv is a Server behind an httptest server, reconciled by hand.
type testEnv struct {
	t    *testing.T
	dir  string
	s    *Server
	prov *fakeProv
	http *httptest.Server
	now  time.Time
	edit func(*Config)
}

func testConfig(dir string, prov Provisioner) Config {
	return Config{
		DataDir: dir, Regions: []Region{DefaultRegion("us-east-1", 0), DefaultRegion("us-west-2", 1)},
		Credentials: []Credential{testCred}, Provisioner: prov, AddressBase: 200,
	}
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	return newTestEnvWith(t, nil)
}

// newTestEnvWith is newTestEnv with the configuration changed by edit, and
// the API served by HTTPServer.
func newTestEnvWith(t *testing.T, edit func(*Config)) *testEnv {
	t.Helper()
	e := &testEnv{t: t, dir: t.TempDir(), prov: newFakeProv(), edit: edit}
	e.open()
	return e
}

func (e *testEnv) open() {
	cfg := testConfig(e.dir, e.prov)
	if e.edit != nil {
		e.edit(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.s = s
	e.http = httptest.NewUnstartedServer(s.Handler())
	e.http.Config = s.HTTPServer()
	e.http.Start()
	e.t.Cleanup(e.close)
}

func (e *testEnv) close() {
	if e.s == nil {
		return
	}
	e.http.Close()
	e.s.Close()
	e.s = nil
}

func (e *testEnv) reconcile() { e.s.reconcile(e.t.Context()) }

// apiError is an error answer.
type apiError struct {
	Status  int
	Type    string `json:"__type"`
	Message string `json:"message"`
}

func (a *apiError) Error() string { return fmt.Sprintf("%d %s: %s", a.Status, a.Type, a.Message) }

// call signs and sends one operation in region us-east-1.
func (e *testEnv) call(op string, in, out any) *apiError {
	return e.callIn("us-east-1", op, in, out)
}

func (e *testEnv) callIn(region, op string, in, out any) *apiError {
	e.t.Helper()
	body, err := json.Marshal(in)
	if err != nil {
		e.t.Fatal(err)
	}
	req := e.request(op, body)
	SignRequest(req, body, testCred, region, e.s.now()) // the server's clock, which a test may move
	return e.do(req, out)
}

func (e *testEnv) request(op string, body []byte) *http.Request {
	req, err := http.NewRequest(http.MethodPost, e.http.URL+"/", bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", TargetPrefix+op)
	return req
}

func (e *testEnv) do(req *http.Request, out any) *apiError {
	e.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		ae := &apiError{Status: resp.StatusCode}
		if err := json.Unmarshal(b, ae); err != nil {
			e.t.Fatalf("error answer %d is not JSON: %q", resp.StatusCode, b)
		}
		if ae.Type == "" || ae.Message == "" {
			e.t.Fatalf("error answer without __type or message: %s", b)
		}
		return ae
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("answer %q: %v", b, err)
		}
	}
	return nil
}

// must fails the test on an error answer.
func (e *testEnv) must(op string, in, out any) {
	e.t.Helper()
	if err := e.call(op, in, out); err != nil {
		e.t.Fatalf("%s: %v", op, err)
	}
}

// wantErr checks an error answer's __type.
func wantErr(t *testing.T, err *apiError, typ string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got success, want %s", typ)
	}
	if err.Type != typ {
		t.Fatalf("got %v, want %s", err, typ)
	}
}

func (e *testEnv) createCluster(subnets ...string) Cluster {
	e.t.Helper()
	if len(subnets) == 0 {
		subnets = []string{"subnet-0aaaaaaa", "subnet-0bbbbbbb"}
	}
	var out CreateClusterResponse
	e.must("CreateCluster", CreateClusterRequest{HsmType: "hsm1.medium", SubnetIds: subnets}, &out)
	return out.Cluster
}

func (e *testEnv) describe(id string) Cluster {
	e.t.Helper()
	var out DescribeClustersResponse
	e.must("DescribeClusters", DescribeClustersRequest{Filters: map[string][]string{"clusterIds": {id}}}, &out)
	if len(out.Clusters) != 1 {
		e.t.Fatalf("describe %s: %d clusters", id, len(out.Clusters))
	}
	return out.Clusters[0]
}

func (e *testEnv) createHsm(cluster, az string) Hsm {
	e.t.Helper()
	var out CreateHsmResponse
	e.must("CreateHsm", CreateHsmRequest{ClusterId: cluster, AvailabilityZone: az}, &out)
	return out.Hsm
}

// customerCA is a CA that signs CSRs as a customer would.
type customerCA struct {
	certPEM string
	sign    func(csr string) string
}

func newCustomerCA(t *testing.T) customerCA {
	t.Helper()
	cert, key, err := pki.NewCustomerCA("Test CA", time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return customerCA{
		certPEM: string(pki.EncodeCertificatesPEM(cert)),
		sign: func(csr string) string {
			signed, err := pki.SignCSR(cert, key, []byte(csr), time.Now().Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			return string(signed)
		},
	}
}

// initialized makes a cluster with HSMs in the given zones and takes it to
// INITIALIZED.
func (e *testEnv) initialized(azs ...string) Cluster {
	e.t.Helper()
	cl := e.createCluster()
	for _, az := range azs {
		e.createHsm(cl.ClusterId, az)
	}
	e.reconcile()
	cl = e.describe(cl.ClusterId)
	ca := newCustomerCA(e.t)
	e.must("InitializeCluster", InitializeClusterRequest{ClusterId: cl.ClusterId,
		SignedCert: ca.sign(cl.Certificates.ClusterCsr), TrustAnchor: ca.certPEM}, nil)
	e.reconcile()
	cl = e.describe(cl.ClusterId)
	if cl.State != ClusterInitialized {
		e.t.Fatalf("cluster %s after initialization", cl.State)
	}
	return cl
}
