package hsm

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/mldsa"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"hash"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/hsm/mech"
)

// OpID names a multi-part operation within a session.
type OpID uint64

// operation is one cryptographic operation on one key: prepared once, fed
// data, finished. Streaming mechanisms keep a hash or cipher state; the rest
// (GCM, key wrap, raw RSA and ECDSA, EdDSA, OAEP) collect their input and do
// the work at the end, as PKCS#11 allows.
type operation struct {
	mu   sync.Mutex // held by Update and Finish: a session's callers may race
	fn   Function
	m    Mechanism
	key  *Object
	hash crypto.Hash     // hash-then-sign mechanisms and digests
	h    hash.Hash       // streaming digest or MAC
	mp   *mech.Multipart // streaming AES modes
	buf  []byte          // collected input of one-shot mechanisms
	pool *collectPool    // the device's
	held *collected      // buf's share of pool, from the first byte collected
	rand io.Reader       // the device's, for IVs the device generates

	// genIV: the device chooses the GCM IV (see gcmGeneratesIV); iv is the
	// one it chose, set by the encryption.
	genIV bool
	iv    []byte
	// digests are the device's pools of hash states; hPool, when set, is
	// the one h came from, which a single-part operation gives h back to
	// (hashpools.go).
	digests *hashPools
	hPool   *sync.Pool
}

// MaxCollectedInput is the most input one multi-part operation of a
// one-shot mechanism (GCM, key wrap, raw RSA and ECDSA, EdDSA, OAEP)
// collects before Final: 4 MiB, the largest message an HSM node accepts, so
// whatever one C_Encrypt may carry, C_EncryptUpdate may too. One byte more
// is CKR_DATA_LEN_RANGE and ends the operation.
const MaxCollectedInput = 4 << 20

// defaultCollectMax bounds what all operations of a device collect
// together (each session may run MaxSessionOperations, and a node serves
// thousands of sessions): beyond it an Update is CKR_DEVICE_MEMORY and ends
// its operation.
const defaultCollectMax = 256 << 20

// MaxSessionOperations is the most multi-part operations one session runs
// at once. One node session carries the operations of every PKCS#11
// session of an application's slot (each session has at most one per
// kind), so this is how many PKCS#11 sessions may be in a multi-part
// operation at once; one more C_*Init's first step is CKR_DEVICE_MEMORY.
const MaxSessionOperations = 4096

// defaultMaxOperations bounds the multi-part operations of all sessions of
// a device together (a node serves thousands of sessions, each of which
// may run MaxSessionOperations): each holds a prepared cipher, hash or key,
// so beyond it a Begin is CKR_DEVICE_MEMORY too.
const defaultMaxOperations = 1 << 16

// opCount counts the device's active multi-part operations. A session's
// operations are added and removed under its mu.
type opCount struct {
	n   atomic.Int64
	max int64 // 0: defaultMaxOperations
}

// take counts one more operation, if the device has room for it.
func (c *opCount) take() bool {
	limit := c.max
	if limit == 0 {
		limit = defaultMaxOperations
	}
	if c.n.Add(1) > limit {
		c.n.Add(-1)
		return false
	}
	return true
}

// dropOps forgets every operation of s (the input they collected goes back
// to the pool when they are garbage). The caller holds s.mu.
func (d *Device) dropOps(s *session) {
	d.ops.n.Add(-int64(len(s.ops)))
	clear(s.ops)
}

// collectPool counts the bytes the device's operations have collected.
type collectPool struct {
	used atomic.Int64
	max  int64 // 0: defaultCollectMax
}

// collected is one operation's share of the pool. It is apart from the
// operation so that a cleanup can give it back when an operation is dropped
// with its session without ending.
type collected struct {
	pool *collectPool
	n    atomic.Int64
}

func (c *collected) grow(n int) error {
	limit := c.pool.max
	if limit == 0 {
		limit = defaultCollectMax
	}
	if c.pool.used.Add(int64(n)) > limit {
		c.pool.used.Add(-int64(n))
		return ErrCollectMemory
	}
	c.n.Add(int64(n))
	return nil
}

func (c *collected) release() { c.pool.used.Add(-c.n.Swap(0)) }

