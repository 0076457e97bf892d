package main

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
	"github.com/coffer-hsm/coffer/internal/hsm"
)

// TestClusterSync: a key created through one HSM is usable through each of
// the others, and users created, changed and deleted through any HSM are so
// on every HSM. Every client talks to one HSM only, so only server-side
// synchronization can carry the changes.
func TestClusterSync(t *testing.T) {
	c := newCluster(t, 1, 2, 3)
	c.startAll(t, 1, 2, 3)
	admin1 := c.activate(t, 1)
	ctx := t.Context()

	alice := map[uint32]*client.Session{}
	for _, id := range []uint32{1, 2, 3} {
		alice[id] = c.loginWhenKnown(t, id, "crypto-user", testCU, testCUPW)
	}

	t.Run("key made on HSM 1 works on 2 and 3", func(t *testing.T) {
		pub, priv := genECPair(t, alice[1], "sync-ec")
		msg := []byte("signed on HSM 1")
		sig, err := alice[1].Sign(ctx, priv, mechECDSASHA256, msg)
		if err != nil {
			t.Fatalf("sign on HSM 1: %v", err)
		}
		aes, err := alice[1].GenerateKey(ctx, mechAESKeyGen, aesTokenTemplate("sync-aes"))
		if err != nil {
			t.Fatalf("generate AES key on HSM 1: %v", err)
		}
		iv := []byte("twelve bytes")
		ct, err := alice[1].Encrypt(ctx, aes, gcmMech(iv), msg)
		if err != nil {
			t.Fatalf("encrypt on HSM 1: %v", err)
		}
		for _, id := range []uint32{2, 3} {
			took := pollUntil(t, fmt.Sprintf("HSM %d verifies HSM 1's signature", id), func() error {
				return alice[id].Verify(ctx, pub, mechECDSASHA256, msg, sig)
			})
			t.Logf("HSM %d verified the signature %s after creation", id, took.Round(time.Millisecond))
			// The public key is there, so its private key is too: sign here,
			// verify on HSM 1.
			sig2, err := alice[id].Sign(ctx, priv, mechECDSASHA256, msg)
			if err != nil {
				t.Errorf("sign on HSM %d: %v", id, err)
			} else if err := alice[1].Verify(ctx, pub, mechECDSASHA256, msg, sig2); err != nil {
				t.Errorf("HSM 1 rejects HSM %d's signature: %v", id, err)
			}
			if err := alice[id].Verify(ctx, pub, mechECDSASHA256, []byte("another message"), sig); !refusedWith(err, ck.CKR_SIGNATURE_INVALID) {
				t.Errorf("HSM %d verifies a signature of another message: %v", id, err)
			}
			pollUntil(t, fmt.Sprintf("HSM %d decrypts with HSM 1's AES key", id), func() error {
				pt, err := alice[id].Decrypt(ctx, aes, gcmMech(iv), ct)
				if err == nil && !bytes.Equal(pt, msg) {
					t.Fatalf("HSM %d decrypts to %q, want %q", id, pt, msg)
				}
				return err
			})
		}
	})

	// Users: one admin session per HSM; each change goes through another.
	admin := map[uint32]*client.Session{1: admin1}
	for _, id := range []uint32{2, 3} {
		admin[id] = c.loginWhenKnown(t, id, "admin", hsm.DefaultAdminName, testAdminPW)
	}
	clients := map[uint32]*client.Cluster{}
	for _, id := range []uint32{1, 2, 3} {
		clients[id] = c.dial(t, 1, id)
	}
	const bob, bobPW, bobPW2 = "bob", "bob-password-1", "bob-password-2"

	t.Run("user created through HSM 2", func(t *testing.T) {
		if err := admin[2].CreateUser(ctx, bob, "crypto-user", bobPW, nil); err != nil {
			t.Fatal(err)
		}
		for _, id := range []uint32{1, 2, 3} {
			// Before the user arrives a login fails as for any unknown
			// user (and counts no failure).
			pollUntil(t, fmt.Sprintf("bob logs in on HSM %d", id), func() error {
				return loginOnce(ctx, clients[id], "crypto-user", bob, bobPW)
			})
		}
	})
	t.Run("password changed through HSM 3", func(t *testing.T) {
		if err := admin[3].ChangePassword(ctx, bob, bobPW2, nil); err != nil {
			t.Fatal(err)
		}
		for _, id := range []uint32{1, 2, 3} {
			// Polled with the old password, which works until the change
			// arrives: only the one attempt after that counts a failure.
			// (Polling with the new one would count failures, and a failure
			// count written on an HSM that lacks the change is a newer
			// version of the user with the old password.)
			pollUntil(t, fmt.Sprintf("the old password refused on HSM %d", id), func() error {
				err := loginOnce(ctx, clients[id], "crypto-user", bob, bobPW)
				switch {
				case err == nil:
					return errors.New("the old password still works")
				case refusedWith(err, ck.CKR_PIN_INCORRECT):
					return nil
				}
				t.Fatalf("login with the old password on HSM %d: %v", id, err)
				return nil
			})
			if err := loginOnce(ctx, clients[id], "crypto-user", bob, bobPW2); err != nil {
				t.Errorf("the new password on HSM %d: %v", id, err)
			}
		}
	})
	t.Run("user deleted through HSM 1", func(t *testing.T) {
		if err := admin[1].DeleteUser(ctx, bob, false, nil); err != nil {
			t.Fatal(err)
		}
		for _, id := range []uint32{1, 2, 3} {
			pollUntil(t, fmt.Sprintf("bob refused on HSM %d", id), func() error {
				err := loginOnce(ctx, clients[id], "crypto-user", bob, bobPW2)
				switch {
				case err == nil:
					return errors.New("bob still logs in")
				case refusedWith(err, ck.CKR_PIN_INCORRECT):
					return nil
				}
				t.Fatalf("login as deleted bob on HSM %d: %v", id, err)
				return nil
			})
			users, err := admin[id].ListUsers(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if slices.ContainsFunc(users, func(u client.UserInfo) bool { return u.Username == bob }) {
				t.Errorf("HSM %d still lists bob: %+v", id, users)
			}
		}
	})
}
