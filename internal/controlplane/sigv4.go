package controlplane

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// SigV4 as the AWS CLI and SDKs sign a cloudhsmv2 request: the credential
// scope names the service "cloudhsm" (the model's signingName; the endpoint
// prefix is "cloudhsmv2"), the region is the scope's, and the request date
// may differ from the server's clock by at most MaxClockSkew.

const (
	sigAlgorithm = "AWS4-HMAC-SHA256"
	// SigningName is the service name of the credential scope.
	SigningName = "cloudhsm"
	// MaxClockSkew is how far a request's date may be from now.
	MaxClockSkew  = 15 * time.Minute
	amzDateFormat = "20060102T150405Z"
)

// authorization is a parsed Authorization header.
type authorization struct {
	accessKey, date, region, service string
	signedHeaders                    []string
	signature                        string
}

func parseAuthorization(h string) (authorization, error) {
	var a authorization
	alg, rest, ok := strings.Cut(h, " ")
	if !ok || alg != sigAlgorithm {
		return a, refuse(ErrIncompleteSig, "Authorization header requires the %s algorithm.", sigAlgorithm)
	}
	var cred, signed, sig string
	for _, part := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			cred = v
		case "SignedHeaders":
			signed = v
		case "Signature":
			sig = v
		}
	}
	if cred == "" || signed == "" || sig == "" {
		return a, refuse(ErrIncompleteSig, "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters. Authorization=%s", truncate(h, 200))
	}
	parts := strings.Split(cred, "/")
	if len(parts) != 5 || parts[4] != "aws4_request" {
		return a, refuse(ErrIncompleteSig, "Credential should be of the form <access key>/<date>/<region>/<service>/aws4_request, not %q.", truncate(cred, 200))
	}
	a.accessKey, a.date, a.region, a.service = parts[0], parts[1], parts[2], parts[3]
	a.signedHeaders = strings.Split(signed, ";")
	a.signature = sig
	return a, nil
}

// mustSign are the headers every request must sign: the host, the date (so
// the signature expires), the operation and how the body is read.
var mustSign = []string{"Host", "X-Amz-Date", "X-Amz-Target", "Content-Type"}

// verified is what a good signature establishes.
type verified struct {
	cred      Credential
	region    string // of the credential scope
	signature [sha256.Size]byte
}

// verifySigV4 checks r's signature over body and returns the access key,
// the region of its credential scope and the signature.
func (s *Server) verifySigV4(r *http.Request, body []byte) (verified, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return verified{}, refuse(ErrMissingAuth, "Missing Authentication Token")
	}
	a, err := parseAuthorization(h)
	if err != nil {
		return verified{}, err
	}
	cred, ok := s.credentials[a.accessKey]
	if !ok {
		return verified{}, refuse(ErrUnrecognizedKey, "The security token included in the request is invalid.")
	}
	if a.service != SigningName {
		return verified{}, refuse(ErrInvalidSignature, "Credential should be scoped to correct service: '%s'.", SigningName)
	}
	if _, ok := s.regions[a.region]; !ok {
		return verified{}, refuse(ErrInvalidSignature, "Credential should be scoped to a valid region, not '%s'.", truncate(a.region, 64))
	}
	amzDate := r.Header.Get("X-Amz-Date")
	if amzDate == "" {
		return verified{}, refuse(ErrIncompleteSig, "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
	}
	when, err := time.Parse(amzDateFormat, amzDate)
	if err != nil {
		return verified{}, refuse(ErrIncompleteSig, "X-Amz-Date %q is not of the form %s.", truncate(amzDate, 64), amzDateFormat)
	}
	if a.date != when.Format("20060102") {
		return verified{}, refuse(ErrInvalidSignature, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s'.", truncate(a.date, 16), when.Format("20060102"))
	}
	now := s.now().UTC()
	if when.Before(now.Add(-MaxClockSkew)) {
		return verified{}, refuse(ErrInvalidSignature, "Signature expired: %s is now earlier than %s (%s - 15 min.)",
			amzDate, now.Add(-MaxClockSkew).Format(amzDateFormat), now.Format(amzDateFormat))
	}
	if when.After(now.Add(MaxClockSkew)) {
		return verified{}, refuse(ErrInvalidSignature, "Signature not yet current: %s is still later than %s (%s + 15 min.)",
			amzDate, now.Add(MaxClockSkew).Format(amzDateFormat), now.Format(amzDateFormat))
	}
	for _, h := range mustSign {
		if !slices.Contains(a.signedHeaders, strings.ToLower(h)) {
			return verified{}, refuse(ErrInvalidSignature, "'%s' must be a 'SignedHeader' in the AWS Authorization.", h)
		}
	}
	// The payload hash is always the body's own: a client's
	// X-Amz-Content-Sha256 is only checked against it, never trusted.
	payload := sha256.Sum256(body)
	payloadHex := hex.EncodeToString(payload[:])
	for _, claimed := range r.Header.Values("X-Amz-Content-Sha256") {
		if !strings.EqualFold(strings.TrimSpace(claimed), payloadHex) {
			return verified{}, refuse(ErrInvalidSignature, "The provided 'x-amz-content-sha256' header does not match what was computed.")
		}
	}
	want := signature(cred.SecretAccessKey, a, amzDate, canonicalRequest(r, a.signedHeaders, body))
	got, err := hex.DecodeString(a.signature)
	if err != nil || subtle.ConstantTimeCompare(got, want) != 1 {
		return verified{}, refuse(ErrInvalidSignature, "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
	}
	v := verified{cred: cred, region: a.region}
	copy(v.signature[:], want)
	return v, nil
}

// canonicalRequest is SigV4's canonical form of r, whose body is body.
func canonicalRequest(r *http.Request, signed []string, body []byte) string {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	b.WriteString(path)
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(r.URL.Query()))
	b.WriteByte('\n')
	for _, h := range signed {
		b.WriteString(h)
		b.WriteByte(':')
		b.WriteString(headerValue(r, h))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(signed, ";"))
	b.WriteByte('\n')
	sum := sha256.Sum256(body)
	b.WriteString(hex.EncodeToString(sum[:]))
	return b.String()
}

func canonicalQuery(q url.Values) string {
	var parts []string
	for k, vs := range q {
		for _, v := range vs {
			parts = append(parts, awsEscape(k)+"="+awsEscape(v))
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, "&")
}

// awsEscape is RFC 3986 percent-encoding of everything but unreserved
// characters.
func awsEscape(s string) string {
	const hexd = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexd[c>>4])
		b.WriteByte(hexd[c&15])
	}
	return b.String()
}

