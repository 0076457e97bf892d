package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/asn1"
	"fmt"
	"math/big"
	"sync"
	"testing"

	"github.com/miekg/pkcs11"
)

// concKeys are session keys for the concurrency tests: an EC P-256 pair and
// an AES key. Session objects live on one HSM, so every operation with them
// runs there, in the node session that holds them.
type concKeys struct {
	pub, priv, aes pkcs11.ObjectHandle
	ecPub          *ecdsa.PublicKey
}

func makeConcKeys(t *testing.T, l *loaded, s pkcs11.SessionHandle) concKeys {
	t.Helper()
	params, err := asn1.Marshal(asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7})
	must(t, "P-256 OID", err)
	pub, priv, err := l.ctx.GenerateKeyPair(s, mech(pkcs11.CKM_EC_KEY_PAIR_GEN, nil),
		[]*pkcs11.Attribute{attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_EC_PARAMS, params), attr(pkcs11.CKA_VERIFY, true)},
		[]*pkcs11.Attribute{attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_SIGN, true)})
	must(t, "C_GenerateKeyPair EC", err)
	aes, err := l.ctx.GenerateKey(s, mech(pkcs11.CKM_AES_KEY_GEN, nil), []*pkcs11.Attribute{
		attr(pkcs11.CKA_VALUE_LEN, 16), attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_ENCRYPT, true), attr(pkcs11.CKA_DECRYPT, true),
	})
	must(t, "C_GenerateKey AES", err)
	a, err := l.ctx.GetAttributeValue(s, pub, []*pkcs11.Attribute{attr(pkcs11.CKA_EC_POINT, nil)})
	must(t, "C_GetAttributeValue CKA_EC_POINT", err)
	var point []byte
	if _, err := asn1.Unmarshal(a[0].Value, &point); err != nil {
		t.Fatalf("CKA_EC_POINT: %v", err)
	}
	ecPub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
	must(t, "parse CKA_EC_POINT", err)
	return concKeys{pub: pub, priv: priv, aes: aes, ecPub: ecPub}
}

