package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
	"github.com/coffer-hsm/coffer/internal/testwait"
	"github.com/miekg/pkcs11"
)

// PKCS#11's rules as an application sees them through miekg/pkcs11:
// attributes, operation state, login and object lifetimes.

func randomName(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func TestMiekgAttributes(t *testing.T) {
	l := coffer(t)
	x := &mechTest{l: l, s: l.session(t), used: map[uint]bool{}}
	sensitive, err := l.ctx.GenerateKey(x.s, mech(pkcs11.CKM_AES_KEY_GEN, nil), []*pkcs11.Attribute{
		attr(pkcs11.CKA_VALUE_LEN, 32), attr(pkcs11.CKA_TOKEN, false),
		attr(pkcs11.CKA_SENSITIVE, true), attr(pkcs11.CKA_EXTRACTABLE, false), attr(pkcs11.CKA_ENCRYPT, true),
	})
	must(t, "C_GenerateKey", err)
	value := []byte("sixteen byte key")
	plain, err := l.ctx.CreateObject(x.s, []*pkcs11.Attribute{
		attr(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY), attr(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES), attr(pkcs11.CKA_VALUE, value),
		attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_SENSITIVE, false), attr(pkcs11.CKA_EXTRACTABLE, true),
	})
	must(t, "C_CreateObject", err)
	label := bytes.Repeat([]byte("a long label "), 20)

	t.Run("sensitive value", func(t *testing.T) {
		_, err := l.ctx.GetAttributeValue(x.s, sensitive, []*pkcs11.Attribute{attr(pkcs11.CKA_VALUE, nil)})
		wantRV(t, "CKA_VALUE of a sensitive key", err, pkcs11.CKR_ATTRIBUTE_SENSITIVE)
		_, err = l.ctx.GetAttributeValue(x.s, sensitive, []*pkcs11.Attribute{attr(pkcs11.CKA_VALUE_LEN, nil), attr(pkcs11.CKA_VALUE, nil)})
		wantRV(t, "CKA_VALUE_LEN and CKA_VALUE of a sensitive key", err, pkcs11.CKR_ATTRIBUTE_SENSITIVE)
		for typ, want := range map[uint][]byte{
			pkcs11.CKA_VALUE_LEN: ulong(32), pkcs11.CKA_SENSITIVE: {1}, pkcs11.CKA_ALWAYS_SENSITIVE: {1},
			pkcs11.CKA_EXTRACTABLE: {0}, pkcs11.CKA_NEVER_EXTRACTABLE: {1}, pkcs11.CKA_KEY_TYPE: ulong(pkcs11.CKK_AES),
		} {
			if got := x.get(t, sensitive, typ); !bytes.Equal(got, want) {
				t.Errorf("attribute %#x = %x, want %x", typ, got, want)
			}
		}
	})
	t.Run("length query", func(t *testing.T) {
		// miekg asks each length with a NULL pValue, then fetches.
		if got := x.get(t, plain, pkcs11.CKA_VALUE); !bytes.Equal(got, value) {
			t.Errorf("CKA_VALUE = %x, want %x", got, value)
		}
		must(t, "C_SetAttributeValue CKA_LABEL", l.ctx.SetAttributeValue(x.s, plain, []*pkcs11.Attribute{attr(pkcs11.CKA_LABEL, label)}))
		if got := x.get(t, plain, pkcs11.CKA_LABEL); !bytes.Equal(got, label) {
			t.Errorf("CKA_LABEL = %q, want %q", got, label)
		}
	})
	t.Run("unknown type", func(t *testing.T) {
		_, err := l.ctx.GetAttributeValue(x.s, plain, []*pkcs11.Attribute{attr(pkcs11.CKA_LABEL, nil), attr(0x7fff0001, nil)})
		wantRV(t, "an unknown attribute type", err, pkcs11.CKR_ATTRIBUTE_TYPE_INVALID)
	})
	t.Run("sensitive stays", func(t *testing.T) {
		err := l.ctx.SetAttributeValue(x.s, sensitive, []*pkcs11.Attribute{attr(pkcs11.CKA_SENSITIVE, false)})
		wantRV(t, "setting CKA_SENSITIVE false", err, pkcs11.CKR_ATTRIBUTE_READ_ONLY)
	})
	t.Run("bad handles", func(t *testing.T) {
		_, err := l.ctx.GetAttributeValue(x.s, 0x7ffffff0, []*pkcs11.Attribute{attr(pkcs11.CKA_LABEL, nil)})
		wantRV(t, "an unknown object handle", err, pkcs11.CKR_OBJECT_HANDLE_INVALID)
		_, err = l.ctx.GetAttributeValue(0x7ffffff0, plain, []*pkcs11.Attribute{attr(pkcs11.CKA_LABEL, nil)})
		wantRV(t, "an unknown session handle", err, pkcs11.CKR_SESSION_HANDLE_INVALID)
	})
}

