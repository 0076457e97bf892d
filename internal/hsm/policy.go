package hsm

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"fmt"

	"github.com/coffer-hsm/coffer/internal/ck"
)

// This file holds the device's rules on who may make what of a key: who
// marks a key trusted, what a new key may be given that comes from another
// key, when a key's secret may leave the HSM, and who reads an object's
// contents. Every path that reaches the same data calls the rule here.

// mayTrust is the one rule for CKA_TRUSTED, at creation and after: only an
// admin marks a key trusted (PKCS#11 §4.8 reserves it to the SO), and only
// an admin ends a trust. What was wrapped under a trusted key comes back
// only as a CKA_WRAP_WITH_TRUSTED key (origin.sealed, mayDecrypt) for as
// long as the trust lasts, so the key's crypto user must not end it:
// neither by clearing CKA_TRUSTED nor by destroying the trusted object
// (mayDestroy).
func mayTrust(p *principal) error {
	if p == nil || p.role != RoleAdmin {
		return fmt.Errorf("%w: only an admin may set or clear CKA_TRUSTED", ErrAttributeReadOnly)
	}
	return nil
}

// mayDestroy is the one rule for an object's destruction, by its owner
// (C_DestroyObject) or as the loser of a resent creation (SettleCreation):
// not when CKA_DESTROYABLE is false, and not while it is trusted (an admin
// clears CKA_TRUSTED first, see mayTrust).
func mayDestroy(o *Object) error {
	switch {
	case !o.has(fDestroyable):
		return fmt.Errorf("%w: CKA_DESTROYABLE is false", ErrActionProhibited)
	case o.has(fTrusted):
		return fmt.Errorf("%w: the object is trusted; an admin clears CKA_TRUSTED before it is destroyed", ErrActionProhibited)
	}
	return nil
}

// foreign reports whether a new key comes from a key its creator does not
// own (derived from a shared base key, unwrapped with a shared key), or from
// a key that came so itself (bound). Such a key is the creator's, but it
// stays inside the HSM: it is never extractable and always sensitive, and
// it is bound, so what comes from it is foreign too; else the owner's
// secret would leave through the user it was shared with, one level down
// (a second-level key unwrapped, and with it the keys wrapped under it).
func (f origin) foreign() bool {
	k := f.base
	if k == nil {
		k = f.unwrapper
	}
	return k != nil && (f.creator == nil || k.owner != f.creator.name || k.bound != 0)
}

// binding records on a key that it was made from another user's key
// (origin.foreign), and how.
type binding uint8

const (
	boundDerived   binding = 1 // derived from such a key: a fresh secret
	boundUnwrapped binding = 2 // unwrapped with such a key: one of its owner's keys, maybe
)

// minForeignSecret is the fewest bytes of secret a key made from another
// user's key may hold. A shorter key is a guessable piece of a secret the
// creator may not read: keys derived with CKA_VALUE_LEN 1, 2, ... and an
// HMAC under each give the base's ECDH secret one byte in 256 guesses at a
// time.
const minForeignSecret = 16

// admitSecret checks the secret of a new key against its origin: a secret
// key made from another user's key (foreign) holds at least
// minForeignSecret bytes. buildKey calls it for every new key.
func admitSecret(km *keyMaterial, from origin) error {
	if km.secret != nil && len(km.secret) < minForeignSecret && from.foreign() {
		return fmt.Errorf("%w: a key derived from or unwrapped with another user's key has at least %d bytes, not %d",
			ErrTemplateInconsistent, minForeignSecret, len(km.secret))
	}
	return nil
}

// admit checks one attribute of a creation template against the rules that
// depend on who creates the object and from what. applyTemplate calls it for
// every attribute of every template (create, generate, generate pair,
// unwrap, derive, import).
func admit(a Attribute, from origin) error {
	v := decodeBool(a.Value)
	switch a.Type {
	case ck.CKA_TRUSTED:
		if v {
			return mayTrust(from.creator)
		}
	case ck.CKA_EXTRACTABLE:
		if v && from.foreign() {
			return fmt.Errorf("%w: a key derived from or unwrapped with another user's key is not extractable", ErrTemplateInconsistent)
		}
	case ck.CKA_SENSITIVE:
		if !v && from.foreign() {
			return fmt.Errorf("%w: a key derived from or unwrapped with another user's key is sensitive", ErrTemplateInconsistent)
		}
	case ck.CKA_WRAP_WITH_TRUSTED:
		if !v && from.sealed {
			return fmt.Errorf("%w: a key unwrapped with a trusted key keeps CKA_WRAP_WITH_TRUSTED", ErrTemplateInconsistent)
		}
	}
	return nil
}

