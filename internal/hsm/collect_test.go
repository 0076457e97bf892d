package hsm

import (
	"runtime"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/ck"
)

// Finding 7: a one-shot mechanism collects at most MaxCollectedInput
// bytes per operation, and an over-long Update ends the operation.
func TestOneShotUpdateBounded(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	k := makeKeys(t, td, alice)
	for _, c := range []struct {
		name string
		fn   Function
		key  ObjectID
		m    Mechanism
	}{
		{"AES-GCM encrypt", FnEncrypt, k.aes, gcm12},
		{"AES-GCM decrypt", FnDecrypt, k.aes, gcm12},
		{"AES-KW", FnEncrypt, k.aes, kw},
		{"AES-KWP", FnDecrypt, k.aes, kwp},
		{"RSA PKCS#1 raw sign", FnSign, k.rsaPriv, Mechanism{Type: ck.CKM_RSA_PKCS}},
		{"RSA-OAEP", FnEncrypt, k.rsaPub, oaep256},
		{"ECDSA raw", FnVerify, k.ecPub, Mechanism{Type: ck.CKM_ECDSA}},
		{"EdDSA", FnSign, k.edPriv, Mechanism{Type: ck.CKM_EDDSA}},
	} {
		t.Run(c.name, func(t *testing.T) {
			op := must[OpID](t)(td.Begin(alice, c.fn, c.key, c.m))
			chunk := make([]byte, MaxCollectedInput/4)
			for range 4 {
				if _, err := td.Update(alice, op, chunk); err != nil {
					t.Fatalf("update within the limit: %v", err)
				}
			}
			_, err := td.Update(alice, op, []byte{1})
			wantErr(t, err, ErrDataLenRange)
			// PKCS#11: an error in Update ends the operation.
			_, err = td.Update(alice, op, []byte{1})
			wantErr(t, err, ErrOperationNotInit)
			_, err = td.Finish(alice, op, nil)
			wantErr(t, err, ErrOperationNotInit)
			if n := td.collect.used.Load(); n != 0 {
				t.Fatalf("%d bytes still held after the refusal", n)
			}
			op = must[OpID](t)(td.Begin(alice, c.fn, c.key, c.m))
			if err := td.Abort(alice, op); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Finding 7 (many operations): what all operations of the device collect
// together is bounded too, and given back when they end, however they end.
func TestCollectedInputDeviceBound(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	key := genAES(t, td, alice, "k")
	td.collect.max = 3 * MaxCollectedInput / 2
	chunk := make([]byte, MaxCollectedInput/2)

	sessions := make([]SessionID, 4)
	ops := make([]OpID, 4)
	for i := range sessions {
		sessions[i] = td.OpenSession()
		if err := td.Login(t.Context(), sessions[i], RoleCryptoUser, "alice", cuPW); err != nil {
			t.Fatal(err)
		}
		ops[i] = must[OpID](t)(td.Begin(sessions[i], FnEncrypt, key, gcm12))
	}
	for i := range 3 {
		if _, err := td.Update(sessions[i], ops[i], chunk); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
	}
	_, err := td.Update(sessions[3], ops[3], chunk)
	wantErr(t, err, ErrCollectMemory)

	// Finish gives its share back; so does a closed session, once its
	// operation is collected.
	if _, err := td.Finish(sessions[0], ops[0], nil); err != nil {
		t.Fatal(err)
	}
	if err := td.CloseSession(sessions[1]); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for td.collect.used.Load() > int64(len(chunk)) {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes still held after Finish and CloseSession", td.collect.used.Load())
		}
		runtime.GC()
		runtime.Gosched()
	}
	ops[3] = must[OpID](t)(td.Begin(sessions[3], FnEncrypt, key, gcm12))
	if _, err := td.Update(sessions[3], ops[3], chunk); err != nil {
		t.Fatalf("after the budget came back: %v", err)
	}
}
