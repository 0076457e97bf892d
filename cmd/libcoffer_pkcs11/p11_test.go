package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/pkcs11"
)

// The Go tests and benchmarks load a PKCS#11 library into this test process
// through github.com/miekg/pkcs11, as a Go application would: the Coffer
// library built by TestMain, and SoftHSMv2 for the benchmark's yardstick.
// A library is loaded and initialized once per process and never unloaded
// (dlclose of a Go c-shared library is not supported); one session, opened
// at load and logged in, is kept open so that the login lasts (closing the
// last session logs a token out).

// loaded is one initialized PKCS#11 library with a logged-in slot.
type loaded struct {
	ctx    *pkcs11.Ctx
	slot   uint
	pin    string
	anchor pkcs11.SessionHandle // the session that keeps the login
}

// loadPKCS11 loads a library, initializes it and logs in as CKU_USER on the
// slot whose token has the label given (the first slot with a token if
// label is empty). env is set first (libraries read it when they are loaded
// or initialized).
func loadPKCS11(path, label, pin string, env map[string]string) (*loaded, error) {
	for k, v := range env {
		if err := os.Setenv(k, v); err != nil {
			return nil, err
		}
	}
	ctx := pkcs11.New(path)
	if ctx == nil {
		return nil, fmt.Errorf("cannot load %s", path)
	}
	if err := ctx.Initialize(); err != nil {
		return nil, fmt.Errorf("%s: C_Initialize: %w", path, err)
	}
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		return nil, fmt.Errorf("%s: C_GetSlotList: %w", path, err)
	}
	l := &loaded{ctx: ctx, pin: pin}
	found := false
	for _, id := range slots {
		ti, err := ctx.GetTokenInfo(id)
		if err != nil {
			return nil, fmt.Errorf("%s: C_GetTokenInfo: %w", path, err)
		}
		if label == "" || strings.TrimRight(ti.Label, " ") == label {
			l.slot, found = id, true
			break
		}
	}
	if !found {
		return nil, fmt.Errorf("%s: no token labelled %q in slots %v", path, label, slots)
	}
	l.anchor, err = ctx.OpenSession(l.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return nil, fmt.Errorf("%s: C_OpenSession: %w", path, err)
	}
	if err := ctx.Login(l.anchor, pkcs11.CKU_USER, pin); err != nil {
		return nil, fmt.Errorf("%s: C_Login: %w", path, err)
	}
	return l, nil
}

// cofferLib is libcoffer_pkcs11.so in this process, logged in as the
// package's crypto user.
var cofferLib struct {
	once sync.Once
	l    *loaded
	err  error
}

// coffer returns the loaded Coffer library; it fails the test if the
// cluster or the library is not there.
func coffer(tb testing.TB) *loaded {
	tb.Helper()
	if env.err != nil {
		tb.Fatalf("test cluster: %v", env.err)
	}
	cofferLib.once.Do(func() {
		cofferLib.l, cofferLib.err = loadPKCS11(env.lib, "", userPIN, map[string]string{"COFFER_PKCS11_CONFIG": env.config})
	})
	if cofferLib.err != nil {
		tb.Fatalf("load the Coffer library: %v\n--- library log tail:\n%s", cofferLib.err, logTail())
	}
	return cofferLib.l
}

// session opens a read/write session closed at the end of the test.
func (l *loaded) session(tb testing.TB) pkcs11.SessionHandle {
	tb.Helper()
	s, err := l.ctx.OpenSession(l.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		tb.Fatalf("C_OpenSession: %v", err)
	}
	tb.Cleanup(func() { _ = l.ctx.CloseSession(s) })
	return s
}

// rvOf is the CKR_* code of a miekg error, or CKR_OK for nil.
func rvOf(err error) pkcs11.Error {
	var e pkcs11.Error
	if errors.As(err, &e) {
		return e
	}
	if err == nil {
		return pkcs11.CKR_OK
	}
	return pkcs11.CKR_GENERAL_ERROR
}

// wantRV fails the test unless err carries rv.
func wantRV(tb testing.TB, what string, err error, rv pkcs11.Error) {
	tb.Helper()
	if got := rvOf(err); got != rv {
		tb.Errorf("%s: %v, want %v", what, err, rv)
	}
}

// must fails the test now on an error.
func must(tb testing.TB, what string, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
}

func attr(t uint, v any) *pkcs11.Attribute { return pkcs11.NewAttribute(t, v) }

func mech(t uint, param any) []*pkcs11.Mechanism {
	return []*pkcs11.Mechanism{pkcs11.NewMechanism(t, param)}
}