// constrain sets what the origin forces on a new secret or private key,
// after its template: see foreign and origin.sealed.
func constrain(o *Object, from origin) {
	if o.class != ck.CKO_SECRET_KEY && o.class != ck.CKO_PRIVATE_KEY {
		return
	}
	if from.foreign() {
		o.setBool(ck.CKA_EXTRACTABLE, false)
		o.setBool(ck.CKA_SENSITIVE, true)
		o.bound = boundDerived
		if from.unwrapper != nil {
			o.bound = boundUnwrapped
		}
	}
	if from.sealed {
		o.setBool(ck.CKA_WRAP_WITH_TRUSTED, true)
	}
}

// opensTrusted reports whether uk is the unwrapping side of a trusted key:
// a trusted secret key, or the private key (RSA, EC or Ed25519) whose
// public key is held by a trusted public-key object. What was wrapped under
// a trusted key may come back only as a CKA_WRAP_WITH_TRUSTED key, and such
// a key does not decrypt (C_Decrypt of the wrapped bytes would give the key
// in the clear). It runs on every unwrap and decrypt, so it costs one
// lookup in the device's trust index, never a scan of the objects.
//
// A secret key opens a trusted key also when another object holding the
// same secret is trusted (its copy, C_CopyObject, or the same blob
// unwrapped twice): else a copy made before an admin trusted the original
// would decrypt what was wrapped under the original.
func (d *Device) opensTrusted(uk *Object) bool {
	if uk.has(fTrusted) {
		return true
	}
	var k keyID
	switch {
	case uk.key == nil:
		return false
	case uk.class == ck.CKO_SECRET_KEY && uk.key.secret != nil:
		k = secretKeyID(uk.keyType, uk.key.secret)
	case uk.class == ck.CKO_PRIVATE_KEY && uk.key.pub != nil:
		var ok bool
		if k, ok = publicKeyID(uk.key.pub); !ok {
			return true // a key the index cannot name is treated as trusted: it unwraps but does not decrypt
		}
	default:
		return false
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.trusted[k] > 0
}

// keyID names a public key by the SHA-256 of its SubjectPublicKeyInfo
// (algorithm, curve, modulus and exponent or point), so that a private key
// and every public-key object holding its public half meet in one entry of
// the trust index.
type keyID [sha256.Size]byte

func publicKeyID(pub crypto.PublicKey) (keyID, bool) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return keyID{}, false
	}
	return sha256.Sum256(der), true
}

// secretKeyID names a secret key by the SHA-256 of its type and secret,
// apart from every SPKI hash (a domain prefix no DER encoding starts
// with). It stays in the device's memory, as the secret does.
func secretKeyID(kt ck.KeyType, secret []byte) keyID {
	h := sha256.New()
	h.Write([]byte("coffer trusted secret key\x00"))
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(kt)))
	h.Write(secret)
	return keyID(h.Sum(nil))
}

// trustedPublic reports whether o, trusted, makes the unwrapping side of a
// trusted key of the keys holding its material: a public key with
// CKA_TRUSTED=true (for every private key of its public half) or a secret
// key with CKA_TRUSTED=true (for every object holding its secret), and
// names that key. It decides what the trust index counts (Device.trusted).
func trustedPublic(o *Object) (keyID, bool) {
	if !o.has(fTrusted) || o.key == nil {
		return keyID{}, false
	}
	switch {
	case o.class == ck.CKO_PUBLIC_KEY && o.key.pub != nil:
		return publicKeyID(o.key.pub)
	case o.class == ck.CKO_SECRET_KEY && o.key.secret != nil:
		return secretKeyID(o.keyType, o.key.secret), true
	}
	return keyID{}, false
}

// mayUse is the one rule for p using key for fn with mechanism m, beyond
// the mechanism fitting the key: the key's use attribute (CKA_DECRYPT,
// CKA_SIGN, ...), its CKA_ALLOWED_MECHANISMS, and mayDecrypt. prepare runs it when an operation starts, and every later step
// of a multi-part operation runs it again on the key as it is then
// (Device.stillMayUse): a share withdrawn, a use attribute cleared, a key
// destroyed or made trusted after C_*Init stops the operation.
func (d *Device) mayUse(p *principal, fn Function, key *Object, m ck.MechanismType) error {
	if f, attr := fnAttr(fn); !key.has(f) {
		return fmt.Errorf("%w: %v is false", ErrKeyFunctionDenied, attr)
	}
	if !mechanismAllowed(key, m) {
		return fmt.Errorf("%w: %v is not in the key's CKA_ALLOWED_MECHANISMS", ErrMechanismInvalid, m)
	}
	if fn == FnDecrypt {
		return d.mayDecrypt(p, key)
	}
	return nil
}

// stillMayUse runs mayUse for the next step of a multi-part operation, on
// its key as the session's user sees it now.
func (d *Device) stillMayUse(sid SessionID, oper *operation) error {
	if oper.key == nil { // a digest uses no key
		return nil
	}
	s, p, err := d.whoami(sid)
	if err != nil {
		return err
	}
	k, err := d.lookup(s, p, oper.key.id)
	if err != nil {
		return fmt.Errorf("%w: the operation's key is gone or no longer shared", ErrKeyHandleInvalid)
	}
	return d.mayUse(p, oper.fn, k, oper.m.Type)
}

