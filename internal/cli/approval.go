package cli

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/coffer-hsm/coffer/internal/client"
)

// TokenVersion marks a quorum token file.
const TokenVersion = "coffer-quorum-token-1"

// Quorum services as the CLI names them (--service), and as the HSM does.
const (
	ServiceUser         = "user"         // user-management: create and delete users, change another's password
	ServiceQuorum       = "quorum"       // quorum-management: set quorum values
	ServiceRegistration = "registration" // a local token proving possession of a quorum key
)

// HSMService is the HSM's name for a quorum service.
func HSMService(service string) (string, error) {
	switch service {
	case ServiceUser:
		return "user-management", nil
	case ServiceQuorum:
		return "quorum-management", nil
	}
	return "", Usagef("--service %q: want user or quorum", service)
}

// CLIService is the CLI's name for the HSM's quorum service.
func CLIService(hsm string) string {
	switch hsm {
	case "user-management":
		return ServiceUser
	case "quorum-management":
		return ServiceQuorum
	}
	return hsm
}

// TokenFile is a quorum token as `quorum token-sign generate` writes it.
// Approvers sign Data (SHA-256, then RSA PKCS #1 v1.5 or ECDSA in ASN.1 DER:
// `openssl dgst -sha256 -sign KEY.pem` does exactly that) with the key they
// registered, and add their signature to Approvals, with `quorum token-sign
// approve`. The file is then passed to the operation with --approval.
type TokenFile struct {
	Version   string     `json:"version"`
	Service   string     `json:"service"`
	Token     string     `json:"token"`
	Issuer    string     `json:"issuer,omitempty"`
	Expires   time.Time  `json:"expires"`
	Data      []byte     `json:"data"`
	Approvals []Approval `json:"approvals"`
}

// Approval is one approver's signature of a token's Data.
type Approval struct {
	Username  string `json:"username"`
	Signature []byte `json:"signature"`
}

// ReadTokenFile reads a quorum token file.
func ReadTokenFile(path string) (*TokenFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, Failf("quorum token: %w", err)
	}
	var t TokenFile
	if err := json.Unmarshal(b, &t); err != nil || t.Version != TokenVersion {
		return nil, Usagef("%s is not a quorum token file (from `quorum token-sign generate`)", path)
	}
	return &t, nil
}

// Write writes the token file.
func (t *TokenFile) Write(path string) error {
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return Failf("%w", err)
	}
	return WriteFile(path, append(b, '\n'), 0o644, false)
}

// Approve adds username's signature, replacing an earlier one of the same
// user.
func (t *TokenFile) Approve(username string, sig []byte) {
	for i, a := range t.Approvals {
		if a.Username == username {
			t.Approvals[i].Signature = sig
			return
		}
	}
	t.Approvals = append(t.Approvals, Approval{Username: username, Signature: sig})
}

// LoadApprovals reads --approval FILE into what the client sends; no file
// means no approvals.
func LoadApprovals(path string) (*client.Approvals, error) {
	if path == "" {
		return nil, nil
	}
	t, err := ReadTokenFile(path)
	if err != nil {
		return nil, err
	}
	if t.Service == ServiceRegistration {
		return nil, Usagef("%s is a registration token: approvals need a token of service user or quorum", path)
	}
	a := &client.Approvals{Token: t.Token}
	for _, s := range t.Approvals {
		a.Signatures = append(a.Signatures, client.Approval{Username: s.Username, Signature: s.Signature})
	}
	return a, nil
}

// NewRegistrationToken makes a local token for an admin to sign with the key
// it registers, proving it holds the private key.
func NewRegistrationToken(now time.Time) (*TokenFile, error) {
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		return nil, Failf("%w", err)
	}
	data := append([]byte("coffer quorum key registration v1\x00"), nonce...)
	return &TokenFile{Version: TokenVersion, Service: ServiceRegistration, Token: fmt.Sprintf("%x", nonce[:8]),
		Expires: now.Add(10 * time.Minute).UTC(), Data: data, Approvals: []Approval{}}, nil
}

// SignToken signs data as approvals are signed.
func SignToken(key crypto.Signer, data []byte) ([]byte, error) {
	digest := sha256.Sum256(data)
	switch key.(type) {
	case *rsa.PrivateKey, *ecdsa.PrivateKey:
	default:
		return nil, errors.New("quorum keys are RSA or ECDSA")
	}
	return key.Sign(rand.Reader, digest[:], crypto.SHA256)
}

// VerifyToken checks an approval signature under pub.
func VerifyToken(pub crypto.PublicKey, data, sig []byte) error {
	digest := sha256.Sum256(data)
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, digest[:], sig)
	case *ecdsa.PublicKey:
		if ecdsa.VerifyASN1(k, digest[:], sig) {
			return nil
		}
		return errors.New("ECDSA signature does not verify")
	}
	return errors.New("quorum keys are RSA or ECDSA")
}
