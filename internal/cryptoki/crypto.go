package cryptoki

import (
	"bytes"
	"context"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
)

// OpKind is which of a session's operations: a session may have one of each
// active at once.
type OpKind int

const (
	OpEncrypt OpKind = iota
	OpDecrypt
	OpSign
	OpVerify
	OpDigest
	numOps
)

var opFunctions = [numOps]client.Function{client.FnEncrypt, client.FnDecrypt, client.FnSign, client.FnVerify, client.FnDigest}

// opFlags is the CKF_* flag a mechanism needs for each kind.
var opFlags = [numOps]ck.Flags{ck.CKF_ENCRYPT, ck.CKF_DECRYPT, ck.CKF_SIGN, ck.CKF_VERIFY, ck.CKF_DIGEST}

var opNames = [numOps]string{"encrypt", "decrypt", "sign", "verify", "digest"}

// op is one operation of a session.
type op struct {
	active bool
	mech   client.Mechanism
	key    client.ObjectID
	cs     Session   // the client session it began in
	epoch  uint64    // the slot's login epoch then
	multi  Operation // begun at the first Update
	// ivOut is the caller's IV buffer itself (not a copy) when the HSM may
	// generate the IV (see hsmIVOut): the IV it chose is written there.
	ivOut []byte
	// pending is a result computed but not yet delivered (length query or
	// buffer too small); final says whether delivering it ends the op.
	pending    []byte
	hasPending bool
	final      bool
}

// end ends the operation, aborting a multi-part one on its HSM.
func (o *op) end(ctx context.Context) {
	if o.multi != nil {
		_ = o.multi.Abort(ctx)
	}
	*o = op{}
}

// Init answers C_EncryptInit, C_DecryptInit, C_SignInit, C_VerifyInit and
// C_DigestInit (key 0). It checks the session, login, key handle and that
// the mechanism does kind; the key's own permissions are checked by the HSM
// at the first call that uses it.
func (m *Module) Init(ctx context.Context, h SessionHandle, kind OpKind, mech client.Mechanism, key ObjectHandle) ck.RV {
	ss, rv := m.session(h)
	if rv != ck.CKR_OK {
		return rv
	}
	ss.mu.Lock()
	active := ss.ops[kind].active
	ss.mu.Unlock()
	if active {
		return ck.CKR_OPERATION_ACTIVE
	}
	cs, rv := ss.client()
	if rv != ck.CKR_OK {
		return rv
	}
	var id client.ObjectID
	if kind != OpDigest {
		if id, rv = m.object(ss, key, ck.CKR_KEY_HANDLE_INVALID); rv != ck.CKR_OK {
			return rv
		}
		if rv := m.checkKey(ctx, ss, cs, key, id, kind, mech.Type); rv != ck.CKR_OK {
			return rv
		}
	}
	mi, rv := m.MechanismInfo(ctx, ss.slot.id, mech.Type)
	if rv != ck.CKR_OK {
		return rv
	}
	if mi.Flags&opFlags[kind] == 0 {
		return ck.CKR_MECHANISM_INVALID
	}
	if mech.Type == ck.CKM_CLOUDHSM_AES_GCM && len(mech.IV) != 0 && !zeroIV(mech.IV) {
		return ck.CKR_MECHANISM_PARAM_INVALID // the HSM chooses its IV: pIv NULL (or zeroed)
	}
	_, _, epoch := ss.slot.login()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	o := &ss.ops[kind]
	if o.active {
		return ck.CKR_OPERATION_ACTIVE
	}
	*o = op{active: true, mech: ownMechanism(mech), key: id, cs: cs, epoch: epoch, ivOut: hsmIVOut(kind, mech)}
	return ck.CKR_OK
}

// ckfFindObjects is PKCS#11 3.0's CKF_FIND_OBJECTS, C_SessionCancel's flag
// for a C_FindObjectsInit search.
const ckfFindObjects ck.Flags = 0x40

