package controlplane

import (
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
