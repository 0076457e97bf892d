package mech

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"io"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// DER OBJECT IDENTIFIERs of the supported named curves, as found in
// CKA_EC_PARAMS (strings, so they cannot be modified).
const (
	oidP256 = "\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07" // 1.2.840.10045.3.1.7
	oidP384 = "\x06\x05\x2b\x81\x04\x00\x22"             // 1.3.132.0.34
	oidP521 = "\x06\x05\x2b\x81\x04\x00\x23"             // 1.3.132.0.35
)

// checkCurve accepts P-256, P-384 and P-521 (ErrCurve otherwise).
func checkCurve(c elliptic.Curve) error {
	switch c {
	case elliptic.P256(), elliptic.P384(), elliptic.P521():
		return nil
	}
	name := "unknown"
	if c != nil {
		name = c.Params().Name
	}
	return &UnsupportedKeyError{Reason: ErrCurve, Type: "EC", Detail: name}
}

// curveLen is the byte length of field elements and scalars of c.
func curveLen(c elliptic.Curve) int { return (c.Params().BitSize + 7) / 8 }

// CurveFromOID returns the curve named by a DER OBJECT IDENTIFIER
// (CKA_EC_PARAMS). Other curves, explicit parameters and other encodings give
// ErrCurve.
func CurveFromOID(der []byte) (elliptic.Curve, error) {
	switch string(der) {
	case oidP256:
		return elliptic.P256(), nil
	case oidP384:
		return elliptic.P384(), nil
	case oidP521:
		return elliptic.P521(), nil
	}
	return nil, &UnsupportedKeyError{Reason: ErrCurve, Type: "EC", Detail: fmt.Sprintf("parameters %x", der)}
}

// CurveOID returns the DER OBJECT IDENTIFIER of c (for CKA_EC_PARAMS).
func CurveOID(c elliptic.Curve) ([]byte, error) {
	switch c {
	case elliptic.P256():
		return []byte(oidP256), nil
	case elliptic.P384():
		return []byte(oidP384), nil
	case elliptic.P521():
		return []byte(oidP521), nil
	}
	return nil, checkCurve(c)
}

// GenerateEC generates an ECDSA key on P-256, P-384 or P-521 (ErrCurve
// otherwise) and checks it with a pairwise sign/verify test (ErrSelfTest).
func GenerateEC(random io.Reader, c elliptic.Curve) (*ecdsa.PrivateKey, error) {
	if err := checkCurve(c); err != nil {
		return nil, err
	}
	k, err := ecdsa.GenerateKey(c, orDefault(random))
	if err != nil {
		return nil, fmt.Errorf("mech: generate EC %s: %w: %w", c.Params().Name, ErrSelfTest, err)
	}
	d := pairwiseDigest()
	sig, err := ecdsa.SignASN1(rand.Reader, k, d[:])
	if err != nil || !ecdsa.VerifyASN1(&k.PublicKey, d[:], sig) {
		return nil, fmt.Errorf("mech: EC pairwise consistency test: %w", ErrSelfTest)
	}
	return k, nil
}

// ParseECPrivateScalar returns the private key on c with scalar d (CKA_VALUE:
// big-endian, leading zeros optional). A zero scalar, one not below the
// order, or one too long gives ErrEncoding.
func ParseECPrivateScalar(c elliptic.Curve, d []byte) (*ecdsa.PrivateKey, error) {
	if err := checkCurve(c); err != nil {
		return nil, err
	}
	n := curveLen(c)
	if len(d) > n {
		return nil, fmt.Errorf("%w: EC private value of %d bytes, want at most %d", ErrEncoding, len(d), n)
	}
	buf := make([]byte, n)
	copy(buf[n-len(d):], d)
	k, err := ecdsa.ParseRawPrivateKey(c, buf)
	clear(buf)
	if err != nil {
		return nil, fmt.Errorf("%w: EC private value: %w", ErrEncoding, err)
	}
	return k, nil
}