// headerValue is a signed header's canonical value: the values joined with
// commas, each trimmed, inner runs of spaces collapsed.
func headerValue(r *http.Request, name string) string {
	var vals []string
	if name == "host" {
		vals = []string{r.Host}
	} else {
		vals = r.Header.Values(name)
	}
	for i, v := range vals {
		vals[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(vals, ",")
}

func signature(secret string, a authorization, amzDate, canonical string) []byte {
	sum := sha256.Sum256([]byte(canonical))
	scope := a.date + "/" + a.region + "/" + a.service + "/aws4_request"
	toSign := sigAlgorithm + "\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
	k := hmacSHA256([]byte("AWS4"+secret), a.date)
	k = hmacSHA256(k, a.region)
	k = hmacSHA256(k, a.service)
	k = hmacSHA256(k, "aws4_request")
	return hmacSHA256(k, toSign)
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// SignRequest signs r (whose body is body) as an SDK would, for tests and
// for Coffer's own tools: service "cloudhsm", the given region, at now. It
// also signs a random Amz-Sdk-Invocation-Id (the SDKs send one unsigned),
// so that two identical calls in one second are two requests, not a replay.
func SignRequest(r *http.Request, body []byte, cred Credential, region string, now time.Time) {
	amzDate := now.UTC().Format(amzDateFormat)
	r.Header.Set("X-Amz-Date", amzDate)
	r.Header.Set("Amz-Sdk-Invocation-Id", rand.Text())
	if r.Host == "" {
		r.Host = r.URL.Host
	}
	signed := []string{"amz-sdk-invocation-id", "host", "x-amz-date"}
	for _, h := range []string{"Content-Type", "X-Amz-Target"} {
		if r.Header.Get(h) != "" {
			signed = append(signed, strings.ToLower(h))
		}
	}
	slices.Sort(signed)
	signHeaders(r, body, cred, region, now, signed)
}

// signHeaders signs r over the headers named in signed (lower case,
// sorted), X-Amz-Date already set.
func signHeaders(r *http.Request, body []byte, cred Credential, region string, now time.Time, signed []string) {
	amzDate := r.Header.Get("X-Amz-Date")
	a := authorization{accessKey: cred.AccessKeyID, date: now.UTC().Format("20060102"), region: region,
		service: SigningName, signedHeaders: signed}
	sig := signature(cred.SecretAccessKey, a, amzDate, canonicalRequest(r, signed, body))
	r.Header.Set("Authorization", sigAlgorithm+" Credential="+cred.AccessKeyID+"/"+a.date+"/"+region+"/"+SigningName+
		"/aws4_request, SignedHeaders="+strings.Join(signed, ";")+", Signature="+hex.EncodeToString(sig))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
