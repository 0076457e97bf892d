package controlplane

import (
	"crypto/sha256"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestSigV4(t *testing.T) {
	e := newTestEnv(t)
	body := []byte(`{}`)
	now := time.Now()
	for _, c := range []struct {
		name  string
		sign  func(r *http.Request)
		want  string // "" for success
		inMsg string
	}{
		{"good", func(r *http.Request) { SignRequest(r, body, testCred, "us-east-1", now) }, "", ""},
		{"good in another region", func(r *http.Request) { SignRequest(r, body, testCred, "us-west-2", now) }, "", ""},
		{"missing", func(r *http.Request) {}, "MissingAuthenticationTokenException", "Missing Authentication Token"},
		{"wrong secret", func(r *http.Request) {
			SignRequest(r, body, Credential{AccessKeyID: testCred.AccessKeyID, SecretAccessKey: "another-secret-entirely"}, "us-east-1", now)
		}, "InvalidSignatureException", "does not match"},
		{"unknown key", func(r *http.Request) {
			SignRequest(r, body, Credential{AccessKeyID: "AKIAUNKNOWNUNKNOWN00", SecretAccessKey: testCred.SecretAccessKey}, "us-east-1", now)
		}, "UnrecognizedClientException", "security token"},
		{"expired", func(r *http.Request) { SignRequest(r, body, testCred, "us-east-1", now.Add(-20*time.Minute)) }, "InvalidSignatureException", "Signature expired"},
		{"from the future", func(r *http.Request) { SignRequest(r, body, testCred, "us-east-1", now.Add(20*time.Minute)) }, "InvalidSignatureException", "not yet current"},
		{"unserved region", func(r *http.Request) { SignRequest(r, body, testCred, "eu-west-1", now) }, "InvalidSignatureException", "valid region"},
		{"body changed after signing", func(r *http.Request) {
			SignRequest(r, []byte(`{"MaxResults":1}`), testCred, "us-east-1", now)
		}, "InvalidSignatureException", "does not match"},
		{"signed header changed", func(r *http.Request) {
			SignRequest(r, body, testCred, "us-east-1", now)
			r.Header.Set("X-Amz-Target", TargetPrefix+"DescribeBackups")
		}, "InvalidSignatureException", "does not match"},
		{"wrong service", func(r *http.Request) {
			SignRequest(r, body, testCred, "us-east-1", now)
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "/cloudhsm/", "/cloudhsmv2/", 1))
		}, "InvalidSignatureException", "correct service"},
		{"garbled header", func(r *http.Request) { r.Header.Set("Authorization", "AWS4-HMAC-SHA256 nonsense") }, "IncompleteSignatureException", "Credential"},
		{"other algorithm", func(r *http.Request) { r.Header.Set("Authorization", "Basic YWxhZGRpbjpvcGVuc2VzYW1l") }, "IncompleteSignatureException", "AWS4-HMAC-SHA256"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := e.request("DescribeClusters", body)
			c.sign(req)
			err := e.do(req, nil)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErr(t, err, c.want)
			if err.Status != http.StatusForbidden || !strings.Contains(err.Message, c.inMsg) {
				t.Fatalf("got %v, want status 403 and %q in the message", err, c.inMsg)
			}
		})
	}
}

