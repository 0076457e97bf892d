//go:build cgo

package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/miekg/pkcs11"

	"github.com/coffer-hsm/coffer/internal/ck"
)

// PKCS11Config opens a PKCS#11 module.
type PKCS11Config struct {
	Path string // the library
	PIN  string // C_Login's PIN as CKU_USER (Coffer and CloudHSM: USER:PASSWORD)
	Slot *uint  // nil: the first slot with an initialized token
}

// PKCS11Target runs operations through a PKCS#11 module loaded into this
// process: C_Login once, then one session of its own per thread (as an
// application does), each C_SignInit+C_Sign or C_EncryptInit+C_Encrypt one
// operation. Session keys are made in a session that stays open for the
// run, so every thread's session can use them.
type PKCS11Target struct {
	cfg    PKCS11Config
	ctx    *pkcs11.Ctx
	slot   uint
	anchor pkcs11.SessionHandle
	desc   string
	mu     sync.Mutex // guards the anchor session's use by Prepare and Close
}

// PKCS#11 calls cannot be interrupted: ctx is checked before each call,
// and the engine's bound ends the run if one never returns.

// OpenPKCS11 loads the module, picks the slot and logs in.
func OpenPKCS11(cfg PKCS11Config) (*PKCS11Target, error) {
	p := pkcs11.New(cfg.Path)
	if p == nil {
		return nil, fmt.Errorf("loading the PKCS#11 module %s failed", cfg.Path)
	}
	t := &PKCS11Target{cfg: cfg, ctx: p}
	if err := p.Initialize(); err != nil {
		p.Destroy()
		return nil, fmt.Errorf("%s: C_Initialize: %w", cfg.Path, err)
	}
	if err := t.open(); err != nil {
		_ = p.Finalize()
		p.Destroy()
		return nil, err
	}
	return t, nil
}

func (t *PKCS11Target) open() error {
	p := t.ctx
	slots, err := p.GetSlotList(true)
	if err != nil {
		return fmt.Errorf("C_GetSlotList: %w", err)
	}
	switch {
	case t.cfg.Slot != nil:
		found := false
		for _, s := range slots {
			found = found || s == *t.cfg.Slot
		}
		if !found {
			return fmt.Errorf("slot %d has no token (slots with one: %v)", *t.cfg.Slot, slots)
		}
		t.slot = *t.cfg.Slot
	default:
		// The first slot whose token is initialized (SoftHSMv2 also lists
		// an empty one).
		found := false
		for _, s := range slots {
			if ti, err := p.GetTokenInfo(s); err == nil && ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED != 0 {
				t.slot, found = s, true
				break
			}
		}
		if !found {
			return fmt.Errorf("no slot has an initialized token (slots with a token: %v)", slots)
		}
	}
	var lib, tok string
	if info, err := p.GetInfo(); err == nil {
		lib = joinNames(info.ManufacturerID, info.LibraryDescription)
	}
	if ti, err := p.GetTokenInfo(t.slot); err == nil {
		tok = fmt.Sprintf("token %q (%s)", strings.TrimSpace(ti.Label), joinNames(ti.ManufacturerID, ti.Model))
	}
	t.desc = fmt.Sprintf("PKCS#11 module %s [%s], slot %d, %s", t.cfg.Path, lib, t.slot, tok)
	s, err := p.OpenSession(t.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return fmt.Errorf("C_OpenSession: %w", err)
	}
	if err := p.Login(s, pkcs11.CKU_USER, t.cfg.PIN); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)) {
		_ = p.CloseSession(s)
		return fmt.Errorf("C_Login: %w", err)
	}
	t.anchor = s
	return nil
}

// joinNames joins a manufacturer and a product name, once if the product
// already starts with the manufacturer's.
func joinNames(maker, product string) string {
	maker, product = strings.TrimSpace(maker), strings.TrimSpace(product)
	if maker == "" || strings.HasPrefix(product, maker) {
		return product
	}
	return strings.TrimSpace(maker + " " + product)
}

// Close logs out and unloads the module. Every Workload must be closed
// first.
func (t *PKCS11Target) Close() error {
	err := errors.Join(t.ctx.Logout(t.anchor), t.ctx.CloseSession(t.anchor))
	err = errors.Join(err, t.ctx.Finalize())
	t.ctx.Destroy()
	return err
}

// Describe names the module, slot and token.
func (t *PKCS11Target) Describe(context.Context) TargetInfo {
	slot := t.slot
	return TargetInfo{Kind: "pkcs11", Description: t.desc, Module: t.cfg.Path, Slot: &slot}
}

func p11Attrs(as []attr) []*pkcs11.Attribute {
	out := make([]*pkcs11.Attribute, 0, len(as))
	for _, a := range as {
		v := a.val
		if u, ok := v.(uint64); ok {
			v = uint(u) // CK_ULONG, the module's own size
		}
		out = append(out, pkcs11.NewAttribute(uint(a.typ), v))
	}
	return out
}

