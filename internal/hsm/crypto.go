package hsm

import (
	"crypto/aes"
	"io"
)

// useKey resolves a key the session's crypto user may use: one it owns or
// one shared with it.
func (d *Device) useKey(op string, sid SessionID, id ObjectID) (*session, *principal, *Object, error) {
	s, p, err := d.cryptoUser(op, sid)
	if err != nil {
		return nil, nil, nil, err
	}
	o, err := d.lookup(s, p, id)
	if err != nil {
		if err == ErrObjectHandleInvalid {
			err = ErrKeyHandleInvalid
		}
		return nil, p, nil, &Error{Op: op, Err: err}
	}
	return s, p, o, nil
}

var fnOps = map[Function]string{
	FnEncrypt: "key.encrypt", FnDecrypt: "key.decrypt", FnSign: "key.sign", FnVerify: "key.verify", FnDigest: "digest",
}

// Encrypt encrypts data in one call (C_EncryptInit + C_Encrypt). Where the
// device generates the IV (AES-GCM with a zeroed IV, see EncryptIV) the IV
// is lost with this call: use EncryptIV.
func (d *Device) Encrypt(sid SessionID, key ObjectID, m Mechanism, data []byte) ([]byte, error) {
	out, _, err := d.EncryptIV(sid, key, m, data)
	return out, err
}

// EncryptIV is Encrypt that also returns the IV the device generated, nil
// if it used the caller's: for CKM_AES_GCM with a 12-byte all-zero IV (the
// zeroed pIv buffer of CloudHSM's applications) the device encrypts under a
// fresh random IV instead, never under the zero IV; for
// CKM_CLOUDHSM_AES_GCM the IV is always the device's and also leads the
// ciphertext.
func (d *Device) EncryptIV(sid SessionID, key ObjectID, m Mechanism, data []byte) (out, iv []byte, err error) {
	return d.single(FnEncrypt, sid, key, m, data, nil)
}

// Decrypt decrypts data in one call.
func (d *Device) Decrypt(sid SessionID, key ObjectID, m Mechanism, data []byte) ([]byte, error) {
	out, _, err := d.single(FnDecrypt, sid, key, m, data, nil)
	return out, err
}

// Sign signs (or MACs) data in one call.
func (d *Device) Sign(sid SessionID, key ObjectID, m Mechanism, data []byte) ([]byte, error) {
	out, _, err := d.single(FnSign, sid, key, m, data, nil)
	return out, err
}

// Verify checks a signature or MAC in one call; a mismatch is
// ErrSignatureInvalid.
func (d *Device) Verify(sid SessionID, key ObjectID, m Mechanism, data, sig []byte) error {
	_, _, err := d.single(FnVerify, sid, key, m, data, sig)
	return err
}

// Digest hashes data in one call. It needs a session but no login.
func (d *Device) Digest(sid SessionID, m Mechanism, data []byte) ([]byte, error) {
	if _, err := d.session(sid); err != nil {
		return nil, &Error{Op: "digest", Err: err}
	}
	o, err := d.prepare("digest", nil, FnDigest, nil, m)
	if err != nil {
		return nil, err
	}
	o.h.Write(data)
	return o.h.Sum(nil), nil
}

func (d *Device) single(fn Function, sid SessionID, key ObjectID, m Mechanism, data, sig []byte) ([]byte, []byte, error) {
	op := fnOps[fn]
	_, p, o, err := d.useKey(op, sid, key)
	if err != nil {
		return nil, nil, err
	}
	// The operation is this call's alone and ends with it (nothing here
	// collects input or registers it), so its memory is reused.
	mem, _ := d.singleOps.Get().(*operation)
	if mem == nil {
		mem = new(operation)
	}
	defer func() {
		*mem = operation{}
		d.singleOps.Put(mem)
	}()
	oper, err := d.prepareIn(mem, op, p, fn, o, m)
	if err == nil {
		var out []byte
		if oper.mp != nil || oper.h != nil {
			if oper.mp != nil { // room for the whole output: at most a block more than the input
				out = make([]byte, 0, len(data)+aes.BlockSize)
			}
			out, err = oper.update(out, data)
			if err == nil {
				out, err = oper.final(out, sig)
			}
			if oper.hPool != nil { // this call was its only user
				giveBack(oper.hPool, oper.h)
			}
		} else {
			out, err = oper.oneShot(nil, data, sig)
			err = mechErr(err, fn)
		}
		if err == nil {
			d.audit(sid, p, op, key, "", nil)
			return out, oper.iv, nil
		}
		err = &Error{Op: op, Err: err}
	}
	d.audit(sid, p, op, key, "", err)
	return nil, nil, err
}

