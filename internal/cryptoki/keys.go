package cryptoki

import (
	"bytes"
	"context"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
)

// GenerateKey answers C_GenerateKey.
func (m *Module) GenerateKey(ctx context.Context, h SessionHandle, mech client.Mechanism, tmpl []client.Attribute) (ObjectHandle, ck.RV) {
	ss, cs, rv := m.creating(h, tmpl)
	if rv != ck.CKR_OK {
		return 0, rv
	}
	id, err := cs.GenerateKey(ctx, mech, tmpl)
	if err != nil {
		return 0, m.code("generate key", err)
	}
	return m.created(ss, id, tmpl), ck.CKR_OK
}

// GenerateKeyPair answers C_GenerateKeyPair.
func (m *Module) GenerateKeyPair(ctx context.Context, h SessionHandle, mech client.Mechanism, public, private []client.Attribute) (pub, priv ObjectHandle, rv ck.RV) {
	ss, cs, rv := m.creating(h, public, private)
	if rv != ck.CKR_OK {
		return 0, 0, rv
	}
	pid, kid, err := cs.GenerateKeyPair(ctx, mech, public, private)
	if err != nil {
		return 0, 0, m.code("generate key pair", err)
	}
	return m.created(ss, pid, public), m.created(ss, kid, private), ck.CKR_OK
}

// pendingWrap is a wrapped key computed for a length query (or a too-small
// buffer), kept for the call that fetches it.
type pendingWrap struct {
	wrapping, key client.ObjectID
	mech          client.Mechanism // owned (ownMechanism)
	res           []byte
}

// sameWrap reports whether a second C_WrapKey asks for what the pending
// one computed: the same mechanism with the same parameters (another OAEP
// label or hash, or another RSA-AES key size, is another wrapping).
func sameWrap(a, b client.Mechanism) bool {
	return a.Type == b.Type && bytes.Equal(a.IV, b.IV) && bytes.Equal(a.AAD, b.AAD) && a.TagBits == b.TagBits &&
		a.Hash == b.Hash && a.MGF == b.MGF && bytes.Equal(a.Label, b.Label) && a.AESKeyBits == b.AESKeyBits
}

// WrapKey answers C_WrapKey, with the two-call convention.
func (m *Module) WrapKey(ctx context.Context, h SessionHandle, mech client.Mechanism, wrapping, key ObjectHandle, out []byte, query bool) (int, ck.RV) {
	ss, rv := m.session(h)
	if rv != ck.CKR_OK {
		return 0, rv
	}
	cs, rv := ss.client()
	if rv != ck.CKR_OK {
		return 0, rv
	}
	wid, rv := m.object(ss, wrapping, ck.CKR_WRAPPING_KEY_HANDLE_INVALID)
	if rv != ck.CKR_OK {
		return 0, rv
	}
	kid, rv := m.object(ss, key, ck.CKR_KEY_HANDLE_INVALID)
	if rv != ck.CKR_OK {
		return 0, rv
	}
	ss.mu.Lock()
	p := ss.wrap
	ss.wrap = pendingWrap{}
	ss.mu.Unlock()
	res := p.res
	if res == nil || p.wrapping != wid || p.key != kid || !sameWrap(p.mech, mech) {
		var (
			err error
			iv  []byte
		)
		if res, iv, err = cs.WrapKeyIV(ctx, wid, mech, kid); err != nil {
			return 0, m.code("wrap key", err)
		}
		// The HSM chose the IV (a zeroed pIv, as CloudHSM's applications
		// pass): it goes into the caller's pIv, which mech.IV is, and the
		// second call of the two-call convention then names it.
		if out := hsmIVOut(OpEncrypt, mech); out != nil && len(iv) == len(out) {
			copy(out, iv)
		}
	}
	if query || len(out) < len(res) {
		ss.mu.Lock()
		ss.wrap = pendingWrap{wrapping: wid, key: kid, mech: ownMechanism(mech), res: res}
		ss.mu.Unlock()
		if query {
			return len(res), ck.CKR_OK
		}
		return len(res), ck.CKR_BUFFER_TOO_SMALL
	}
	return copy(out, res), ck.CKR_OK
}

// UnwrapKey answers C_UnwrapKey.
func (m *Module) UnwrapKey(ctx context.Context, h SessionHandle, mech client.Mechanism, unwrapping ObjectHandle, wrapped []byte, tmpl []client.Attribute) (ObjectHandle, ck.RV) {
	ss, cs, rv := m.creating(h, tmpl)
	if rv != ck.CKR_OK {
		return 0, rv
	}
	uid, rv := m.object(ss, unwrapping, ck.CKR_UNWRAPPING_KEY_HANDLE_INVALID)
	if rv != ck.CKR_OK {
		return 0, rv
	}
	id, err := cs.UnwrapKey(ctx, uid, mech, wrapped, tmpl)
	if err != nil {
		return 0, m.code("unwrap key", err)
	}
	return m.created(ss, id, tmpl), ck.CKR_OK
}

// DeriveKey answers C_DeriveKey.
func (m *Module) DeriveKey(ctx context.Context, h SessionHandle, mech client.Mechanism, base ObjectHandle, tmpl []client.Attribute) (ObjectHandle, ck.RV) {
	ss, cs, rv := m.creating(h, tmpl)
	if rv != ck.CKR_OK {
		return 0, rv
	}
	bid, rv := m.object(ss, base, ck.CKR_KEY_HANDLE_INVALID)
	if rv != ck.CKR_OK {
		return 0, rv
	}
	id, err := cs.DeriveKey(ctx, bid, mech, tmpl)
	if err != nil {
		return 0, m.code("derive key", err)
	}
	return m.created(ss, id, tmpl), ck.CKR_OK
}

// maxRandom bounds one GenerateRandom request; longer requests are split.
const maxRandom = 64 << 10

// GenerateRandom answers C_GenerateRandom: out is filled by the HSMs.
func (m *Module) GenerateRandom(ctx context.Context, h SessionHandle, out []byte) ck.RV {
	ss, rv := m.session(h)
	if rv != ck.CKR_OK {
		return rv
	}
	cs, rv := ss.client()
	if rv != ck.CKR_OK {
		return rv
	}
	for len(out) > 0 {
		n := min(len(out), maxRandom)
		b, err := cs.GenerateRandom(ctx, n)
		if err != nil {
			return m.code("generate random", err)
		}
		if len(b) != n {
			return ck.CKR_DEVICE_ERROR
		}
		out = out[copy(out, b):]
	}
	return ck.CKR_OK
}

// SeedRandom answers C_SeedRandom: the HSMs' generator takes no seed.
func (m *Module) SeedRandom(h SessionHandle) ck.RV {
	if _, rv := m.session(h); rv != ck.CKR_OK {
		return rv
	}
	return ck.CKR_RANDOM_SEED_NOT_SUPPORTED
}