func TestMiekgOperationState(t *testing.T) {
	l := coffer(t)
	x := &mechTest{l: l, s: l.session(t), used: map[uint]bool{}}
	key := x.secret(t, pkcs11.CKK_AES, []byte("sixteen byte key"))
	ecb := mech(pkcs11.CKM_AES_ECB, nil)
	block := make([]byte, 16)
	c := l.ctx

	must(t, "C_EncryptInit", c.EncryptInit(x.s, ecb, key))
	wantRV(t, "a second C_EncryptInit", c.EncryptInit(x.s, ecb, key), pkcs11.CKR_OPERATION_ACTIVE)
	_, err := c.Encrypt(x.s, block)
	must(t, "C_Encrypt", err)
	_, err = c.Encrypt(x.s, block)
	wantRV(t, "C_Encrypt after the operation ended", err, pkcs11.CKR_OPERATION_NOT_INITIALIZED)

	must(t, "C_EncryptInit", c.EncryptInit(x.s, ecb, key))
	_, err = c.EncryptUpdate(x.s, block)
	must(t, "C_EncryptUpdate", err)
	_, err = c.Encrypt(x.s, block)
	wantRV(t, "C_Encrypt during a multi-part encryption", err, pkcs11.CKR_OPERATION_ACTIVE)
	_, err = c.EncryptFinal(x.s)
	must(t, "C_EncryptFinal", err)

	for name, fn := range map[string]func() error{
		"C_Decrypt":       func() error { _, err := c.Decrypt(x.s, block); return err },
		"C_DecryptUpdate": func() error { _, err := c.DecryptUpdate(x.s, block); return err },
		"C_SignUpdate":    func() error { return c.SignUpdate(x.s, block) },
		"C_SignFinal":     func() error { _, err := c.SignFinal(x.s); return err },
		"C_Verify":        func() error { return c.Verify(x.s, block, block) },
		"C_VerifyFinal":   func() error { return c.VerifyFinal(x.s, block) },
		"C_DigestUpdate":  func() error { return c.DigestUpdate(x.s, block) },
		"C_DigestFinal":   func() error { _, err := c.DigestFinal(x.s); return err },
		"C_FindObjects":   func() error { _, _, err := c.FindObjects(x.s, 1); return err },
	} {
		wantRV(t, name+" without Init", fn(), pkcs11.CKR_OPERATION_NOT_INITIALIZED)
	}
	must(t, "C_FindObjectsInit", c.FindObjectsInit(x.s, nil))
	wantRV(t, "a second C_FindObjectsInit", c.FindObjectsInit(x.s, nil), pkcs11.CKR_OPERATION_ACTIVE)
	must(t, "C_FindObjectsFinal", c.FindObjectsFinal(x.s))

	wantRV(t, "C_DigestInit with an AES mechanism", c.DigestInit(x.s, ecb), pkcs11.CKR_MECHANISM_INVALID)
	wantRV(t, "C_EncryptInit with an unknown key", c.EncryptInit(x.s, ecb, 0x7ffffff0), pkcs11.CKR_KEY_HANDLE_INVALID)
	noSign, err := c.GenerateKey(x.s, mech(pkcs11.CKM_AES_KEY_GEN, nil), []*pkcs11.Attribute{
		attr(pkcs11.CKA_VALUE_LEN, 16), attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_SIGN, false),
	})
	must(t, "C_GenerateKey", err)
	err = c.SignInit(x.s, mech(pkcs11.CKM_AES_CMAC, nil), noSign)
	if err == nil {
		_, err = c.Sign(x.s, block)
	}
	wantRV(t, "CMAC with a key without CKA_SIGN", err, pkcs11.CKR_KEY_FUNCTION_NOT_PERMITTED)
}

// clusterOf dials the test cluster, or only the HSMs given.
func clusterOf(t *testing.T, hsms ...string) *client.Cluster {
	t.Helper()
	f, err := client.ReadFile(env.config)
	must(t, "read the library's configuration", err)
	if len(hsms) > 0 {
		f.HSMs, f.CreateObjectMinimumNodes = hsms, 1
	}
	cfg, err := f.Config(nil)
	must(t, "client configuration", err)
	cl, err := client.Dial(t.Context(), cfg)
	must(t, "dial the cluster", err)
	t.Cleanup(func() { cl.Close() })
	return cl
}

