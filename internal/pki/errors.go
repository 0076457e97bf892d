package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
)

// Reasons a certificate, CSR or PEM input is refused. Every refusal is an
// *Error whose Reason is one of these; compare with errors.Is.
var (
	// ErrNoPEM: the input holds no PEM block at all.
	ErrNoPEM = errors.New("no PEM data found")
	// ErrPEMType: a PEM block of another type than expected.
	ErrPEMType = errors.New("unexpected PEM block type")
	// ErrPEMEncrypted: an encrypted (Proc-Type: 4,ENCRYPTED) PEM block.
	ErrPEMEncrypted = errors.New("encrypted PEM is not supported")
	// ErrPEMCount: the wrong number of blocks (e.g. two trust anchors).
	ErrPEMCount = errors.New("wrong number of PEM blocks")
	// ErrMalformedCertificate: a CERTIFICATE block that is not X.509 DER.
	ErrMalformedCertificate = errors.New("malformed X.509 certificate")
	// ErrMalformedCSR: a CERTIFICATE REQUEST block that is not PKCS#10 DER.
	ErrMalformedCSR = errors.New("malformed certificate signing request")
	// ErrCSRSignature: the CSR's self-signature does not verify.
	ErrCSRSignature = errors.New("certificate signing request signature is invalid")
	// ErrMalformedKey: a private key block that cannot be parsed or used.
	ErrMalformedKey = errors.New("malformed private key")
	// ErrInvalidID: a cluster or HSM id unusable in a certificate.
	ErrInvalidID = errors.New("invalid cluster or HSM id")
	// ErrKeyMismatch: the certificate's public key is not the expected one.
	ErrKeyMismatch = errors.New("certificate public key does not match the cluster CSR")
	// ErrWrongKey: a certificate given with a private key that is not its own.
	ErrWrongKey = errors.New("certificate is not for the given private key")
	// ErrSubjectMismatch: the cluster certificate does not name the cluster.
	ErrSubjectMismatch = errors.New("certificate subject does not name the cluster")
	// ErrNotChained: the cluster certificate does not chain to the trust anchor.
	ErrNotChained = errors.New("certificate does not chain to the trust anchor")
	// ErrAnchorNotCA: the trust anchor cannot issue certificates.
	ErrAnchorNotCA = errors.New("trust anchor is not a CA certificate")
	// ErrNoPeerCertificate: the peer sent no certificate.
	ErrNoPeerCertificate = errors.New("peer sent no certificate")
	// ErrNoClusterCertificate: the peer sent its node certificate without the
	// cluster certificate, and none is pinned.
	ErrNoClusterCertificate = errors.New("peer sent no cluster certificate")
	// ErrNotIssued: the node certificate is not signed by the cluster key.
	ErrNotIssued = errors.New("node certificate is not issued by the cluster certificate")
	// ErrWeakSignature: a signature algorithm weaker than SHA-256.
	ErrWeakSignature = errors.New("certificate signature algorithm is not allowed")
	// ErrExpired: the certificate is expired or not yet valid.
	ErrExpired = errors.New("certificate is expired or not yet valid")
	// ErrExtKeyUsage: the node certificate lacks the extended key usage.
	ErrExtKeyUsage = errors.New("certificate is not valid for this use")
	// ErrNodeIsCA: a node certificate that claims to be a CA.
	ErrNodeIsCA = errors.New("node certificate must not be a CA")
	// ErrCriticalExtension: an unhandled critical extension.
	ErrCriticalExtension = errors.New("certificate has an unhandled critical extension")
	// ErrNoNodeIdentity: no single well-formed coffer:// URI SAN.
	ErrNoNodeIdentity = errors.New("certificate has no coffer node identity")
	// ErrWrongCluster: the certificate belongs to another cluster.
	ErrWrongCluster = errors.New("certificate belongs to another cluster")
	// ErrHostname: the certificate is not valid for the address dialled.
	ErrHostname = errors.New("certificate is not valid for the server address")
	// ErrConfig: a caller passed an unusable argument (nil key, no anchor...).
	ErrConfig = errors.New("invalid pki argument")
)

// Error is a refusal. Reason is one of the Err* values above; What names
// the input refused ("cluster certificate", "trust anchor", "peer node
// certificate"...); Subject is that certificate's subject when one was
// parsed; Err is the underlying cause, if any (an x509 error, say), and is
// reachable with errors.As.
type Error struct {
	Reason  error
	What    string
	Subject string
	Err     error
}

func (e *Error) Error() string {
	s := e.Reason.Error()
	if e.What != "" {
		s = e.What + ": " + s
	}
	if e.Subject != "" {
		s += fmt.Sprintf(" (subject %q)", e.Subject)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap gives both the reason and the cause to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Reason}
	}
	return []error{e.Reason, e.Err}
}

// refuse builds an *Error; cert may be nil, cause may be nil.
func refuse(reason error, what string, cert *x509.Certificate, cause error) *Error {
	e := &Error{Reason: reason, What: what, Err: cause}
	if cert != nil {
		e.Subject = cert.Subject.String()
	}
	return e
}

// refusef builds an *Error whose cause is a formatted message.
func refusef(reason error, what string, cert *x509.Certificate, format string, args ...any) *Error {
	return refuse(reason, what, cert, fmt.Errorf(format, args...))
}