// generate makes spec's key (pair) in session s; it returns every object
// made and the private or secret key.
func (t *PKCS11Target) generate(s pkcs11.SessionHandle, spec KeySpec, token bool) ([]pkcs11.ObjectHandle, pkcs11.ObjectHandle, error) {
	kt, err := template(spec, token)
	if err != nil {
		return nil, 0, err
	}
	m := []*pkcs11.Mechanism{pkcs11.NewMechanism(uint(kt.mech), nil)}
	if kt.pub == nil {
		k, err := t.ctx.GenerateKey(s, m, p11Attrs(kt.priv))
		if err != nil {
			return nil, 0, fmt.Errorf("C_GenerateKey: %w", err)
		}
		return []pkcs11.ObjectHandle{k}, k, nil
	}
	pub, priv, err := t.ctx.GenerateKeyPair(s, m, p11Attrs(kt.pub), p11Attrs(kt.priv))
	if err != nil {
		return nil, 0, fmt.Errorf("C_GenerateKeyPair: %w", err)
	}
	return []pkcs11.ObjectHandle{pub, priv}, priv, nil
}

// destroy destroys objs in s and returns those it could not destroy.
func (t *PKCS11Target) destroy(ctx context.Context, s pkcs11.SessionHandle, objs []pkcs11.ObjectHandle) ([]pkcs11.ObjectHandle, error) {
	var errs []error
	for i, o := range objs {
		if err := ctx.Err(); err != nil {
			return objs[i:], errors.Join(append(errs, err)...)
		}
		if err := t.ctx.DestroyObject(s, o); err != nil {
			errs = append(errs, fmt.Errorf("C_DestroyObject %d: %w", o, err))
		}
	}
	return nil, errors.Join(errs...)
}

// Prepare makes op's key in the session that stays open.
func (t *PKCS11Target) Prepare(ctx context.Context, op Op, tokenKeys bool) (Workload, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w := &p11Workload{t: t, op: op, token: op.Keys(tokenKeys) == "token", ivs: newIVSource(), data: make([]byte, op.Data)}
	if op.Kind == KindSign || op.Kind == KindEncrypt {
		t.mu.Lock()
		made, key, err := t.generate(t.anchor, op.Key, w.token)
		t.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("generating the key: %w", err)
		}
		w.made, w.key = made, key
	}
	return w, nil
}

type p11Workload struct {
	t     *PKCS11Target
	op    Op
	token bool
	ivs   *ivSource
	data  []byte
	made  []pkcs11.ObjectHandle
	key   pkcs11.ObjectHandle
}

func (w *p11Workload) Worker(ctx context.Context, threads int) (Worker, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s, err := w.t.ctx.OpenSession(w.t.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return nil, fmt.Errorf("C_OpenSession: %w", err)
	}
	return &p11Worker{w: w, s: s, limit: backlog(threads)}, nil
}

func (w *p11Workload) Close(ctx context.Context) error {
	w.t.mu.Lock()
	defer w.t.mu.Unlock()
	var err error
	w.made, err = w.t.destroy(ctx, w.t.anchor, w.made)
	return err
}

type p11Worker struct {
	w     *p11Workload
	s     pkcs11.SessionHandle
	made  []pkcs11.ObjectHandle
	limit int
}

func (k *p11Worker) Do(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	w, c := k.w, k.w.t.ctx
	switch w.op.Kind {
	case KindSign, KindEncrypt:
		p := w.ivs.params(w.op)
		var mp any
		var gcm *pkcs11.GCMParams
		switch {
		case p.pss:
			mp = pkcs11.NewPSSParams(uint(ck.CKM_SHA256), uint(ck.CKG_MGF1_SHA256), 32)
		case p.tagBits != 0:
			gcm = pkcs11.NewGCMParams(p.iv, nil, int(p.tagBits))
			defer gcm.Free()
			mp = gcm
		case p.iv != nil:
			mp = p.iv
		}
		m := []*pkcs11.Mechanism{pkcs11.NewMechanism(uint(w.op.Mech), mp)}
		if w.op.Kind == KindSign {
			if err := c.SignInit(k.s, m, w.key); err != nil {
				return fmt.Errorf("C_SignInit: %w", err)
			}
			if _, err := c.Sign(k.s, w.data); err != nil {
				return fmt.Errorf("C_Sign: %w", err)
			}
			return nil
		}
		if err := c.EncryptInit(k.s, m, w.key); err != nil {
			return fmt.Errorf("C_EncryptInit: %w", err)
		}
		if _, err := c.Encrypt(k.s, w.data); err != nil {
			return fmt.Errorf("C_Encrypt: %w", err)
		}
		return nil
	}
	made, _, err := w.t.generate(k.s, w.op.Key, w.token)
	k.made = append(k.made, made...)
	return err
}

// Tidy destroys the objects made so far once there are k.limit.
func (k *p11Worker) Tidy(ctx context.Context) error {
	if len(k.made) < k.limit {
		return nil
	}
	var err error
	k.made, err = k.w.t.destroy(ctx, k.s, k.made)
	return err
}

// Close destroys the objects made and closes the thread's session.
func (k *p11Worker) Close(ctx context.Context) error {
	var err error
	k.made, err = k.w.t.destroy(ctx, k.s, k.made)
	return errors.Join(err, k.w.t.ctx.CloseSession(k.s))
}