// Begin starts a multi-part operation (C_*Init) and returns its id; key
// may be zero for FnDigest. A session may run several operations of one
// function at once, each under its own id: the PKCS#11 module carries every
// PKCS#11 session of a slot in one node session, and keeps PKCS#11's one
// operation per kind per session itself. At most MaxSessionOperations are
// active in a session, and defaultMaxOperations in the device
// (ErrTooManyOperations).
func (d *Device) Begin(sid SessionID, fn Function, key ObjectID, m Mechanism) (OpID, error) {
	op, ok := fnOps[fn]
	if !ok {
		return 0, &Error{Op: "begin", Err: ErrArgumentsBad}
	}
	var s *session
	var p *principal
	var o *Object
	var err error
	if fn == FnDigest {
		s, err = d.session(sid)
		if err != nil {
			return 0, &Error{Op: op, Err: err}
		}
	} else if s, p, o, err = d.useKey(op, sid, key); err != nil {
		return 0, err
	}
	oper, err := d.prepare(op, p, fn, o, m)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ops == nil {
		return 0, &Error{Op: op, Err: ErrSessionHandleInvalid}
	}
	if len(s.ops) >= MaxSessionOperations || !d.ops.take() {
		return 0, &Error{Op: op, Err: ErrTooManyOperations}
	}
	s.nextOp++
	s.ops[s.nextOp] = oper
	return s.nextOp, nil
}

// Update feeds a multi-part operation; encryption and decryption return
// the output produced so far. An error ends the operation.
func (d *Device) Update(sid SessionID, id OpID, data []byte) ([]byte, error) {
	s, oper, err := d.operation(sid, id)
	if err != nil {
		return nil, err
	}
	var out []byte
	oper.mu.Lock()
	if err = d.stillMayUse(sid, oper); err == nil {
		out, err = oper.update(nil, data)
	}
	if err != nil {
		oper.end()
	}
	oper.mu.Unlock()
	if err != nil {
		d.endOp(s, id)
		return nil, &Error{Op: fnOps[oper.fn], Err: err}
	}
	return out, nil
}

// Finish ends a multi-part operation: the last output of a cipher, the
// signature or digest, or for FnVerify the check of sig.
func (d *Device) Finish(sid SessionID, id OpID, sig []byte) ([]byte, error) {
	out, _, err := d.FinishIV(sid, id, sig)
	return out, err
}

// FinishIV is Finish that also returns the IV the device generated for a
// multi-part AES-GCM encryption (as EncryptIV says), nil otherwise. GCM
// encrypts at Finish, so that is when the IV is chosen.
func (d *Device) FinishIV(sid SessionID, id OpID, sig []byte) (out, iv []byte, err error) {
	s, oper, err := d.operation(sid, id)
	if err != nil {
		return nil, nil, err
	}
	d.endOp(s, id)
	op := fnOps[oper.fn]
	oper.mu.Lock()
	if err = d.stillMayUse(sid, oper); err == nil {
		out, err = oper.final(nil, sig)
		iv = oper.iv
	} else {
		oper.end()
	}
	oper.mu.Unlock()
	_, p, _ := d.whoami(sid)
	var obj ObjectID
	if oper.key != nil {
		obj = oper.key.id
	}
	if oper.fn != FnDigest {
		d.audit(sid, p, op, obj, "", err)
	}
	if err != nil {
		return nil, nil, &Error{Op: op, Err: err}
	}
	return out, iv, nil
}

// Abort ends a multi-part operation without a result.
func (d *Device) Abort(sid SessionID, id OpID) error {
	s, oper, err := d.operation(sid, id)
	if err != nil {
		return err
	}
	d.endOp(s, id)
	oper.mu.Lock()
	oper.end()
	oper.mu.Unlock()
	return nil
}

func (d *Device) operation(sid SessionID, id OpID) (*session, *operation, error) {
	s, err := d.session(sid)
	if err != nil {
		return nil, nil, &Error{Op: "operation", Err: err}
	}
	s.mu.Lock()
	oper := s.ops[id]
	s.mu.Unlock()
	if oper == nil {
		return nil, nil, &Error{Op: "operation", Err: ErrOperationNotInit}
	}
	return s, oper, nil
}

func (d *Device) endOp(s *session, id OpID) {
	s.mu.Lock()
	if _, ok := s.ops[id]; ok {
		delete(s.ops, id)
		d.ops.n.Add(-1)
	}
	s.mu.Unlock()
}

// GenerateRandom returns n random bytes. It needs a session, not a login.
func (d *Device) GenerateRandom(sid SessionID, n int) ([]byte, error) {
	if _, err := d.session(sid); err != nil {
		return nil, &Error{Op: "random", Err: err}
	}
	if n < 0 || n > 1<<20 {
		return nil, opErr("random", ErrArgumentsBad, "%d bytes (at most 1 MiB per call)", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(d.cfg.Rand, b); err != nil {
		return nil, opErr("random", ErrDevice, "%v", err)
	}
	return b, nil
}
