package hsm

import (
	"sync"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
)

// Many sessions use, create and change keys at once; run with -race.
func TestConcurrentUse(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	k := makeKeys(t, td, alice)
	ctx := t.Context()
	const workers, rounds = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := range workers {
		s := td.OpenSession()
		if err := td.Login(ctx, s, RoleCryptoUser, "alice", cuPW); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for i := range rounds {
				msg := []byte{byte(w), byte(i)}
				sig, err := td.Sign(s, k.ecPriv, Mechanism{Type: ck.CKM_ECDSA_SHA256}, msg)
				if err == nil {
					err = td.Verify(s, k.ecPub, Mechanism{Type: ck.CKM_ECDSA_SHA256}, msg, sig)
				}
				if err == nil {
					_, err = td.GenerateKey(ctx, s, Mechanism{Type: ck.CKM_AES_KEY_GEN}, aesTemplate("c", 16))
				}
				if err == nil {
					err = td.SetAttributes(ctx, s, k.aes, Template{String(ck.CKA_LABEL, string(msg))})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ids, err := td.FindObjects(alice, Template{String(ck.CKA_LABEL, "c")})
	if err != nil || len(ids) != workers*rounds {
		t.Fatalf("found %d keys, want %d (%v)", len(ids), workers*rounds, err)
	}
}