// SignECDSA signs digest (any length; truncated to the order's size as
// ECDSA requires) and returns the PKCS #11 signature r||s, each left-padded
// to the curve's byte length.
func SignECDSA(random io.Reader, priv *ecdsa.PrivateKey, digest []byte) ([]byte, error) {
	if err := checkCurve(priv.Curve); err != nil {
		return nil, err
	}
	der, err := ecdsa.SignASN1(orDefault(random), priv, digest)
	if err != nil {
		return nil, fmt.Errorf("mech: ECDSA sign: %w: %w", ErrParam, err)
	}
	return ECDSASigFromDER(priv.Curve, der)
}

// VerifyECDSA verifies the r||s signature sig over digest. As PKCS #11
// (v2.40 and v3.0, section 2.3.1) allows for a signature passed in for
// verification, r and s may be shorter than the curve's byte length, each
// then half of sig: an application that has only the integers r and s (Java's
// SunPKCS11 converting a DER signature) drops the leading zero bytes both
// have, about once in 65,536 P-256 signatures. A signature that is empty, of
// odd length or longer than twice the curve's byte length gives
// ErrSignatureLen, any other failure ErrSignatureInvalid.
func VerifyECDSA(pub *ecdsa.PublicKey, digest, sig []byte) error {
	if err := checkCurve(pub.Curve); err != nil {
		return err
	}
	n := curveLen(pub.Curve)
	if len(sig) == 0 || len(sig)%2 != 0 || len(sig) > 2*n {
		return fmt.Errorf("%w: ECDSA signature of %d bytes, want %d (or an even number below)", ErrSignatureLen, len(sig), 2*n)
	}
	half := len(sig) / 2
	var buf [2*(2+1+66) + 3]byte // SEQUENCE of two INTEGERs of up to 67 bytes
	der := appendECDSADER(buf[:0], sig[:half], sig[half:])
	if !ecdsa.VerifyASN1(pub, digest, der) {
		return ErrSignatureInvalid
	}
	return nil
}

// VerifyECDSAHash hashes msg with h and verifies sig over the digest.
func VerifyECDSAHash(pub *ecdsa.PublicKey, h crypto.Hash, msg, sig []byte) error {
	var buf [64]byte
	d, err := Digest(buf[:0], h, msg)
	if err != nil {
		return err
	}
	return VerifyECDSA(pub, d, sig)
}

func appendECDSADER(dst, r, s []byte) []byte {
	b := cryptobyte.NewBuilder(dst)
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		addASN1Unsigned(b, r)
		addASN1Unsigned(b, s)
	})
	return b.BytesOrPanic() // cannot fail: no error is ever set
}

// addASN1Unsigned adds the big-endian unsigned integer v as a minimal DER
// INTEGER.
func addASN1Unsigned(b *cryptobyte.Builder, v []byte) {
	for len(v) > 1 && v[0] == 0 {
		v = v[1:]
	}
	b.AddASN1(asn1.INTEGER, func(b *cryptobyte.Builder) {
		if len(v) == 0 || v[0]&0x80 != 0 {
			b.AddUint8(0)
		}
		b.AddBytes(v)
	})
}

// ECDSASigFromDER converts an ASN.1 DER ECDSA-Sig-Value to the PKCS #11 r||s
// form for c. Malformed DER (including non-minimal or negative integers and
// trailing data) and values longer than c's byte length give ErrEncoding.
func ECDSASigFromDER(c elliptic.Curve, der []byte) ([]byte, error) {
	if err := checkCurve(c); err != nil {
		return nil, err
	}
	n := curveLen(c)
	var (
		in    = cryptobyte.String(der)
		inner cryptobyte.String
		r, s  []byte
	)
	if !in.ReadASN1(&inner, asn1.SEQUENCE) || !in.Empty() ||
		!readASN1Unsigned(&inner, &r) || !readASN1Unsigned(&inner, &s) || !inner.Empty() {
		return nil, fmt.Errorf("%w: ECDSA DER signature", ErrEncoding)
	}
	if len(r) > n || len(s) > n {
		return nil, fmt.Errorf("%w: ECDSA signature values too long for %s", ErrEncoding, c.Params().Name)
	}
	out := make([]byte, 2*n)
	copy(out[n-len(r):n], r)
	copy(out[2*n-len(s):], s)
	return out, nil
}