// A known-answer test: the example of AWS's SigV4 documentation (the
// IAM ListUsers GET request) gives its published signature.
func TestSigV4KnownAnswer(t *testing.T) {
	r, err := http.NewRequest(http.MethodGet, "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	r.Header.Set("X-Amz-Date", "20150830T123600Z")
	a := authorization{accessKey: "AKIDEXAMPLE", date: "20150830", region: "us-east-1", service: "iam",
		signedHeaders: []string{"content-type", "host", "x-amz-date"}}
	sig := signature("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", a, "20150830T123600Z", canonicalRequest(r, a.signedHeaders, nil))
	const want = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
	if got := hexString(sig); got != want {
		t.Fatalf("signature %s, want %s", got, want)
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// The signature covers the body, the operation, the content type and the
// date: a request changed in any of them after signing is refused, however
// its unsigned headers are set.
func TestSigV4BindsRequest(t *testing.T) {
	e := newTestEnv(t)
	signed := []byte(`{"Filters":{"clusterIds":["cluster-aaaaaaaaaaa"]}}`)
	swapped := []byte(`{}`)
	now := time.Now()
	all := []string{"content-type", "host", "x-amz-date", "x-amz-target"}
	without := func(h string) []string {
		out := []string{}
		for _, s := range all {
			if s != h {
				out = append(out, s)
			}
		}
		return out
	}
	for _, c := range []struct {
		name  string
		body  []byte // what is sent
		build func(r *http.Request)
		want  string // "" for success
		inMsg string
	}{
		{"body swapped under the signed body's X-Amz-Content-Sha256", swapped, func(r *http.Request) {
			SignRequest(r, signed, testCred, "us-east-1", now)
			r.Header.Set("X-Amz-Content-Sha256", sha256Hex(signed))
		}, "InvalidSignatureException", "x-amz-content-sha256"},
		{"X-Amz-Content-Sha256 of another body, signed", swapped, func(r *http.Request) {
			r.Header.Set("X-Amz-Content-Sha256", sha256Hex(signed))
			r.Header.Set("X-Amz-Date", now.UTC().Format(amzDateFormat))
			signHeaders(r, signed, testCred, "us-east-1", now, append(all[:4:4], "x-amz-content-sha256"))
		}, "InvalidSignatureException", "x-amz-content-sha256"},
		{"X-Amz-Content-Sha256 of the body", swapped, func(r *http.Request) {
			SignRequest(r, swapped, testCred, "us-east-1", now)
			r.Header.Set("X-Amz-Content-Sha256", sha256Hex(swapped))
		}, "", ""},
		{"X-Amz-Content-Sha256 in upper case", swapped, func(r *http.Request) {
			SignRequest(r, swapped, testCred, "us-east-1", now)
			r.Header.Set("X-Amz-Content-Sha256", strings.ToUpper(sha256Hex(swapped)))
		}, "", ""},
		{"unsigned payload", swapped, func(r *http.Request) {
			SignRequest(r, swapped, testCred, "us-east-1", now)
			r.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
		}, "InvalidSignatureException", "x-amz-content-sha256"},
		{"host not signed", swapped, func(r *http.Request) {
			r.Header.Set("X-Amz-Date", now.UTC().Format(amzDateFormat))
			signHeaders(r, swapped, testCred, "us-east-1", now, without("host"))
		}, "InvalidSignatureException", "'Host' must be a 'SignedHeader'"},
		{"date not signed", swapped, func(r *http.Request) {
			r.Header.Set("X-Amz-Date", now.UTC().Format(amzDateFormat))
			signHeaders(r, swapped, testCred, "us-east-1", now, without("x-amz-date"))
		}, "InvalidSignatureException", "'X-Amz-Date' must be a 'SignedHeader'"},
		{"operation not signed, then changed", swapped, func(r *http.Request) {
			r.Header.Set("X-Amz-Date", now.UTC().Format(amzDateFormat))
			signHeaders(r, swapped, testCred, "us-east-1", now, without("x-amz-target"))
			r.Header.Set("X-Amz-Target", TargetPrefix+"DescribeBackups")
		}, "InvalidSignatureException", "'X-Amz-Target' must be a 'SignedHeader'"},
		{"content type not signed", swapped, func(r *http.Request) {
			r.Header.Set("X-Amz-Date", now.UTC().Format(amzDateFormat))
			signHeaders(r, swapped, testCred, "us-east-1", now, without("content-type"))
		}, "InvalidSignatureException", "'Content-Type' must be a 'SignedHeader'"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := e.request("DescribeClusters", c.body)
			c.build(req)
			err := e.do(req, nil)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErr(t, err, c.want)
			if err.Status != http.StatusForbidden || !strings.Contains(err.Message, c.inMsg) {
				t.Fatalf("got %v, want status 403 and %q in the message", err, c.inMsg)
			}
		})
	}
}

// A signed request that changes something is accepted once: the same
// request again, byte for byte, is refused and changes nothing. A read may
// be repeated (docs/design.md: Control plane).
func TestSigV4Replay(t *testing.T) {
	e := newTestEnv(t)
	send := func(op string, body []byte, header http.Header) *apiError {
		req := e.request(op, body)
		req.Header = header.Clone()
		return e.do(req, nil)
	}
	signed := func(op string, body []byte) http.Header {
		req := e.request(op, body)
		SignRequest(req, body, testCred, "us-east-1", time.Now())
		return req.Header
	}
	create := []byte(`{"HsmType":"hsm1.medium","SubnetIds":["subnet-0aaaaaaa"]}`)
	h := signed("CreateCluster", create)
	if err := send("CreateCluster", create, h); err != nil {
		t.Fatal(err)
	}
	err := send("CreateCluster", create, h)
	wantErr(t, err, "InvalidSignatureException")
	if err.Status != http.StatusForbidden || !strings.Contains(err.Message, "already been used") {
		t.Fatalf("replay: %v", err)
	}
	var out DescribeClustersResponse
	e.must("DescribeClusters", DescribeClustersRequest{}, &out)
	if len(out.Clusters) != 1 {
		t.Fatalf("%d clusters after a replayed CreateCluster, want 1", len(out.Clusters))
	}
	// The replay is refused before the operation looks at the state
	// (DeleteCluster again would say the cluster is being deleted), and a
	// request the operation refused is remembered too.
	id := out.Clusters[0].ClusterId
	for _, c := range []struct{ op, body, first string }{
		{"DeleteCluster", `{"ClusterId":"` + id + `"}`, ""},
		{"CreateHsm", `{"ClusterId":"` + id + `","AvailabilityZone":"us-east-1z"}`, "CloudHsmInvalidRequestException"},
	} {
		h := signed(c.op, []byte(c.body))
		if err := send(c.op, []byte(c.body), h); c.first == "" && err != nil || c.first != "" && (err == nil || err.Type != c.first) {
			t.Fatalf("%s: %v, want %q", c.op, err, c.first)
		}
		wantErr(t, send(c.op, []byte(c.body), h), "InvalidSignatureException")
	}
	describe := []byte(`{}`)
	h = signed("DescribeClusters", describe)
	for i := range 3 {
		if err := send("DescribeClusters", describe, h); err != nil {
			t.Fatalf("DescribeClusters, time %d: %v", i+1, err)
		}
	}
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hexString(sum[:])
}
