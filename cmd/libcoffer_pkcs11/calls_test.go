package main

import (
	"bytes"
	"encoding/asn1"
	"encoding/binary"
	"sync"
	"testing"

	"github.com/miekg/pkcs11"
)

// TestConcurrentCalls runs many threads at once through the library, so
// that calls take the queue to the worker goroutines (call.h) and not only
// the direct path: results land in the callers' buffers, return values and
// the length query survive the hand-off, and nothing is lost or crossed.
func TestConcurrentCalls(t *testing.T) {
	l := coffer(t)
	c := l.ctx
	s := l.session(t)
	key, err := c.GenerateKey(s, mech(pkcs11.CKM_AES_KEY_GEN, nil), []*pkcs11.Attribute{
		attr(pkcs11.CKA_VALUE_LEN, 32), attr(pkcs11.CKA_ENCRYPT, true), attr(pkcs11.CKA_DECRYPT, true),
	})
	must(t, "C_GenerateKey AES", err)
	hmacKey, err := c.GenerateKey(s, mech(pkcs11.CKM_GENERIC_SECRET_KEY_GEN, nil), []*pkcs11.Attribute{
		attr(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY), attr(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
		attr(pkcs11.CKA_VALUE_LEN, 32), attr(pkcs11.CKA_SIGN, true), attr(pkcs11.CKA_VERIFY, true),
	})
	must(t, "C_GenerateKey generic secret", err)
	const threads, rounds = 16, 40
	var wg sync.WaitGroup
	errs := make(chan error, threads)
	sessions := make([]pkcs11.SessionHandle, threads)
	for i := range sessions {
		sessions[i] = l.session(t)
	}
	for th, s := range sessions {
		wg.Go(func() {
			for r := range rounds {
				data := binary.BigEndian.AppendUint64([]byte("thread-and-round"), uint64(th<<16|r))
				iv := binary.BigEndian.AppendUint32([]byte("round-iv"), uint32(th<<16|r)) // never zeroed: that IV is the HSM's to choose
				gcm := pkcs11.NewGCMParams(iv, data[:4], 128)
				if err := c.EncryptInit(s, mech(pkcs11.CKM_AES_GCM, gcm), key); err != nil {
					errs <- err
					return
				}
				ct, err := c.Encrypt(s, data)
				if err != nil {
					errs <- err
					return
				}
				gcm.Free()
				gcm = pkcs11.NewGCMParams(iv, data[:4], 128)
				if err := c.DecryptInit(s, mech(pkcs11.CKM_AES_GCM, gcm), key); err != nil {
					errs <- err
					return
				}
				pt, err := c.Decrypt(s, ct)
				gcm.Free()
				if err != nil || !bytes.Equal(pt, data) {
					t.Errorf("thread %d round %d: decrypt %x, %v; want %x", th, r, pt, err, data)
					return
				}
				// A call in the wrong state answers its own code through the queue.
				if _, err := c.Encrypt(s, data); rvOf(err) != pkcs11.CKR_OPERATION_NOT_INITIALIZED {
					t.Errorf("thread %d: C_Encrypt without init: %v", th, err)
					return
				}
				if err := c.SignInit(s, mech(pkcs11.CKM_SHA256_HMAC, nil), hmacKey); err != nil {
					errs <- err
					return
				}
				mac, err := c.Sign(s, data)
				if err != nil || len(mac) != 32 {
					t.Errorf("thread %d round %d: HMAC %x, %v", th, r, mac, err)
					return
				}
				if err := c.VerifyInit(s, mech(pkcs11.CKM_SHA256_HMAC, nil), hmacKey); err != nil {
					errs <- err
					return
				}
				mac[0] ^= 1
				if err := c.Verify(s, data, mac); rvOf(err) != pkcs11.CKR_SIGNATURE_INVALID {
					t.Errorf("thread %d round %d: verify of a changed MAC: %v", th, r, err)
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
}

// TestInitKeyType: C_*Init refuses a key of the wrong type or class, or an
// object that is no key, itself (not at the C_Sign that follows), both for
// keys made in this process and for keys found by C_FindObjects.
func TestInitKeyType(t *testing.T) {
	l := coffer(t)
	c := l.ctx
	s := l.session(t)
	label := randomName("init-keytype-")
	aes, err := c.GenerateKey(s, mech(pkcs11.CKM_AES_KEY_GEN, nil), []*pkcs11.Attribute{
		attr(pkcs11.CKA_VALUE_LEN, 16), attr(pkcs11.CKA_ENCRYPT, true), attr(pkcs11.CKA_SIGN, true), attr(pkcs11.CKA_LABEL, label),
	})
	must(t, "C_GenerateKey", err)
	p256, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7})
	pub, priv, err := c.GenerateKeyPair(s, mech(pkcs11.CKM_EC_KEY_PAIR_GEN, nil),
		[]*pkcs11.Attribute{attr(pkcs11.CKA_EC_PARAMS, p256), attr(pkcs11.CKA_VERIFY, true)},
		[]*pkcs11.Attribute{attr(pkcs11.CKA_SIGN, true)})
	must(t, "C_GenerateKeyPair", err)
	data, err := c.CreateObject(s, []*pkcs11.Attribute{attr(pkcs11.CKA_CLASS, pkcs11.CKO_DATA), attr(pkcs11.CKA_VALUE, []byte("not a key"))})
	must(t, "C_CreateObject", err)

	// The AES key again, through a handle found rather than made.
	must(t, "C_FindObjectsInit", c.FindObjectsInit(s, []*pkcs11.Attribute{attr(pkcs11.CKA_LABEL, label)}))
	found, _, err := c.FindObjects(s, 2)
	must(t, "C_FindObjects", err)
	must(t, "C_FindObjectsFinal", c.FindObjectsFinal(s))
	if len(found) != 1 {
		t.Fatalf("found %d objects labelled %s, want 1", len(found), label)
	}

	for _, tc := range []struct {
		name string
		init func() error
		want pkcs11.Error
	}{
		{"ECDSA with an AES key", func() error { return c.SignInit(s, mech(pkcs11.CKM_ECDSA, nil), aes) }, pkcs11.CKR_KEY_TYPE_INCONSISTENT},
		{"ECDSA with a found AES key", func() error { return c.SignInit(s, mech(pkcs11.CKM_ECDSA, nil), found[0]) }, pkcs11.CKR_KEY_TYPE_INCONSISTENT},
		{"HMAC with an AES key", func() error { return c.SignInit(s, mech(pkcs11.CKM_SHA256_HMAC, nil), aes) }, pkcs11.CKR_KEY_TYPE_INCONSISTENT},
		{"RSA with an EC key", func() error { return c.SignInit(s, mech(pkcs11.CKM_SHA256_RSA_PKCS, nil), priv) }, pkcs11.CKR_KEY_TYPE_INCONSISTENT},
		{"sign with a public key", func() error { return c.SignInit(s, mech(pkcs11.CKM_ECDSA, nil), pub) }, pkcs11.CKR_KEY_TYPE_INCONSISTENT},
		{"verify with a private key", func() error { return c.VerifyInit(s, mech(pkcs11.CKM_ECDSA, nil), priv) }, pkcs11.CKR_KEY_TYPE_INCONSISTENT},
		{"AES with a data object", func() error { return c.EncryptInit(s, mech(pkcs11.CKM_AES_ECB, nil), data) }, pkcs11.CKR_KEY_HANDLE_INVALID},
		{"ECDSA with the EC key", func() error { return c.SignInit(s, mech(pkcs11.CKM_ECDSA, nil), priv) }, pkcs11.CKR_OK},
		{"AES with the found key", func() error { return c.EncryptInit(s, mech(pkcs11.CKM_AES_ECB, nil), found[0]) }, pkcs11.CKR_OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.init()
			if got := rvOf(err); got != tc.want {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if err == nil { // end the operation for the next case
				_, _ = c.Sign(s, make([]byte, 32))
				_, _ = c.Encrypt(s, make([]byte, 16))
			}
		})
	}
}