// eventually retries fn until it succeeds or 30 s pass.
func eventually(t *testing.T, what string, fn func() error) {
	t.Helper()
	if err := testwait.Eventually(t.Context(), 30*time.Second, 50*time.Millisecond, fn); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// createUser creates a crypto user through internal/client and waits until
// every HSM knows it.
func createUser(t *testing.T, name, password string) {
	t.Helper()
	admin, err := clusterOf(t).Login(t.Context(), "admin", "admin", adminPass)
	must(t, "admin login", err)
	defer admin.Close(context.Background())
	must(t, "create user", admin.CreateUser(t.Context(), name, "crypto-user", password, nil))
	f, err := client.ReadFile(env.config)
	must(t, "read the library's configuration", err)
	for _, hsm := range f.HSMs {
		one := clusterOf(t, hsm)
		eventually(t, "user "+name+" on HSM "+hsm, func() error {
			s, err := one.Login(t.Context(), "crypto-user", name, password)
			if err == nil {
				s.Close(t.Context())
			}
			return err
		})
	}
}

// TestMiekgLogin logs the library out and in: not logged in, wrong PINs,
// a PIN locked by failures (of a throwaway user, so the package's user
// stays usable), then the package's user again.
func TestMiekgLogin(t *testing.T) {
	l := coffer(t)
	s := l.session(t)
	c := l.ctx
	wantRV(t, "C_Login when logged in", c.Login(s, pkcs11.CKU_USER, userPIN), pkcs11.CKR_USER_ALREADY_LOGGED_IN)
	must(t, "C_Logout", c.Logout(s))
	t.Cleanup(func() {
		if err := c.Login(l.anchor, pkcs11.CKU_USER, userPIN); rvOf(err) != pkcs11.CKR_USER_ALREADY_LOGGED_IN {
			must(t, "C_Login again", err)
		}
	})
	wantRV(t, "C_Logout when logged out", c.Logout(s), pkcs11.CKR_USER_NOT_LOGGED_IN)
	if si, err := c.GetSessionInfo(s); err != nil || si.State != pkcs11.CKS_RW_PUBLIC_SESSION {
		t.Errorf("C_GetSessionInfo logged out: %+v, %v", si, err)
	}
	_, err := c.GenerateKey(s, mech(pkcs11.CKM_AES_KEY_GEN, nil), []*pkcs11.Attribute{attr(pkcs11.CKA_VALUE_LEN, 16)})
	wantRV(t, "C_GenerateKey logged out", err, pkcs11.CKR_USER_NOT_LOGGED_IN)
	must(t, "C_FindObjectsInit logged out", c.FindObjectsInit(s, nil))
	if found, _, err := c.FindObjects(s, 10); err != nil || len(found) != 0 {
		t.Errorf("C_FindObjects logged out: %v, %v; want nothing", found, err)
	}
	must(t, "C_FindObjectsFinal", c.FindObjectsFinal(s))

	user, pass := randomName("locked-"), "a-good-password-1"
	createUser(t, user, pass)
	for _, pin := range []string{user + ":wrong-password", "no-colon", randomName("nobody-") + ":" + pass, ":" + pass} {
		wantRV(t, "C_Login "+pin, c.Login(s, pkcs11.CKU_USER, pin), pkcs11.CKR_PIN_INCORRECT)
	}
	// Wrong PINs until the library answers CKR_PIN_LOCKED, then until
	// every HSM does (failures count on each HSM and replicate).
	locked := false
	for range 30 {
		if err := c.Login(s, pkcs11.CKU_USER, user+":wrong-password"); rvOf(err) == pkcs11.CKR_PIN_LOCKED {
			locked = true
			break
		} else {
			wantRV(t, "C_Login with a wrong password", err, pkcs11.CKR_PIN_INCORRECT)
		}
	}
	if !locked {
		t.Fatal("30 wrong PINs did not lock the user")
	}
	f, err := client.ReadFile(env.config)
	must(t, "read the library's configuration", err)
	for _, hsm := range f.HSMs {
		one := clusterOf(t, hsm)
		eventually(t, "locked on HSM "+hsm, func() error {
			_, err := one.Login(t.Context(), "crypto-user", user, "wrong-password")
			if client.Code(err) == ck.CKR_PIN_LOCKED {
				return nil
			}
			return errors.Join(errors.New("not locked yet"), err)
		})
	}
	wantRV(t, "C_Login with the right PIN of a locked user", c.Login(s, pkcs11.CKU_USER, user+":"+pass), pkcs11.CKR_PIN_LOCKED)

	must(t, "C_Login", c.Login(s, pkcs11.CKU_USER, userPIN))
	if si, err := c.GetSessionInfo(l.anchor); err != nil || si.State != pkcs11.CKS_RW_USER_FUNCTIONS {
		t.Errorf("C_GetSessionInfo of another session after C_Login: %+v, %v", si, err)
	}
}

// find returns the objects with a label.
func find(t *testing.T, c *pkcs11.Ctx, s pkcs11.SessionHandle, label string) []pkcs11.ObjectHandle {
	t.Helper()
	must(t, "C_FindObjectsInit", c.FindObjectsInit(s, []*pkcs11.Attribute{attr(pkcs11.CKA_LABEL, label)}))
	defer c.FindObjectsFinal(s)
	found, _, err := c.FindObjects(s, 100)
	must(t, "C_FindObjects", err)
	return found
}

// TestMiekgObjectLifetimes: a session object is seen by the application's
// other sessions and goes with its session; a token object stays, in the
// cluster, for other applications.
func TestMiekgObjectLifetimes(t *testing.T) {
	l := coffer(t)
	c := l.ctx
	s1, err := c.OpenSession(l.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	must(t, "C_OpenSession", err)
	defer c.CloseSession(s1)
	s2 := l.session(t)
	sessLabel, tokLabel := randomName("session-object-"), randomName("token-object-")
	keyGen := func(s pkcs11.SessionHandle, label string, token bool) (pkcs11.ObjectHandle, error) {
		return c.GenerateKey(s, mech(pkcs11.CKM_AES_KEY_GEN, nil), []*pkcs11.Attribute{
			attr(pkcs11.CKA_VALUE_LEN, 32), attr(pkcs11.CKA_TOKEN, token), attr(pkcs11.CKA_LABEL, label),
		})
	}
	sess, err := keyGen(s1, sessLabel, false)
	must(t, "C_GenerateKey session object", err)
	tok, err := keyGen(s1, tokLabel, true)
	must(t, "C_GenerateKey token object", err)
	t.Cleanup(func() { _ = c.DestroyObject(s2, tok) })

	ro, err := c.OpenSession(l.slot, pkcs11.CKF_SERIAL_SESSION)
	must(t, "C_OpenSession read-only", err)
	defer c.CloseSession(ro)
	_, err = keyGen(ro, tokLabel, true)
	wantRV(t, "a token object in a read-only session", err, pkcs11.CKR_SESSION_READ_ONLY)
	roKey, err := keyGen(ro, sessLabel+"-ro", false)
	must(t, "a session object in a read-only session", err)
	wantRV(t, "destroying a token object in a read-only session", c.DestroyObject(ro, tok), pkcs11.CKR_SESSION_READ_ONLY)
	must(t, "destroying a session object in a read-only session", c.DestroyObject(ro, roKey))

	for label, want := range map[string]pkcs11.ObjectHandle{sessLabel: sess, tokLabel: tok} {
		if got := find(t, c, s2, label); len(got) != 1 || got[0] != want {
			t.Errorf("another session finds %v for %s, want [%d]", got, label, want)
		}
	}
	if got := (&mechTest{l: l, s: s2}).get(t, sess, pkcs11.CKA_TOKEN); !bytes.Equal(got, []byte{0}) {
		t.Errorf("session object CKA_TOKEN = %x", got)
	}

	// Another application (a separate login) sees the token object only.
	other, err := clusterOf(t).Login(t.Context(), "crypto-user", cuUser, cuPass)
	must(t, "client login", err)
	defer other.Close(context.Background())
	for label, want := range map[string]int{sessLabel: 0, tokLabel: 1} {
		ids, err := other.FindObjects(t.Context(), []client.Attribute{{Type: ck.CKA_LABEL, Value: []byte(label)}})
		must(t, "client find", err)
		if len(ids) != want {
			t.Errorf("another application finds %d objects labelled %s, want %d", len(ids), label, want)
		}
	}

	must(t, "C_CloseSession", c.CloseSession(s1))
	if got := find(t, c, s2, sessLabel); len(got) != 0 {
		t.Errorf("the session object outlived its session: found %v", got)
	}
	_, err = c.GetAttributeValue(s2, sess, []*pkcs11.Attribute{attr(pkcs11.CKA_LABEL, nil)})
	wantRV(t, "the closed session's object", err, pkcs11.CKR_OBJECT_HANDLE_INVALID)
	if got := find(t, c, s2, tokLabel); len(got) != 1 || got[0] != tok {
		t.Errorf("the token object after its session closed: found %v, want [%d]", got, tok)
	}
}

// TestSessionObjectsTogether wraps session keys with a session key: the
// client keeps a session's session objects on the HSM where the first was
// made, so any two of them can be used together.
func TestSessionObjectsTogether(t *testing.T) {
	l := coffer(t)
	x := &mechTest{l: l, s: l.session(t), used: map[uint]bool{}}
	kek := x.secret(t, pkcs11.CKK_AES, bytes.Repeat([]byte{7}, 32))
	for i := range 6 {
		key := x.aesKey(t, false)
		wrapped, err := l.ctx.WrapKey(x.s, mech(pkcs11.CKM_AES_KEY_WRAP_PAD, nil), kek, key)
		must(t, fmt.Sprintf("C_WrapKey of session key %d with the session KEK", i), err)
		if len(wrapped) != 40 {
			t.Fatalf("wrapped %d bytes, want 40", len(wrapped))
		}
	}
}
