package hsm

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"sync"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
)

// TestHMACPoolConcurrent: single-part HMACs reuse the key's keyed states
// (hmacs.go). Many at once, with failed verifications and truncated
// _GENERAL MACs between them, each still gives the MAC of its own message
// alone: a state goes back reset, and to one user at a time.
func TestHMACPoolConcurrent(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	secret := []byte("a generic secret of thirty-two b")
	key := must[ObjectID](t)(td.CreateObject(t.Context(), alice, Template{Ulong(ck.CKA_CLASS, uint(ck.CKO_SECRET_KEY)),
		Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_GENERIC_SECRET)), Bytes(ck.CKA_VALUE, secret),
		Bool(ck.CKA_SIGN, true), Bool(ck.CKA_VERIFY, true)}))
	want := func(msg []byte, wide bool) []byte {
		h := hmac.New(sha256.New, secret)
		if wide {
			h = hmac.New(sha512.New, secret)
		}
		h.Write(msg)
		return h.Sum(nil)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 150 {
				msg := fmt.Appendf(nil, "goroutine %d message %d", g, i)
				wide := i%3 == 0
				m := Mechanism{Type: ck.CKM_SHA256_HMAC}
				if wide {
					m = Mechanism{Type: ck.CKM_SHA512_HMAC_GENERAL, MACLen: 20}
				}
				mac, err := td.Sign(alice, key, m, msg)
				w := want(msg, wide)
				if wide {
					w = w[:20]
				}
				if err != nil || !hmac.Equal(mac, w) {
					errs <- fmt.Errorf("%v of %q = %x, %v; want %x", m.Type, msg, mac, err, w)
					return
				}
				if i%5 == 0 { // a failed verification leaves nothing behind
					if err := td.Verify(alice, key, m, msg, make([]byte, len(w))); err == nil {
						errs <- fmt.Errorf("zero MAC of %q verified", msg)
						return
					}
				}
				if err := td.Verify(alice, key, m, msg, w); err != nil {
					errs <- fmt.Errorf("verify %q: %v", msg, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestDigestPoolConcurrent: hash-then-sign reuses the device's digest
// states; signatures made at once, over different messages, verify, and
// none verifies for another message.
func TestDigestPoolConcurrent(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	k := makeKeys(t, td, alice)
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for g := range 6 {
		wg.Go(func() {
			mechs := []ck.MechanismType{ck.CKM_ECDSA_SHA256, ck.CKM_ECDSA_SHA384, ck.CKM_SHA256_RSA_PKCS}
			for i := range 40 {
				mt := mechs[(g+i)%len(mechs)]
				priv, pub := k.ecPriv, k.ecPub
				if mt == ck.CKM_SHA256_RSA_PKCS {
					priv, pub = k.rsaPriv, k.rsaPub
				}
				msg := fmt.Appendf(nil, "goroutine %d message %d", g, i)
				sig, err := td.Sign(alice, priv, Mechanism{Type: mt}, msg)
				if err == nil {
					err = td.Verify(alice, pub, Mechanism{Type: mt}, msg, sig)
				}
				if err != nil {
					errs <- fmt.Errorf("%v of %q: %v", mt, msg, err)
					return
				}
				if td.Verify(alice, pub, Mechanism{Type: mt}, append(msg, '!'), sig) == nil {
					errs <- fmt.Errorf("%v signature of %q verified for another message", mt, msg)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
