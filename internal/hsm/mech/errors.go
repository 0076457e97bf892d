package mech

import (
	"errors"
	"fmt"
)

// Sentinel errors. The device maps each to one PKCS #11 return code; every
// error returned by this package wraps one of them (compare with errors.Is).
// Two are refinements that also match a broader one: ErrAuthFailed is an
// ErrEncryptedDataInvalid and ErrSignatureLen an ErrSignatureInvalid, so test
// for the narrow one first.
var (
	// ErrDataLen: the input length is not valid for the mechanism (not a
	// block multiple, too long for the RSA modulus, CTR counter would wrap,
	// digest of the wrong size, ...). For decryption the device reports it as
	// an encrypted-data length error.
	ErrDataLen = errors.New("mech: data length invalid for mechanism")

	// ErrEncryptedDataInvalid: decryption failed (bad padding, bad RSA
	// encoding). Decryption errors never say more than this.
	ErrEncryptedDataInvalid = errors.New("mech: encrypted data invalid")

	// ErrAuthFailed: an integrity check failed (GCM tag, key wrap check
	// value). It wraps ErrEncryptedDataInvalid, so a caller that does not
	// care about the difference can test for that alone.
	ErrAuthFailed = fmt.Errorf("mech: authentication failed: %w", ErrEncryptedDataInvalid)

	// ErrSignatureInvalid: a signature or MAC did not verify.
	ErrSignatureInvalid = errors.New("mech: signature invalid")

	// ErrSignatureLen: the signature or MAC has the wrong length for the
	// key or mechanism. It wraps ErrSignatureInvalid.
	ErrSignatureLen = fmt.Errorf("mech: signature length invalid: %w", ErrSignatureInvalid)

	// ErrParam: a mechanism parameter is invalid or unsupported (IV length,
	// tag length, counter bits, hash, salt length, EC point, ...).
	ErrParam = errors.New("mech: invalid mechanism parameter")

	// ErrKeySize: the key has a size the mechanism does not support.
	ErrKeySize = errors.New("mech: unsupported key size")

	// ErrKeyType: the key is of a type this package does not support.
	ErrKeyType = errors.New("mech: unsupported key type")

	// ErrCurve: the elliptic curve is not P-256, P-384 or P-521.
	ErrCurve = errors.New("mech: unsupported curve")

	// ErrEncoding: a key, point, OID or signature encoding is malformed.
	ErrEncoding = errors.New("mech: malformed encoding")

	// ErrDone: a Multipart operation was used after Final or after an error.
	ErrDone = errors.New("mech: operation already finished")

	// ErrSelfTest: a known-answer or pairwise consistency test failed; the
	// device must stop using the mechanism (and usually stop serving).
	ErrSelfTest = errors.New("mech: self-test failed")
)

// UnsupportedKeyError reports a key this package will not use, with the
// reason (one of ErrKeyType, ErrCurve, ErrKeySize, ErrParam) and what was
// found, e.g. {ErrKeySize, "RSA", "1024 bits"}.
type UnsupportedKeyError struct {
	Reason error  // ErrKeyType, ErrCurve, ErrKeySize or ErrParam
	Type   string // "RSA", "EC", "Ed25519" or the Go type of the key
	Detail string // what was wrong, e.g. "1024 bits", "P-224"
}

func (e *UnsupportedKeyError) Error() string {
	return fmt.Sprintf("%v: %s %s", e.Reason, e.Type, e.Detail)
}

// Unwrap returns the reason, so errors.Is(err, ErrKeySize) works.
func (e *UnsupportedKeyError) Unwrap() error { return e.Reason }