// hashes maps the digest and hash-then-sign mechanisms to their hash.
var hashes = map[ck.MechanismType]crypto.Hash{
	ck.CKM_SHA_1: crypto.SHA1, ck.CKM_SHA224: crypto.SHA224, ck.CKM_SHA256: crypto.SHA256,
	ck.CKM_SHA384: crypto.SHA384, ck.CKM_SHA512: crypto.SHA512,

	ck.CKM_SHA_1_HMAC: crypto.SHA1, ck.CKM_SHA224_HMAC: crypto.SHA224, ck.CKM_SHA256_HMAC: crypto.SHA256,
	ck.CKM_SHA384_HMAC: crypto.SHA384, ck.CKM_SHA512_HMAC: crypto.SHA512,
	ck.CKM_SHA_1_HMAC_GENERAL: crypto.SHA1, ck.CKM_SHA224_HMAC_GENERAL: crypto.SHA224,
	ck.CKM_SHA256_HMAC_GENERAL: crypto.SHA256, ck.CKM_SHA384_HMAC_GENERAL: crypto.SHA384,
	ck.CKM_SHA512_HMAC_GENERAL: crypto.SHA512,

	ck.CKM_SHA1_RSA_PKCS: crypto.SHA1, ck.CKM_SHA224_RSA_PKCS: crypto.SHA224,
	ck.CKM_SHA256_RSA_PKCS: crypto.SHA256, ck.CKM_SHA384_RSA_PKCS: crypto.SHA384,
	ck.CKM_SHA512_RSA_PKCS:   crypto.SHA512,
	ck.CKM_SHA1_RSA_PKCS_PSS: crypto.SHA1, ck.CKM_SHA224_RSA_PKCS_PSS: crypto.SHA224,
	ck.CKM_SHA256_RSA_PKCS_PSS: crypto.SHA256, ck.CKM_SHA384_RSA_PKCS_PSS: crypto.SHA384,
	ck.CKM_SHA512_RSA_PKCS_PSS: crypto.SHA512,
	ck.CKM_ECDSA_SHA1:          crypto.SHA1, ck.CKM_ECDSA_SHA224: crypto.SHA224,
	ck.CKM_ECDSA_SHA256: crypto.SHA256, ck.CKM_ECDSA_SHA384: crypto.SHA384,
	ck.CKM_ECDSA_SHA512: crypto.SHA512,
}

// aesModes are the streaming AES modes' mech modes (operation.start).
var aesModes = map[ck.MechanismType]mech.Mode{
	ck.CKM_AES_ECB: mech.ModeECB, ck.CKM_AES_CBC: mech.ModeCBC,
	ck.CKM_AES_CBC_PAD: mech.ModeCBCPad, ck.CKM_AES_CTR: mech.ModeCTR,
}

var mgfs = map[ck.MGF]crypto.Hash{
	ck.CKG_MGF1_SHA1: crypto.SHA1, ck.CKG_MGF1_SHA224: crypto.SHA224, ck.CKG_MGF1_SHA256: crypto.SHA256,
	ck.CKG_MGF1_SHA384: crypto.SHA384, ck.CKG_MGF1_SHA512: crypto.SHA512,
}

// paramHash reads the hashAlg/mgf pair of PSS and OAEP parameters.
func paramHash(m Mechanism) (h, mgf crypto.Hash, err error) {
	h, ok1 := hashes[m.Hash]
	mgf, ok2 := mgfs[m.MGF]
	if !ok1 || !ok2 || m.Hash > ck.CKM_SHA512 {
		return 0, 0, fmt.Errorf("%w: hash %v, MGF %d", ErrMechanismParamInvalid, m.Hash, m.MGF)
	}
	return h, mgf, nil
}

// fnAttr is the key attribute that permits a function.
func fnAttr(fn Function) (flag, ck.AttributeType) {
	switch fn {
	case FnEncrypt:
		return fEncrypt, ck.CKA_ENCRYPT
	case FnDecrypt:
		return fDecrypt, ck.CKA_DECRYPT
	case FnSign:
		return fSign, ck.CKA_SIGN
	case FnVerify:
		return fVerify, ck.CKA_VERIFY
	case FnWrap:
		return fWrap, ck.CKA_WRAP
	case FnUnwrap:
		return fUnwrap, ck.CKA_UNWRAP
	case FnDerive:
		return fDerive, ck.CKA_DERIVE
	case FnEncapsulate:
		return fEncapsulate, ck.CKA_ENCAPSULATE
	case FnDecapsulate:
		return fDecapsulate, ck.CKA_DECAPSULATE
	}
	return 0, 0
}