// mechanismAllowed reports whether the key's CKA_ALLOWED_MECHANISMS, if it
// has one, lists m (PKCS#11 v3.0 §4.7: an empty or absent list allows
// every mechanism). A list that is not a whole number of CK_ULONGs allows
// none.
func mechanismAllowed(key *Object, m ck.MechanismType) bool {
	v := key.attrs[ck.CKA_ALLOWED_MECHANISMS]
	if len(v) == 0 {
		return true
	}
	if len(v)%8 != 0 {
		return false
	}
	for ; len(v) > 0; v = v[8:] {
		if decodeUlong(v[:8]) == uint(m) {
			return true
		}
	}
	return false
}

// mayDecrypt is the rule for C_Decrypt beyond CKA_DECRYPT. C_Decrypt of what
// C_WrapKey made under a key gives the wrapped key in the clear, so a key
// that may unwrap decrypts only for its owner (whose wrapped keys were
// extractable by it anyway), and never when it opens a trusted key (what
// was wrapped under it is CKA_WRAP_WITH_TRUSTED and leaves only wrapped).
// An owner who shares a key for decryption sets its CKA_UNWRAP false.
func (d *Device) mayDecrypt(p *principal, k *Object) error {
	switch {
	case k.has(fUnwrap) && (p == nil || k.owner != p.name):
		return fmt.Errorf("%w: a shared key that may unwrap (CKA_UNWRAP) decrypts only for its owner", ErrKeyFunctionDenied)
	case k.bound == boundUnwrapped:
		// It may be its source owner's key-encryption key: C_Decrypt would
		// open that owner's keys wrapped under it.
		return fmt.Errorf("%w: a key unwrapped with another user's key does not decrypt", ErrKeyFunctionDenied)
	case d.opensTrusted(k):
		return fmt.Errorf("%w: the unwrapping side of a trusted key unwraps but does not decrypt", ErrKeyFunctionDenied)
	}
	return nil
}

// egress is a way a key's secret leaves the HSM.
type egress uint8

const (
	egressWrap   egress = iota // C_WrapKey: encrypted under a wrapping key
	egressExport               // key export: in the clear (CloudHSM's rule: CKA_SENSITIVE does not matter)
	egressRead                 // C_GetAttributeValue of key material: in the clear (PKCS#11's rule: not sensitive)
)

func (e egress) String() string {
	switch e {
	case egressWrap:
		return "wrapped"
	case egressExport:
		return "exported"
	default:
		return "read"
	}
}

// mayLeave is the one rule for a key's secret leaving the HSM, however it
// leaves: only a crypto user who owns the key (never a user it is shared
// with, never an admin or appliance user), only an extractable key, a
// CKA_WRAP_WITH_TRUSTED key only wrapped under a trusted key (never in the
// clear), and read as an attribute only when it is not sensitive. wk is the
// wrapping key of egressWrap. The device has no quorum service for key
// use, so no approval is asked here.
func mayLeave(p *principal, o *Object, how egress, wk *Object) error {
	switch {
	case !o.isKey() || o.class == ck.CKO_PUBLIC_KEY || o.key.secret == nil && o.key.priv == nil:
		return fmt.Errorf("%w: only secret and private keys leave as key material", ErrKeyHandleInvalid)
	case p == nil || p.role != RoleCryptoUser:
		return fmt.Errorf("%w: only the crypto user who owns a key takes it out", ErrRoleNotPermitted)
	case o.owner != p.name:
		return fmt.Errorf("%w: a shared key cannot be %s", ErrNotOwner, how)
	case !o.has(fExtractable):
		return ErrKeyNotExtractable
	case o.has(fWrapWithTrusted) && (how != egressWrap || wk == nil || !wk.has(fTrusted)):
		return ErrKeyNotWrappable
	case how == egressRead && o.has(fSensitive):
		return ErrAttributeSensitive
	}
	return nil
}

// isContent reports whether t holds an object's contents rather than its
// metadata: key material of a secret or private key, CKA_VALUE of a data
// object or certificate.
func isContent(o *Object, t ck.AttributeType) bool {
	if o.isKey() {
		return o.class != ck.CKO_PUBLIC_KEY && sensitiveAttrs[t]
	}
	return t == ck.CKA_VALUE
}

// contentHidden is the one rule for who reads (or matches in a search) the
// contents of an object that is not a key: admins and appliance users see
// the metadata of a crypto user's private objects, not their value. Key
// material follows mayLeave.
func contentHidden(p *principal, o *Object, t ck.AttributeType) bool {
	return !o.isKey() && isContent(o, t) && o.has(fPrivate) && (p == nil || p.role != RoleCryptoUser)
}
