package controlplane

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/pki"
)

// FuzzOperations feeds arbitrary bodies to every operation: each answers
// or refuses, never panics, and a refusal is always a typed *Error.
func FuzzOperations(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"HsmType":"hsm1.medium","SubnetIds":["subnet-0aaaaaaa"]}`, `{"Filters":{"clusterIds":["cluster-aaaaaaaaaaa"]}}`,
		`{"MaxResults":0}`, `{"NextToken":"Y29mZmVyMTp4"}`, `{"ClusterId":"cluster-aaaaaaaaaaa","AvailabilityZone":"us-east-1a","IpAddress":"127.0.0.11"}`,
		`{"ResourceId":"cluster-aaaaaaaaaaa","TagList":[{"Key":"a","Value":"b"}]}`, `{"BackupId":"backup-aaaaaaaaaaa","NeverExpires":true}`,
		`{"ResourceArn":"arn:aws:cloudhsm:us-east-1:123456789012:backup/backup-aaaaaaaaaaa","Policy":"{}"}`, `null`, `[]`, `"x"`,
	} {
		f.Add(seed)
	}
	s, err := New(testConfig(f.TempDir(), newFakeProv()))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	ops := make([]string, 0, len(operations))
	for name := range operations {
		ops = append(ops, name)
	}
	slices.Sort(ops)
	f.Fuzz(func(t *testing.T, body string) {
		for _, name := range ops {
			c := &call{ctx: context.Background(), region: s.regions["us-east-1"], account: testCred.AccountID}
			out, err := operations[name].run(s, c, []byte(body))
			if err != nil {
				if _, _, _, internal := wireError(err); internal {
					t.Fatalf("%s(%q): untyped error %v", name, body, err)
				}
				continue
			}
			if _, err := json.Marshal(out); err != nil {
				t.Fatalf("%s(%q): answer does not encode: %v", name, body, err)
			}
		}
	})
}

// FuzzTimestamp: a timestamp that decodes encodes to the same instant (to
// the millisecond).
func FuzzTimestamp(f *testing.F) {
	for _, s := range []string{"0", "1700000000.123", "-1", "1e10", "1.5e9", "99999999999.999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var ts Timestamp
		if err := json.Unmarshal([]byte(in), &ts); err != nil {
			return
		}
		b, err := json.Marshal(ts)
		if err != nil {
			t.Fatal(err)
		}
		var back Timestamp
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s re-encoded as %s: %v", in, b, err)
		}
		if d := time.Time(back).Sub(time.Time(ts)); d > time.Millisecond || d < -time.Millisecond {
			t.Fatalf("%s → %s: off by %s", in, b, d)
		}
	})
}

// fuzzClock is a server clock that a fuzz target moves on by hand.
type fuzzClock struct{ ns atomic.Int64 }

func (c *fuzzClock) now() time.Time { return time.Unix(0, c.ns.Load()).UTC() }

// fuzzServer is a Server whose clock is c, for a fuzz target.
func fuzzServer(f *testing.F, c *fuzzClock) *Server {
	c.ns.Store(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC).UnixNano())
	cfg := testConfig(f.TempDir(), newFakeProv())
	cfg.Now = c.now
	s, err := New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	return s
}

// checkAWSAnswer fails unless rec is an AWS JSON 1.1 answer: a JSON object
// with 200, or an error of the one error table, its __type in the body and
// the X-Amzn-Errortype header, with a message, never an internal failure.
func checkAWSAnswer(t *testing.T, what string, rec *httptest.ResponseRecorder) {
	t.Helper()
	body := rec.Body.Bytes()
	if ct := rec.Header().Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		t.Fatalf("%s: %d with Content-Type %q: %q", what, rec.Code, ct, body)
	}
	if rec.Code == http.StatusOK {
		var out map[string]any
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("%s: answer is not a JSON object: %q", what, body)
		}
		return
	}
	var e struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Type == "" || e.Message == "" {
		t.Fatalf("%s: error answer %d is not an AWS error: %q", what, rec.Code, body)
	}
	if e.Type == "CloudHsmInternalFailureException" {
		t.Fatalf("%s: internal failure: %s", what, e.Message)
	}
	if h := rec.Header().Get("X-Amzn-Errortype"); h != e.Type {
		t.Fatalf("%s: X-Amzn-Errortype %q, __type %q", what, h, e.Type)
	}
	if !slices.ContainsFunc(wireErrors, func(w struct {
		kind   error
		typ    string
		status int
	}) bool {
		return w.typ == e.Type && w.status == rec.Code
	}) {
		t.Fatalf("%s: %d %s is not in the error table", what, rec.Code, e.Type)
	}
}

// FuzzAPIRequest sends arbitrary bodies, signed, to any operation through
// the HTTP handler: every answer has an AWS shape, and nothing panics.
func FuzzAPIRequest(f *testing.F) {
	for _, seed := range []struct{ op, body string }{
		{"DescribeClusters", `{}`}, {"CreateCluster", `{"HsmType":"hsm1.medium","SubnetIds":["subnet-0aaaaaaa"]}`},
		{"InitializeCluster", `{"ClusterId":"cluster-aaaaaaaaaaa","SignedCert":"x","TrustAnchor":"y"}`},
		{"TagResource", `{"ResourceId":"cluster-aaaaaaaaaaa","TagList":[{"Key":"a","Value":"b"}]}`},
		{"DescribeBackups", `{"Filters":{"states":["READY"]},"MaxResults":1,"NextToken":"x"}`},
		{"LaunchRocket", `{}`}, {"DescribeClusters", `{"MaxResults":"ten"}`}, {"CreateHsm", "\xff\xfe"}, {"", ""},
	} {
		f.Add(seed.op, []byte(seed.body))
	}
	var clock fuzzClock
	s := fuzzServer(f, &clock)
	h := s.Handler()
	f.Fuzz(func(t *testing.T, op string, body []byte) {
		// A minute a request: the replay cache holds 30 at most.
		clock.ns.Add(int64(time.Minute))
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "http://127.0.0.1/", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		req.Header.Set("X-Amz-Target", TargetPrefix+op)
		SignRequest(req, body, testCred, "us-east-1", clock.now())
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		checkAWSAnswer(t, op, rec)
		if _, known := operations[op]; !known && rec.Code == http.StatusOK {
			t.Fatalf("unknown operation %q answered", op)
		}
	})
}

// FuzzSigV4Headers sends a signed DescribeClusters whose Authorization,
// X-Amz-Date, X-Amz-Target and X-Amz-Content-Sha256 the fuzzer changes:
// every answer has an AWS shape, and a request is accepted only when it
// says what was signed.
func FuzzSigV4Headers(f *testing.F) {
	var clock fuzzClock
	s := fuzzServer(f, &clock)
	h := s.Handler()
	body := []byte(`{"MaxResults":5}`)
	build := func(ctx context.Context) *http.Request {
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "http://127.0.0.1/", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		req.Header.Set("X-Amz-Target", TargetPrefix+"DescribeClusters")
		return req
	}
	legit := build(context.Background())
	SignRequest(legit, body, testCred, "us-east-1", clock.now())
	auth, date, target := legit.Header.Get("Authorization"), legit.Header.Get("X-Amz-Date"), legit.Header.Get("X-Amz-Target")
	signedAuth, err := parseAuthorization(auth)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][4]string{
		{auth, date, target, ""}, {auth, date, target, sha256Hex(body)}, {auth, date, target, "UNSIGNED-PAYLOAD"},
		{strings.Replace(auth, "SignedHeaders=", "SignedHeaders=content-type;", 1), date, target, ""},
		{strings.Replace(auth, "/us-east-1/", "/us-west-2/", 1), date, target, ""},
		{auth, "20260304T050608Z", target, ""}, {auth, date, TargetPrefix + "DeleteCluster", ""},
		{"AWS4-HMAC-SHA256 Credential=,SignedHeaders=,Signature=", "", "", ""}, {"", "", "", ""},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3])
	}
	f.Fuzz(func(t *testing.T, a, d, tg, sha string) {
		req := build(t.Context())
		req.Header.Set("Amz-Sdk-Invocation-Id", legit.Header.Get("Amz-Sdk-Invocation-Id"))
		for k, v := range map[string]string{"Authorization": a, "X-Amz-Date": d, "X-Amz-Target": tg, "X-Amz-Content-Sha256": sha} {
			if v != "" {
				req.Header.Set(k, v)
			} else {
				req.Header.Del(k)
			}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		checkAWSAnswer(t, "DescribeClusters", rec)
		if rec.Code != http.StatusOK {
			return
		}
		got, err := parseAuthorization(strings.TrimSpace(a))
		if err != nil || got.signature != signedAuth.signature || strings.TrimSpace(d) != date || strings.TrimSpace(tg) != target ||
			sha != "" && !strings.EqualFold(strings.TrimSpace(sha), sha256Hex(body)) {
			t.Fatalf("accepted a request other than the signed one: %q %q %q %q", a, d, tg, sha)
		}
	})
}

// FuzzInitializeCluster gives InitializeCluster arbitrary SignedCert and
// TrustAnchor PEM for a cluster that has its CSR: it accepts a good chain,
// refuses anything else as CloudHsmInvalidRequestException, never panics.
func FuzzInitializeCluster(f *testing.F) {
	var clock fuzzClock
	s := fuzzServer(f, &clock)
	s.cfg.Now = time.Now // the certificates are made now
	c := &call{ctx: context.Background(), region: s.regions["us-east-1"], account: testCred.AccountID}
	out, err := operations["CreateCluster"].run(s, c, []byte(`{"HsmType":"hsm1.medium","SubnetIds":["subnet-0aaaaaaa"]}`))
	if err != nil {
		f.Fatal(err)
	}
	id := out.(CreateClusterResponse).Cluster.ClusterId
	if _, err := operations["CreateHsm"].run(s, c, []byte(`{"ClusterId":"`+id+`","AvailabilityZone":"us-east-1a"}`)); err != nil {
		f.Fatal(err)
	}
	s.reconcile(context.Background())
	s.mu.Lock()
	csr := s.regions["us-east-1"].clusters[id].ClusterCsr
	s.mu.Unlock()
	if csr == "" {
		f.Fatal("no CSR after reconciling")
	}
	csrBlock, _ := pem.Decode([]byte(csr))
	parsedCSR, err := x509.ParseCertificateRequest(csrBlock.Bytes)
	if err != nil {
		f.Fatal(err)
	}
	csrKey := parsedCSR.PublicKey
	// EC CAs: RSA key generation is slow under the fuzzer's instrumentation.
	root, rootKey := fuzzCA(f, "Fuzz root CA", nil, nil)
	inter, interKey := fuzzCA(f, "Fuzz intermediate CA", root, rootKey)
	anchor := string(pki.EncodeCertificatesPEM(root))
	sign := func(ca *x509.Certificate, key crypto.Signer) string {
		b, err := pki.SignCSR(ca, key, []byte(csr), time.Now().Add(time.Hour))
		if err != nil {
			f.Fatal(err)
		}
		return string(b)
	}
	signed := sign(root, rootKey)
	viaInter := sign(inter, interKey) + string(pki.EncodeCertificatesPEM(inter))
	for _, seed := range [][2]string{
		{signed, anchor}, {viaInter, anchor}, {sign(inter, interKey), anchor}, {viaInter, string(pki.EncodeCertificatesPEM(inter))},
		{anchor, anchor}, {signed, signed}, {anchor, signed}, {signed + anchor, anchor},
		{signed, anchor + anchor}, {signed[:len(signed)/2], anchor}, {strings.Replace(signed, "CERTIFICATE", "PRIVATE KEY", 2), anchor},
		{signed, strings.Replace(anchor, "-----BEGIN CERTIFICATE-----\n", "-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n\n", 1)},
		{csr, anchor}, {"\xff" + signed, anchor}, {"", ""},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, signedCert, trustAnchor string) {
		body, err := json.Marshal(InitializeClusterRequest{ClusterId: id, SignedCert: signedCert, TrustAnchor: trustAnchor})
		if err != nil {
			t.Fatal(err)
		}
		_, err = operations["InitializeCluster"].run(s, c, body)
		if err != nil && signedCert == signed && trustAnchor == anchor {
			t.Fatalf("the good chain is refused: %v", err)
		}
		if err != nil {
			if status, typ, msg, internal := wireError(err); internal || typ != "CloudHsmInvalidRequestException" || status != http.StatusBadRequest || msg == "" {
				t.Fatalf("refusal %d %s %q (internal %v): %v", status, typ, msg, internal, err)
			}
			return
		}
		// Accepted: the certificate is the CSR's key's.
		if blk, _ := pem.Decode([]byte(signedCert)); blk == nil {
			t.Fatalf("accepted a SignedCert without PEM: %q", signedCert)
		} else if cert, err := x509.ParseCertificate(blk.Bytes); err != nil {
			t.Fatalf("accepted a SignedCert that does not parse: %v", err)
		} else if !cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(csrKey) {
			t.Fatalf("accepted a certificate for another key: %q", signedCert)
		}
		// Accepted: back to UNINITIALIZED for the next input.
		s.mu.Lock()
		defer s.mu.Unlock()
		cl := s.regions["us-east-1"].clusters[id]
		if cl.State != ClusterInitializeInProgress {
			t.Fatalf("state %s after InitializeCluster", cl.State)
		}
		cl.State, cl.ClusterCertificate, cl.TrustAnchor = ClusterUninitialized, "", ""
	})
}

// fuzzCA makes a P-256 CA certificate, self-signed when parent is nil.
func fuzzCA(f *testing.F, name string, parent *x509.Certificate, parentKey crypto.Signer) (*x509.Certificate, crypto.Signer) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true,
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		f.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		f.Fatal(err)
	}
	return cert, key
}