// prepare checks that key may do fn with m for p and sets up the operation.
func (d *Device) prepare(op string, p *principal, fn Function, key *Object, m Mechanism) (*operation, error) {
	return d.prepareIn(new(operation), op, p, fn, key, m)
}

// prepareIn is prepare with the operation's memory given (o, zero).
func (d *Device) prepareIn(o *operation, op string, p *principal, fn Function, key *Object, m Mechanism) (*operation, error) {
	info, err := d.mechanismFor(op, m.Type, fn)
	if err != nil {
		return nil, err
	}
	o.fn, o.m, o.key, o.pool, o.rand, o.digests = fn, m, key, &d.collect, d.cfg.Rand, &d.digests
	if fn == FnDigest {
		o.hash = hashes[m.Type]
		h, err := mech.NewDigest(o.hash)
		if err != nil {
			return nil, opErr(op, ErrMechanismInvalid, "%v", m.Type)
		}
		o.h = h
		return o, nil
	}
	if key == nil || !key.isKey() {
		return nil, opErr(op, ErrKeyHandleInvalid, "")
	}
	if !info.takes(key.class, key.keyType, fn) {
		return nil, opErr(op, ErrKeyTypeInconsistent, "%v cannot use this key", m.Type)
	}
	if err := d.mayUse(p, fn, key, m.Type); err != nil {
		return nil, &Error{Op: op, Err: err}
	}
	if err := o.start(); err != nil {
		return nil, &Error{Op: op, Err: err}
	}
	return o, nil
}

// start sets up streaming state and checks parameters that can be checked
// before any data arrives.
func (o *operation) start() error {
	k, m := o.key.key, o.m
	var err error
	switch m.Type {
	case ck.CKM_AES_ECB, ck.CKM_AES_CBC, ck.CKM_AES_CBC_PAD, ck.CKM_AES_CTR:
		dir := mech.Encrypt
		if o.fn == FnDecrypt {
			dir = mech.Decrypt
		}
		o.mp, err = mech.NewMultipart(k.block, aesModes[m.Type], dir, m.IV, int(m.CounterBits))
	case ck.CKM_AES_CMAC, ck.CKM_AES_CMAC_GENERAL:
		o.h, err = mech.NewCMAC(k.block)
	case ck.CKM_AES_GCM, ck.CKM_CLOUDHSM_AES_GCM:
		if m.TagBits%8 != 0 {
			err = mech.ErrParam
		}
		o.genIV, err = gcmGeneratesIV(m, o.fn, err)
	case ck.CKM_RSA_PKCS_PSS, ck.CKM_RSA_PKCS_OAEP:
		_, _, err = paramHash(m)
	case ck.CKM_ML_DSA:
		err = checkSignContext(m)
	case ck.CKM_RSA_AES_KEY_WRAP:
		_, err = rsaAESParams(m)
	case ck.CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD, ck.CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD:
		err = mech.CheckDefaultKWIV(m.IV)
	case ck.CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD:
		if len(m.IV) != 0 { // CloudHSM: the IV is computed by RFC 5649, never given
			err = fmt.Errorf("%w: %v takes no IV", mech.ErrParam, m.Type)
		}
	default:
		if h, ok := hashes[m.Type]; ok {
			o.hash = h
			if o.key.keyType == ck.CKK_GENERIC_SECRET {
				o.h, o.hPool, err = k.hmac(h)
			} else {
				o.h, o.hPool, err = o.digests.get(h, func() (hash.Hash, error) { return mech.NewDigest(h) })
			}
		}
	}
	if err != nil {
		return mechErr(err, o.fn)
	}
	return nil
}

