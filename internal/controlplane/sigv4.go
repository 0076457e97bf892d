package controlplane

import (
	"crypto/hmac"
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

// verifySigV4 checks r's signature over body and returns the access key
// and region of its credential scope.
func (s *Server) verifySigV4(r *http.Request, body []byte) (Credential, string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return Credential{}, "", refuse(ErrMissingAuth, "Missing Authentication Token")
	}
	a, err := parseAuthorization(h)
	if err != nil {
		return Credential{}, "", err
	}
	cred, ok := s.credentials[a.accessKey]
	if !ok {
		return Credential{}, "", refuse(ErrUnrecognizedKey, "The security token included in the request is invalid.")
	}
	if a.service != SigningName {
		return Credential{}, "", refuse(ErrInvalidSignature, "Credential should be scoped to correct service: '%s'.", SigningName)
	}
	if _, ok := s.regions[a.region]; !ok {
		return Credential{}, "", refuse(ErrInvalidSignature, "Credential should be scoped to a valid region, not '%s'.", truncate(a.region, 64))
	}
	amzDate := r.Header.Get("X-Amz-Date")
	if amzDate == "" {
		return Credential{}, "", refuse(ErrIncompleteSig, "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
	}
	when, err := time.Parse(amzDateFormat, amzDate)
	if err != nil {
		return Credential{}, "", refuse(ErrIncompleteSig, "X-Amz-Date %q is not of the form %s.", truncate(amzDate, 64), amzDateFormat)
	}
	if a.date != when.Format("20060102") {
		return Credential{}, "", refuse(ErrInvalidSignature, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s'.", truncate(a.date, 16), when.Format("20060102"))
	}
	now := s.now().UTC()
	if when.Before(now.Add(-MaxClockSkew)) {
		return Credential{}, "", refuse(ErrInvalidSignature, "Signature expired: %s is now earlier than %s (%s - 15 min.)",
			amzDate, now.Add(-MaxClockSkew).Format(amzDateFormat), now.Format(amzDateFormat))
	}
	if when.After(now.Add(MaxClockSkew)) {
		return Credential{}, "", refuse(ErrInvalidSignature, "Signature not yet current: %s is still later than %s (%s + 15 min.)",
			amzDate, now.Add(MaxClockSkew).Format(amzDateFormat), now.Format(amzDateFormat))
	}
	if !slices.Contains(a.signedHeaders, "host") {
		return Credential{}, "", refuse(ErrInvalidSignature, "'Host' must be a 'SignedHeader' in the AWS Authorization.")
	}
	want := signature(cred.SecretAccessKey, a, amzDate, canonicalRequest(r, a.signedHeaders, body))
	got, err := hex.DecodeString(a.signature)
	if err != nil || subtle.ConstantTimeCompare(got, want) != 1 {
		return Credential{}, "", refuse(ErrInvalidSignature, "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
	}
	return cred, a.region, nil
}

// canonicalRequest is SigV4's canonical form of r.
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
	payload := r.Header.Get("X-Amz-Content-Sha256")
	if payload == "" {
		sum := sha256.Sum256(body)
		payload = hex.EncodeToString(sum[:])
	}
	b.WriteString(payload)
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
// for Coffer's own tools: service "cloudhsm", the given region, at now.
func SignRequest(r *http.Request, body []byte, cred Credential, region string, now time.Time) {
	amzDate := now.UTC().Format(amzDateFormat)
	r.Header.Set("X-Amz-Date", amzDate)
	if r.Host == "" {
		r.Host = r.URL.Host
	}
	signed := []string{"host", "x-amz-date"}
	for _, h := range []string{"Content-Type", "X-Amz-Target"} {
		if r.Header.Get(h) != "" {
			signed = append(signed, strings.ToLower(h))
		}
	}
	slices.Sort(signed)
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