// checkRawECDSA verifies a PKCS#11 (r||s) P-256 signature of SHA-256(data).
func checkRawECDSA(pub *ecdsa.PublicKey, data, sig []byte) bool {
	if len(sig) != 64 {
		return false
	}
	h := sha256.Sum256(data)
	return ecdsa.Verify(pub, h[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
}

// TestMiekgInterleavedOperations begins the same multi-part operation in
// several sessions of one slot before any of them ends, as threads of one
// application do: each session has its own sign, verify, encrypt, decrypt
// and digest operation (PKCS#11 keeps operations per session), so every
// Update and Final succeeds and each result is its own session's. With
// four sessions over two HSMs, at least two keyless digests share an HSM.
func TestMiekgInterleavedOperations(t *testing.T) {
	l := coffer(t)
	c := l.ctx
	const n = 4
	ss := make([]pkcs11.SessionHandle, n)
	for i := range ss {
		ss[i] = l.session(t)
	}
	k := makeConcKeys(t, l, ss[0])
	data := func(i int) []byte { return fmt.Appendf(nil, "session %d of the interleaved operations", i) }
	ecdsaSHA256 := mech(pkcs11.CKM_ECDSA_SHA256, nil)

	sigs := make([][]byte, n)
	for i, s := range ss {
		must(t, fmt.Sprintf("session %d: C_SignInit", i), c.SignInit(s, ecdsaSHA256, k.priv))
		must(t, fmt.Sprintf("session %d: C_SignUpdate", i), c.SignUpdate(s, data(i)[:10]))
	}
	for i, s := range ss {
		must(t, fmt.Sprintf("session %d: second C_SignUpdate", i), c.SignUpdate(s, data(i)[10:]))
	}
	for i := n - 1; i >= 0; i-- {
		sig, err := c.SignFinal(ss[i])
		must(t, fmt.Sprintf("session %d: C_SignFinal", i), err)
		if !checkRawECDSA(k.ecPub, data(i), sig) {
			t.Errorf("session %d: the signature is not of its own data", i)
		}
		sigs[i] = sig
	}

	for i, s := range ss {
		must(t, fmt.Sprintf("session %d: C_VerifyInit", i), c.VerifyInit(s, ecdsaSHA256, k.pub))
		must(t, fmt.Sprintf("session %d: C_VerifyUpdate", i), c.VerifyUpdate(s, data(i)))
	}
	for i := n - 1; i >= 0; i-- {
		want := error(nil)
		sig := sigs[i]
		if i%2 == 1 {
			sig = sigs[(i+1)%n] // another session's signature: invalid here
			want = pkcs11.Error(pkcs11.CKR_SIGNATURE_INVALID)
		}
		wantRV(t, fmt.Sprintf("session %d: C_VerifyFinal", i), c.VerifyFinal(ss[i], sig), rvOf(want))
	}

	iv := bytes.Repeat([]byte{7}, 16)
	cbcPad := mech(pkcs11.CKM_AES_CBC_PAD, iv)
	cts := make([][]byte, n)
	for i, s := range ss {
		must(t, fmt.Sprintf("session %d: C_EncryptInit", i), c.EncryptInit(s, cbcPad, k.aes))
		out, err := c.EncryptUpdate(s, data(i)[:20])
		must(t, fmt.Sprintf("session %d: C_EncryptUpdate", i), err)
		cts[i] = out
	}
	for i := n - 1; i >= 0; i-- {
		out, err := c.EncryptUpdate(ss[i], data(i)[20:])
		must(t, fmt.Sprintf("session %d: second C_EncryptUpdate", i), err)
		last, err := c.EncryptFinal(ss[i])
		must(t, fmt.Sprintf("session %d: C_EncryptFinal", i), err)
		cts[i] = append(append(cts[i], out...), last...)
	}
	plains := make([][]byte, n)
	for i, s := range ss {
		must(t, fmt.Sprintf("session %d: C_DecryptInit", i), c.DecryptInit(s, cbcPad, k.aes))
		out, err := c.DecryptUpdate(s, cts[i][:16])
		must(t, fmt.Sprintf("session %d: C_DecryptUpdate", i), err)
		plains[i] = out
	}
	for i, s := range ss {
		out, err := c.DecryptUpdate(s, cts[i][16:])
		must(t, fmt.Sprintf("session %d: second C_DecryptUpdate", i), err)
		last, err := c.DecryptFinal(s)
		must(t, fmt.Sprintf("session %d: C_DecryptFinal", i), err)
		if got := append(append(plains[i], out...), last...); !bytes.Equal(got, data(i)) {
			t.Errorf("session %d: decrypted %q, want %q", i, got, data(i))
		}
	}

	for i, s := range ss {
		must(t, fmt.Sprintf("session %d: C_DigestInit", i), c.DigestInit(s, mech(pkcs11.CKM_SHA256, nil)))
		must(t, fmt.Sprintf("session %d: C_DigestUpdate", i), c.DigestUpdate(s, data(i)[:5]))
	}
	for i := n - 1; i >= 0; i-- {
		must(t, fmt.Sprintf("session %d: second C_DigestUpdate", i), c.DigestUpdate(ss[i], data(i)[5:]))
		sum, err := c.DigestFinal(ss[i])
		must(t, fmt.Sprintf("session %d: C_DigestFinal", i), err)
		if want := sha256.Sum256(data(i)); !bytes.Equal(sum, want[:]) {
			t.Errorf("session %d: digest %x, want %x", i, sum, want)
		}
	}
}

// TestMiekgPooledSessions runs what SunPKCS11 does under a multi-threaded
// application: goroutines take sessions from a shared pool, run one
// multi-part operation (or begin one and end it early, as its cancel does
// with C_SignFinal or C_VerifyFinal) and put the session back, so every
// C_*Init follows another goroutine's finished or cancelled operation on
// that session.
func TestMiekgPooledSessions(t *testing.T) {
	l := coffer(t)
	c := l.ctx
	const (
		workers = 12
		rounds  = 25
		pooled  = 6
	)
	pool := make(chan pkcs11.SessionHandle, pooled)
	for range pooled {
		pool <- l.session(t)
	}
	owner := l.session(t)
	k := makeConcKeys(t, l, owner)
	ecdsaSHA256 := mech(pkcs11.CKM_ECDSA_SHA256, nil)
	cbcPad := mech(pkcs11.CKM_AES_CBC_PAD, bytes.Repeat([]byte{9}, 16))

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(w, r int, what string, err error) {
		mu.Lock()
		defer mu.Unlock()
		if len(errs) < 10 {
			errs = append(errs, fmt.Errorf("worker %d round %d: %s: %w", w, r, what, err))
		}
	}
	// with runs fn on a session of the pool.
	with := func(fn func(s pkcs11.SessionHandle) (string, error)) (string, error) {
		s := <-pool
		defer func() { pool <- s }()
		return fn(s)
	}
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				msg := fmt.Appendf(nil, "worker %d round %d", w, r)
				var sig []byte
				if what, err := with(func(s pkcs11.SessionHandle) (string, error) {
					if err := c.SignInit(s, ecdsaSHA256, k.priv); err != nil {
						return "C_SignInit", err
					}
					if err := c.SignUpdate(s, msg[:4]); err != nil {
						return "C_SignUpdate", err
					}
					if err := c.SignUpdate(s, msg[4:]); err != nil {
						return "C_SignUpdate", err
					}
					var err error
					sig, err = c.SignFinal(s)
					return "C_SignFinal", err
				}); err != nil {
					fail(w, r, what, err)
					return
				}
				if !checkRawECDSA(k.ecPub, msg, sig) {
					fail(w, r, "signature", fmt.Errorf("does not verify"))
					return
				}
				if what, err := with(func(s pkcs11.SessionHandle) (string, error) {
					if err := c.VerifyInit(s, ecdsaSHA256, k.pub); err != nil {
						return "C_VerifyInit", err
					}
					if err := c.VerifyUpdate(s, msg); err != nil {
						return "C_VerifyUpdate", err
					}
					return "C_VerifyFinal", c.VerifyFinal(s, sig)
				}); err != nil {
					fail(w, r, what, err)
					return
				}
				if r%5 == 4 {
					// Begun and cancelled: SunPKCS11 ends an abandoned
					// operation by finishing it.
					if what, err := with(func(s pkcs11.SessionHandle) (string, error) {
						if err := c.SignInit(s, ecdsaSHA256, k.priv); err != nil {
							return "C_SignInit", err
						}
						if err := c.SignUpdate(s, msg); err != nil {
							return "C_SignUpdate", err
						}
						if _, err := c.SignFinal(s); err != nil {
							return "C_SignFinal (cancel)", err
						}
						if err := c.VerifyInit(s, ecdsaSHA256, k.pub); err != nil {
							return "C_VerifyInit", err
						}
						if err := c.VerifyUpdate(s, msg); err != nil {
							return "C_VerifyUpdate", err
						}
						if err := c.VerifyFinal(s, make([]byte, 64)); rvOf(err) != pkcs11.CKR_SIGNATURE_INVALID {
							return "C_VerifyFinal (cancel) of a zero signature", fmt.Errorf("%v, want CKR_SIGNATURE_INVALID", err)
						}
						return "", nil
					}); err != nil {
						fail(w, r, what, err)
						return
					}
				}
				if what, err := with(func(s pkcs11.SessionHandle) (string, error) {
					if err := c.EncryptInit(s, cbcPad, k.aes); err != nil {
						return "C_EncryptInit", err
					}
					a, err := c.EncryptUpdate(s, msg[:6])
					if err != nil {
						return "C_EncryptUpdate", err
					}
					a2, err := c.EncryptUpdate(s, msg[6:])
					if err != nil {
						return "C_EncryptUpdate", err
					}
					a = append(a, a2...)
					b, err := c.EncryptFinal(s)
					if err != nil {
						return "C_EncryptFinal", err
					}
					if err := c.DecryptInit(s, cbcPad, k.aes); err != nil {
						return "C_DecryptInit", err
					}
					p, err := c.DecryptUpdate(s, append(a, b...))
					if err != nil {
						return "C_DecryptUpdate", err
					}
					q, err := c.DecryptFinal(s)
					if err != nil {
						return "C_DecryptFinal", err
					}
					if got := append(p, q...); !bytes.Equal(got, msg) {
						return "round trip", fmt.Errorf("%q, want %q", got, msg)
					}
					if err := c.DigestInit(s, mech(pkcs11.CKM_SHA256, nil)); err != nil {
						return "C_DigestInit", err
					}
					if err := c.DigestUpdate(s, msg); err != nil {
						return "C_DigestUpdate", err
					}
					sum, err := c.DigestFinal(s)
					if err != nil {
						return "C_DigestFinal", err
					}
					if want := sha256.Sum256(msg); !bytes.Equal(sum, want[:]) {
						return "digest", fmt.Errorf("%x, want %x", sum, want)
					}
					return "", nil
				}); err != nil {
					fail(w, r, what, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
}