// readASN1Unsigned reads a minimal, non-negative DER INTEGER and returns its
// magnitude without the sign byte.
func readASN1Unsigned(s *cryptobyte.String, out *[]byte) bool {
	var v cryptobyte.String
	if !s.ReadASN1(&v, asn1.INTEGER) || len(v) == 0 || v[0]&0x80 != 0 {
		return false
	}
	if len(v) > 1 && v[0] == 0 {
		if v[1]&0x80 == 0 {
			return false // non-minimal
		}
		v = v[1:]
	}
	*out = v
	return true
}

// MarshalECPoint returns pub as an uncompressed point (04||X||Y).
func MarshalECPoint(pub *ecdsa.PublicKey) ([]byte, error) {
	if err := checkCurve(pub.Curve); err != nil {
		return nil, err
	}
	p, err := pub.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: EC public key: %w", ErrEncoding, err)
	}
	return p, nil
}

// MarshalECPointDER returns pub as an uncompressed point wrapped in a DER
// OCTET STRING, the form of CKA_EC_POINT.
func MarshalECPointDER(pub *ecdsa.PublicKey) ([]byte, error) {
	p, err := MarshalECPoint(pub)
	if err != nil {
		return nil, err
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, len(p)+3))
	b.AddASN1OctetString(p)
	return b.BytesOrPanic(), nil
}

// ParseECPoint parses a public point on c, given either as an uncompressed
// point or as one wrapped in a DER OCTET STRING (the two cannot be confused:
// the lengths differ). Compressed points, points not on the curve and the
// point at infinity give ErrEncoding.
func ParseECPoint(c elliptic.Curve, b []byte) (*ecdsa.PublicKey, error) {
	raw, err := rawECPoint(c, b)
	if err != nil {
		return nil, err
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(c, raw)
	if err != nil {
		return nil, fmt.Errorf("%w: EC point: %w", ErrEncoding, err)
	}
	return pub, nil
}

// rawECPoint strips the OCTET STRING wrapping from b if it has one.
func rawECPoint(c elliptic.Curve, b []byte) ([]byte, error) {
	if err := checkCurve(c); err != nil {
		return nil, err
	}
	rawLen := 1 + 2*curveLen(c)
	if len(b) == rawLen {
		return b, nil
	}
	var (
		in  = cryptobyte.String(b)
		raw cryptobyte.String
	)
	if !in.ReadASN1(&raw, asn1.OCTET_STRING) || !in.Empty() || len(raw) != rawLen {
		return nil, fmt.Errorf("%w: EC point of %d bytes, want %d or its DER OCTET STRING", ErrEncoding, len(b), rawLen)
	}
	return raw, nil
}

// DeriveECDH returns the ECDH shared secret (the x-coordinate, CKD_NULL) of
// priv and the peer's public point, raw or DER-wrapped. A malformed point, one
// on another curve or not on the curve gives ErrParam.
func DeriveECDH(priv *ecdsa.PrivateKey, peer []byte) ([]byte, error) {
	if err := checkCurve(priv.Curve); err != nil {
		return nil, err
	}
	k, err := priv.ECDH()
	if err != nil {
		return nil, fmt.Errorf("%w: EC private key: %w", ErrKeyType, err)
	}
	raw, err := rawECPoint(priv.Curve, peer)
	if err != nil {
		return nil, fmt.Errorf("%w: peer point: %v", ErrParam, err)
	}
	pub, err := k.Curve().NewPublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: peer point: %w", ErrParam, err)
	}
	z, err := k.ECDH(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: ECDH: %w", ErrParam, err)
	}
	return z, nil
}