// SessionCancel answers C_SessionCancel (PKCS#11 3.0): it ends the
// session's operations whose flags are set (CKF_ENCRYPT, CKF_DECRYPT,
// CKF_DIGEST, CKF_SIGN, CKF_VERIFY, CKF_FIND_OBJECTS), aborting a
// multi-part one on its HSM, as if it had never been initialized. A flag
// of an operation that is not active, or of a kind the library has none
// of (message-based, recover), is ignored, so an application (SunPKCS11
// cancels an abandoned Signature or Cipher this way) may name what it
// began without knowing whether it still runs. A multi-part operation
// whose Abort does not reach its HSM ends anyway: the HSM drops it with
// the node session, and an HSM session runs many operations at once.
func (m *Module) SessionCancel(ctx context.Context, h SessionHandle, flags ck.Flags) ck.RV {
	ss, rv := m.session(h)
	if rv != ck.CKR_OK {
		return rv
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for kind := range ss.ops {
		if flags&opFlags[kind] != 0 && ss.ops[kind].active {
			ss.ops[kind].end(ctx)
		}
	}
	if flags&ckfFindObjects != 0 {
		ss.find = nil
	}
	return ck.CKR_OK
}

// hsmIVOut returns the caller's IV buffer when the HSM generates the IV of
// an encryption and the caller expects it back there, as on CloudHSM:
// CKM_AES_GCM with a 12-byte all-zero pIv, or CKM_CLOUDHSM_AES_GCM with a
// 12-byte pIv (its IV also leads the ciphertext; CloudHSM's applications
// pass pIv NULL). The buffer must stay valid until C_Encrypt or
// C_EncryptFinal returns, which is when the HSM chooses the IV.
func hsmIVOut(kind OpKind, m client.Mechanism) []byte {
	if kind != OpEncrypt || len(m.IV) != gcmIVLen {
		return nil
	}
	switch m.Type {
	case ck.CKM_AES_GCM:
		if !zeroIV(m.IV) {
			return nil // the caller's own IV, used as given
		}
		return m.IV
	case ck.CKM_CLOUDHSM_AES_GCM:
		return m.IV
	}
	return nil
}

// zeroIV reports whether iv is a zeroed 12-byte GCM IV buffer.
func zeroIV(iv []byte) bool {
	return len(iv) == gcmIVLen && bytes.Count(iv, []byte{0}) == gcmIVLen
}

// gcmIVLen is the length of the IVs an HSM generates for AES-GCM.
const gcmIVLen = 12

// takeIV writes the IV the HSM generated into the caller's buffer.
func (o *op) takeIV(iv []byte) {
	if o.ivOut != nil && len(iv) == len(o.ivOut) {
		copy(o.ivOut, iv)
	}
	o.ivOut = nil
}

// ownMechanism copies the parameters of a mechanism kept past C_*Init:
// they point into the caller's memory, which the caller may free or reuse
// once Init returns (miekg/pkcs11 frees it at once).
func ownMechanism(m client.Mechanism) client.Mechanism {
	for _, b := range []*[]byte{&m.IV, &m.AAD, &m.Label, &m.SharedData, &m.PublicData} {
		*b = bytes.Clone(*b)
	}
	return m
}

// activeOp returns ss's operation of kind, locked; unlock ss.mu after.
func (m *Module) activeOp(h SessionHandle, kind OpKind) (*session, *op, ck.RV) {
	ss, rv := m.session(h)
	if rv != ck.CKR_OK {
		return nil, nil, rv
	}
	ss.mu.Lock()
	o := &ss.ops[kind]
	if !o.active {
		ss.mu.Unlock()
		return nil, nil, ck.CKR_OPERATION_NOT_INITIALIZED
	}
	if _, _, epoch := ss.slot.login(); epoch != o.epoch {
		// Logged out (and maybe in again) since Init: the operation went
		// with the client session.
		*o = op{}
		ss.mu.Unlock()
		return nil, nil, ck.CKR_OPERATION_NOT_INITIALIZED
	}
	return ss, o, ck.CKR_OK
}

// deliver applies the two-call convention to a result: with query (pOut
// NULL) or a too-small out it keeps res for the next call and reports its
// length; otherwise it copies res into out and, if final, ends the
// operation.
func deliver(o *op, res []byte, final bool, out []byte, query bool) (int, ck.RV) {
	switch {
	case query:
		o.pending, o.hasPending, o.final = res, true, final
		return len(res), ck.CKR_OK
	case len(out) < len(res):
		o.pending, o.hasPending, o.final = res, true, final
		return len(res), ck.CKR_BUFFER_TOO_SMALL
	}
	n := copy(out, res)
	o.pending, o.hasPending = nil, false
	if final {
		*o = op{}
	}
	return n, ck.CKR_OK
}

// Single answers C_Encrypt, C_Decrypt, C_Sign and C_Digest: one request
// for the whole input (unless C_*Update began a multi-part operation, which
// C_*Final must end).
func (m *Module) Single(ctx context.Context, h SessionHandle, kind OpKind, data, out []byte, query bool) (int, ck.RV) {
	ss, o, rv := m.activeOp(h, kind)
	if rv != ck.CKR_OK {
		return 0, rv
	}
	defer ss.mu.Unlock()
	if o.hasPending {
		if !o.final {
			return 0, ck.CKR_OPERATION_ACTIVE
		}
		return deliver(o, o.pending, true, out, query)
	}
	if o.multi != nil {
		return 0, ck.CKR_OPERATION_ACTIVE
	}
	var (
		res []byte
		err error
	)
	switch kind {
	case OpEncrypt:
		var iv []byte
		res, iv, err = o.cs.EncryptIV(ctx, o.key, o.mech, data)
		if err == nil {
			o.takeIV(iv)
		}
	case OpDecrypt:
		res, err = o.cs.Decrypt(ctx, o.key, o.mech, data)
	case OpSign:
		res, err = o.cs.Sign(ctx, o.key, o.mech, data)
	case OpDigest:
		res, err = o.cs.Digest(ctx, o.mech, data)
	default:
		return 0, ck.CKR_FUNCTION_FAILED
	}
	if err != nil {
		*o = op{}
		return 0, m.code(opNames[kind], err)
	}
	return deliver(o, res, true, out, query)
}

// Verify answers C_Verify. A bad signature is CKR_SIGNATURE_INVALID (or
// CKR_SIGNATURE_LEN_RANGE); either way the operation ends.
func (m *Module) Verify(ctx context.Context, h SessionHandle, data, sig []byte) ck.RV {
	ss, o, rv := m.activeOp(h, OpVerify)
	if rv != ck.CKR_OK {
		return rv
	}
	defer ss.mu.Unlock()
	if o.multi != nil {
		return ck.CKR_OPERATION_ACTIVE
	}
	err := o.cs.Verify(ctx, o.key, o.mech, data, sig)
	*o = op{}
	if err != nil {
		return m.code("verify", err)
	}
	return ck.CKR_OK
}

// begin starts the multi-part operation behind o, if not yet.
func (m *Module) begin(ctx context.Context, kind OpKind, o *op) ck.RV {
	if o.multi != nil {
		return ck.CKR_OK
	}
	mp, err := o.cs.Begin(ctx, opFunctions[kind], o.key, o.mech)
	if err != nil {
		*o = op{}
		return m.code(opNames[kind]+" init", err)
	}
	o.multi = mp
	return ck.CKR_OK
}

// Update answers C_EncryptUpdate and C_DecryptUpdate (with output) and
// C_SignUpdate, C_VerifyUpdate and C_DigestUpdate (out nil, query false).
func (m *Module) Update(ctx context.Context, h SessionHandle, kind OpKind, data, out []byte, query bool) (int, ck.RV) {
	ss, o, rv := m.activeOp(h, kind)
	if rv != ck.CKR_OK {
		return 0, rv
	}
	defer ss.mu.Unlock()
	if o.hasPending {
		// The caller fetches the output of the part it already gave.
		if o.final {
			return 0, ck.CKR_OPERATION_ACTIVE
		}
		return deliver(o, o.pending, false, out, query)
	}
	if rv := m.begin(ctx, kind, o); rv != ck.CKR_OK {
		return 0, rv
	}
	res, err := o.multi.Update(ctx, data)
	if err != nil {
		o.multi = nil // the HSM ended it
		*o = op{}
		return 0, m.code(opNames[kind]+" update", err)
	}
	if kind != OpEncrypt && kind != OpDecrypt {
		return 0, ck.CKR_OK
	}
	return deliver(o, res, false, out, query)
}

// Final answers C_EncryptFinal, C_DecryptFinal, C_SignFinal and
// C_DigestFinal.
func (m *Module) Final(ctx context.Context, h SessionHandle, kind OpKind, out []byte, query bool) (int, ck.RV) {
	ss, o, rv := m.activeOp(h, kind)
	if rv != ck.CKR_OK {
		return 0, rv
	}
	defer ss.mu.Unlock()
	if o.hasPending {
		if !o.final {
			return 0, ck.CKR_OPERATION_ACTIVE // an Update's output is still to be fetched
		}
		return deliver(o, o.pending, true, out, query)
	}
	if rv := m.begin(ctx, kind, o); rv != ck.CKR_OK {
		return 0, rv
	}
	res, iv, err := o.multi.FinishIV(ctx, nil)
	o.multi = nil
	if err != nil {
		*o = op{}
		return 0, m.code(opNames[kind]+" final", err)
	}
	o.takeIV(iv)
	return deliver(o, res, true, out, query)
}

// VerifyFinal answers C_VerifyFinal.
func (m *Module) VerifyFinal(ctx context.Context, h SessionHandle, sig []byte) ck.RV {
	ss, o, rv := m.activeOp(h, OpVerify)
	if rv != ck.CKR_OK {
		return rv
	}
	defer ss.mu.Unlock()
	if rv := m.begin(ctx, OpVerify, o); rv != ck.CKR_OK {
		return rv
	}
	_, err := o.multi.Finish(ctx, sig)
	*o = op{}
	if err != nil {
		return m.code("verify final", err)
	}
	return ck.CKR_OK
}