// gcmGeneratesIV says whether the device chooses the IV of a GCM operation
// for fn, as CloudHSM does:
//   - CKM_AES_GCM encryption or wrapping with a 12-byte all-zero IV (the
//     zeroed pIv buffer CloudHSM's applications pass): the device generates
//     a random IV and returns it; any other IV is used as given, and
//     decryption and unwrapping use the IV given.
//   - CKM_CLOUDHSM_AES_GCM: the device always generates the IV when
//     encrypting or wrapping, and puts it in front of the ciphertext; when
//     decrypting or unwrapping it reads it from there. The caller gives no
//     IV (pIv NULL, as CloudHSM documents) or a 12-byte all-zero buffer;
//     any other IV is CKR_MECHANISM_PARAM_INVALID, so a caller's IV is never
//     used, nor silently ignored.
func gcmGeneratesIV(m Mechanism, fn Function, err error) (bool, error) {
	if err != nil {
		return false, err
	}
	zeroed := len(m.IV) == mech.GCMStandardIVLen && allZero(m.IV)
	if m.Type == ck.CKM_CLOUDHSM_AES_GCM {
		if len(m.IV) != 0 && !zeroed {
			return false, fmt.Errorf("%w: %v takes no IV (pIv NULL or 12 zero bytes): the HSM generates it", mech.ErrParam, m.Type)
		}
		return fn == FnEncrypt || fn == FnWrap, nil
	}
	return (fn == FnEncrypt || fn == FnWrap) && zeroed, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// update feeds data; ciphers return output.
func (o *operation) update(dst, data []byte) ([]byte, error) {
	switch {
	case o.mp != nil:
		out, err := o.mp.Update(dst, data)
		return out, mechErr(err, o.fn)
	case o.h != nil:
		o.h.Write(data)
		return dst, nil
	}
	if len(data) > MaxCollectedInput-len(o.buf) {
		return dst, fmt.Errorf("%w: %v collects at most %d bytes before Final", ErrDataLenRange, o.m.Type, MaxCollectedInput)
	}
	if o.held == nil {
		o.held = &collected{pool: o.pool}
		runtime.AddCleanup(o, (*collected).release, o.held)
	}
	if err := o.held.grow(len(data)); err != nil {
		return dst, err
	}
	o.buf = append(o.buf, data...)
	return dst, nil
}

// final ends the operation. For verify, sig is the signature to check.
func (o *operation) final(dst, sig []byte) ([]byte, error) {
	defer o.end()
	out, err := o.finish(dst, sig)
	return out, mechErr(err, o.fn)
}

// end drops the collected input and gives its share of the pool back. The
// caller holds o.mu or is the operation's only user.
func (o *operation) end() {
	clear(o.buf)
	o.buf = nil
	if o.held != nil {
		o.held.release()
	}
}

func (o *operation) finish(dst, sig []byte) ([]byte, error) {
	if o.mp != nil {
		return o.mp.Final(dst)
	}
	if o.fn == FnDigest {
		return o.h.Sum(dst), nil
	}
	switch o.m.Type {
	case ck.CKM_AES_CMAC, ck.CKM_AES_CMAC_GENERAL:
		n := 16
		if o.m.Type == ck.CKM_AES_CMAC_GENERAL {
			n = int(o.m.MACLen)
		}
		if o.fn == FnSign {
			return mech.SumMAC(dst, o.h, n)
		}
		return nil, mech.VerifyMAC(o.h, sig, n)
	}
	if o.h != nil && o.key.keyType == ck.CKK_GENERIC_SECRET { // HMAC
		n := o.hash.Size()
		if o.m.Type != ck.CKM_SHA_1_HMAC && o.m.Type != ck.CKM_SHA224_HMAC && o.m.Type != ck.CKM_SHA256_HMAC &&
			o.m.Type != ck.CKM_SHA384_HMAC && o.m.Type != ck.CKM_SHA512_HMAC {
			n = int(o.m.MACLen)
		}
		if o.fn == FnSign {
			return mech.SumMAC(dst, o.h, n)
		}
		return nil, mech.VerifyMAC(o.h, sig, n)
	}
	data := o.buf
	if o.h != nil { // hash-then-sign: the digest is what gets signed
		data = o.h.Sum(nil)
	}
	return o.oneShot(dst, data, sig)
}

// oneShot performs the non-streaming mechanisms on their whole input.
func (o *operation) oneShot(dst, data, sig []byte) ([]byte, error) {
	k, m := o.key.key, o.m
	switch m.Type {
	case ck.CKM_AES_GCM, ck.CKM_CLOUDHSM_AES_GCM:
		tag := int(m.TagBits / 8)
		iv := m.IV
		switch {
		case o.genIV && o.fn == FnEncrypt:
			at := len(dst)
			if m.Type == ck.CKM_CLOUDHSM_AES_GCM {
				dst = append(dst, make([]byte, mech.GCMStandardIVLen)...) // the IV goes here
			}
			var genIV, out []byte
			var err error
			if k.gcmRand != nil && tag == mech.GCMTagLen && (o.rand == nil || o.rand == rand.Reader) {
				// The key's GCM, built once: one allocation, the output.
				genIV, out, err = mech.SealGCMRandomIVWith(dst, k.gcmRand, data, m.AAD)
			} else {
				genIV, out, err = mech.SealGCMRandomIV(dst, o.rand, k.block, tag, data, m.AAD)
			}
			if err != nil {
				return nil, err
			}
			o.iv = genIV
			if m.Type == ck.CKM_CLOUDHSM_AES_GCM {
				copy(out[at:], genIV)
			}
			return out, nil
		case m.Type == ck.CKM_CLOUDHSM_AES_GCM: // decrypt or unwrap: the IV leads the input
			if k.gcmRand != nil && tag == mech.GCMTagLen {
				return mech.OpenGCMPrefixedIVWith(dst, k.gcmRand, data, m.AAD)
			}
			return mech.OpenGCMPrefixedIV(dst, k.block, tag, data, m.AAD)
		}
		if k.gcm != nil && len(iv) == mech.GCMStandardIVLen && tag == mech.GCMTagLen {
			if o.fn == FnEncrypt {
				return k.gcm.Seal(dst, iv, data, m.AAD), nil
			}
			out, err := k.gcm.Open(dst, iv, data, m.AAD)
			if err != nil {
				return nil, mech.ErrAuthFailed
			}
			return out, nil
		}
		if o.fn == FnEncrypt {
			return mech.SealGCM(dst, k.block, iv, tag, data, m.AAD)
		}
		return mech.OpenGCM(dst, k.block, iv, tag, data, m.AAD)
	case ck.CKM_AES_KEY_WRAP:
		if o.fn == FnEncrypt {
			return mech.WrapKW(dst, k.block, m.IV, data)
		}
		return mech.UnwrapKW(dst, k.block, m.IV, data)
	case ck.CKM_AES_KEY_WRAP_PAD:
		if o.fn == FnEncrypt {
			return mech.WrapKWP(dst, k.block, m.IV, data)
		}
		return mech.UnwrapKWP(dst, k.block, m.IV, data)
	case ck.CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD:
		if o.fn == FnEncrypt {
			return mech.WrapKW(dst, k.block, nil, data)
		}
		return mech.UnwrapKW(dst, k.block, nil, data)
	case ck.CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD:
		if o.fn == FnEncrypt {
			return mech.WrapKWPKCS5(dst, k.block, data)
		}
		return mech.UnwrapKWPKCS5(dst, k.block, data)
	case ck.CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD:
		if o.fn == FnEncrypt {
			return mech.WrapKWP(dst, k.block, nil, data)
		}
		return mech.UnwrapKWP(dst, k.block, nil, data)
	case ck.CKM_RSA_AES_KEY_WRAP:
		p, err := rsaAESParams(m)
		if err != nil {
			return nil, err
		}
		if o.fn == FnEncrypt {
			return mech.WrapRSAAES(o.rand, k.pub.(*rsa.PublicKey), p, data)
		}
		return mech.UnwrapRSAAES(k.priv.(*rsa.PrivateKey), p, data)
	case ck.CKM_RSA_PKCS:
		switch o.fn {
		case FnEncrypt:
			return mech.EncryptPKCS1v15(nil, k.pub.(*rsa.PublicKey), data)
		case FnDecrypt:
			return mech.DecryptPKCS1v15(k.priv.(*rsa.PrivateKey), data)
		case FnSign:
			return mech.SignPKCS1v15(k.priv.(*rsa.PrivateKey), 0, data)
		}
		return nil, mech.VerifyPKCS1v15(k.pub.(*rsa.PublicKey), 0, data, sig)
	case ck.CKM_RSA_PKCS_OAEP:
		h, mgf, err := paramHash(m)
		if err != nil {
			return nil, err
		}
		p := mech.OAEPParams{Hash: h, MGF: mgf, Label: m.Label}
		if o.fn == FnEncrypt {
			return mech.EncryptOAEP(nil, k.pub.(*rsa.PublicKey), p, data)
		}
		return mech.DecryptOAEP(k.priv.(*rsa.PrivateKey), p, data)
	case ck.CKM_EDDSA:
		if o.fn == FnSign {
			return mech.SignEd25519(k.priv.(ed25519.PrivateKey), data)
		}
		return nil, mech.VerifyEd25519(k.pub.(ed25519.PublicKey), data, sig)
	case ck.CKM_ML_DSA:
		if o.fn == FnSign {
			return mech.SignMLDSA(k.priv.(*mldsa.PrivateKey), data, m.Context, m.Hedge == ck.CKH_DETERMINISTIC_REQUIRED)
		}
		return nil, mech.VerifyMLDSA(k.pub.(*mldsa.PublicKey), data, m.Context, sig)
	}
	switch o.key.keyType {
	case ck.CKK_RSA:
		if isPSS(m.Type) {
			h, mgf, err := paramHash(m)
			if err != nil {
				return nil, err
			}
			if o.hash != 0 && h != o.hash {
				return nil, fmt.Errorf("%w: hashAlg must be the mechanism's hash", mech.ErrParam)
			}
			p := mech.PSSParams{Hash: h, MGF: mgf, SaltLen: int(m.SaltLen)}
			if o.fn == FnSign {
				return mech.SignPSS(nil, k.priv.(*rsa.PrivateKey), p, data)
			}
			return nil, mech.VerifyPSS(k.pub.(*rsa.PublicKey), p, data, sig)
		}
		if o.fn == FnSign {
			return mech.SignPKCS1v15(k.priv.(*rsa.PrivateKey), o.hash, data)
		}
		return nil, mech.VerifyPKCS1v15(k.pub.(*rsa.PublicKey), o.hash, data, sig)
	case ck.CKK_EC:
		if o.fn == FnSign {
			return mech.SignECDSA(nil, k.priv.(*ecdsa.PrivateKey), data)
		}
		return nil, mech.VerifyECDSA(k.pub.(*ecdsa.PublicKey), data, sig)
	}
	return nil, fmt.Errorf("%w: %v", ErrMechanismInvalid, m.Type)
}

// rsaAESParams reads CK_RSA_AES_KEY_WRAP_PARAMS: ulAESKeyBits and the
// OAEP parameters that wrap the temporary AES key.
func rsaAESParams(m Mechanism) (mech.RSAAESParams, error) {
	h, mgf, err := paramHash(m)
	if err != nil {
		return mech.RSAAESParams{}, err
	}
	if b := m.AESKeyBits; b != 128 && b != 192 && b != 256 {
		return mech.RSAAESParams{}, fmt.Errorf("%w: ulAESKeyBits %d: 128, 192 or 256", ErrMechanismParamInvalid, b)
	}
	return mech.RSAAESParams{AESKeyBits: int(m.AESKeyBits), OAEP: mech.OAEPParams{Hash: h, MGF: mgf, Label: m.Label}}, nil
}

func isPSS(m ck.MechanismType) bool {
	switch m {
	case ck.CKM_RSA_PKCS_PSS, ck.CKM_SHA1_RSA_PKCS_PSS, ck.CKM_SHA224_RSA_PKCS_PSS, ck.CKM_SHA256_RSA_PKCS_PSS,
		ck.CKM_SHA384_RSA_PKCS_PSS, ck.CKM_SHA512_RSA_PKCS_PSS:
		return true
	}
	return false
}

// mechErr maps an error of package mech to the device's refusal, keeping
// the detail.
func mechErr(err error, fn Function) error {
	if err == nil {
		return nil
	}
	var k *Kind
	if errors.As(err, &k) {
		return err
	}
	decrypting := fn == FnDecrypt || fn == FnUnwrap
	var kind *Kind
	switch {
	case errors.Is(err, mech.ErrSignatureLen):
		kind = ErrSignatureLenRange
	case errors.Is(err, mech.ErrSignatureInvalid):
		kind = ErrSignatureInvalid
	case errors.Is(err, mech.ErrDataLen) && decrypting:
		kind = ErrEncryptedDataLen
	case errors.Is(err, mech.ErrDataLen):
		kind = ErrDataLenRange
	case errors.Is(err, mech.ErrEncryptedDataInvalid) && fn == FnUnwrap:
		kind = ErrWrappedKeyInvalid
	case errors.Is(err, mech.ErrEncryptedDataInvalid):
		kind = ErrEncryptedDataInvalid
	case errors.Is(err, mech.ErrParam):
		kind = ErrMechanismParamInvalid
	case errors.Is(err, mech.ErrKeySize):
		kind = ErrKeySizeRange
	case errors.Is(err, mech.ErrKeyType), errors.Is(err, mech.ErrCurve):
		kind = ErrKeyTypeInconsistent
	case errors.Is(err, mech.ErrEncoding):
		kind = ErrArgumentsBad
	case errors.Is(err, mech.ErrDone):
		kind = ErrOperationNotInit
	default:
		kind = ErrDevice
	}
	return fmt.Errorf("%w: %w", kind, err)
}
