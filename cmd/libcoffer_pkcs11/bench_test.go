package main

import (
	"encoding/asn1"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/coffer-hsm/coffer/internal/testtool"
	"github.com/miekg/pkcs11"
)

// BenchmarkPKCS11 measures operations per second through a PKCS#11 library
// at 1, 8 and 64 threads (goroutines, each with its own session after one
// C_Login), for the Coffer library against the package's two-HSM cluster
// and for SoftHSMv2, with the same code:
//
//	go test -run '^$' -bench PKCS11 ./cmd/libcoffer_pkcs11
//
// Each result reports ops/s; compare BenchmarkPKCS11/coffer/X with
// BenchmarkPKCS11/softhsm/X.
func BenchmarkPKCS11(b *testing.B) {
	for _, target := range []struct {
		name string
		load func(testing.TB) *loaded
	}{
		{"coffer", func(tb testing.TB) *loaded { return coffer(tb) }},
		{"softhsm", softHSM},
	} {
		b.Run(target.name, func(b *testing.B) {
			l := target.load(b)
			k := benchKeys(b, l)
			for _, op := range benchOps(k) {
				for _, threads := range []int{1, 8, 64} {
					b.Run(fmt.Sprintf("%s/threads=%d", op.name, threads), func(b *testing.B) {
						runThreads(b, l, threads, op)
					})
				}
			}
		})
	}
}

// keys are the token keys the operations use.
type keys struct {
	rsa, ec, aes, hmac pkcs11.ObjectHandle
}

// benchKeys makes the token keys, destroyed at the end of the benchmark.
func benchKeys(tb testing.TB, l *loaded) keys {
	tb.Helper()
	s := l.anchor
	var k keys
	var made []pkcs11.ObjectHandle
	tb.Cleanup(func() {
		for _, o := range made {
			_ = l.ctx.DestroyObject(s, o)
		}
	})
	token := []*pkcs11.Attribute{attr(pkcs11.CKA_TOKEN, true), attr(pkcs11.CKA_LABEL, "bench")}
	pub, priv, err := l.ctx.GenerateKeyPair(s, mech(pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, nil),
		append([]*pkcs11.Attribute{attr(pkcs11.CKA_MODULUS_BITS, 2048), attr(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}), attr(pkcs11.CKA_VERIFY, true)}, token...),
		append([]*pkcs11.Attribute{attr(pkcs11.CKA_SIGN, true), attr(pkcs11.CKA_PRIVATE, true), attr(pkcs11.CKA_SENSITIVE, true)}, token...))
	must(tb, "RSA key pair", err)
	made, k.rsa = append(made, pub, priv), priv
	p256, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7})
	pub, priv, err = l.ctx.GenerateKeyPair(s, mech(pkcs11.CKM_EC_KEY_PAIR_GEN, nil),
		append([]*pkcs11.Attribute{attr(pkcs11.CKA_EC_PARAMS, p256), attr(pkcs11.CKA_VERIFY, true)}, token...),
		append([]*pkcs11.Attribute{attr(pkcs11.CKA_SIGN, true), attr(pkcs11.CKA_PRIVATE, true), attr(pkcs11.CKA_SENSITIVE, true)}, token...))
	must(tb, "EC key pair", err)
	made, k.ec = append(made, pub, priv), priv
	k.aes, err = l.ctx.GenerateKey(s, mech(pkcs11.CKM_AES_KEY_GEN, nil), append([]*pkcs11.Attribute{
		attr(pkcs11.CKA_VALUE_LEN, 32), attr(pkcs11.CKA_ENCRYPT, true), attr(pkcs11.CKA_DECRYPT, true), attr(pkcs11.CKA_SENSITIVE, true)}, token...))
	must(tb, "AES key", err)
	made = append(made, k.aes)
	k.hmac, err = l.ctx.GenerateKey(s, mech(pkcs11.CKM_GENERIC_SECRET_KEY_GEN, nil), append([]*pkcs11.Attribute{
		attr(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY), attr(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
		attr(pkcs11.CKA_VALUE_LEN, 32), attr(pkcs11.CKA_SIGN, true), attr(pkcs11.CKA_VERIFY, true), attr(pkcs11.CKA_SENSITIVE, true)}, token...))
	must(tb, "HMAC key", err)
	made = append(made, k.hmac)
	return k
}

// benchOp is one operation; do runs it once in session s (seq counts the
// calls of one thread). Objects it creates are returned for destruction
// outside the timed loop.
type benchOp struct {
	name string
	do   func(c *pkcs11.Ctx, s pkcs11.SessionHandle, seq uint64) (pkcs11.ObjectHandle, error)
}

func benchOps(k keys) []benchOp {
	digest := make([]byte, 32)
	kib := make([]byte, 1024)
	sign := func(m []*pkcs11.Mechanism, key pkcs11.ObjectHandle, data []byte) func(*pkcs11.Ctx, pkcs11.SessionHandle, uint64) (pkcs11.ObjectHandle, error) {
		return func(c *pkcs11.Ctx, s pkcs11.SessionHandle, _ uint64) (pkcs11.ObjectHandle, error) {
			if err := c.SignInit(s, m, key); err != nil {
				return 0, err
			}
			_, err := c.Sign(s, data)
			return 0, err
		}
	}
	return []benchOp{
		{"RSA2048-SHA256-sign", sign(mech(pkcs11.CKM_SHA256_RSA_PKCS, nil), k.rsa, digest)},
		{"ECDSA-P256-sign", sign(mech(pkcs11.CKM_ECDSA, nil), k.ec, digest)},
		{"AES256-GCM-1KiB-encrypt", func(c *pkcs11.Ctx, s pkcs11.SessionHandle, seq uint64) (pkcs11.ObjectHandle, error) {
			iv := binary.BigEndian.AppendUint64(make([]byte, 4, 12), seq) // unique per session
			binary.BigEndian.PutUint32(iv, uint32(s))
			p := pkcs11.NewGCMParams(iv, nil, 128)
			defer p.Free()
			if err := c.EncryptInit(s, mech(pkcs11.CKM_AES_GCM, p), k.aes); err != nil {
				return 0, err
			}
			_, err := c.Encrypt(s, kib)
			return 0, err
		}},
		{"HMAC-SHA256-1KiB-sign", sign(mech(pkcs11.CKM_SHA256_HMAC, nil), k.hmac, kib)},
		{"AES256-token-keygen", func(c *pkcs11.Ctx, s pkcs11.SessionHandle, _ uint64) (pkcs11.ObjectHandle, error) {
			return c.GenerateKey(s, mech(pkcs11.CKM_AES_KEY_GEN, nil), []*pkcs11.Attribute{
				attr(pkcs11.CKA_VALUE_LEN, 32), attr(pkcs11.CKA_TOKEN, true), attr(pkcs11.CKA_ENCRYPT, true),
				attr(pkcs11.CKA_DECRYPT, true), attr(pkcs11.CKA_SENSITIVE, true), attr(pkcs11.CKA_LABEL, "bench-keygen"),
			})
		}},
	}
}

// runThreads runs b.N operations over threads goroutines, each with its own
// session, and reports ops/s.
func runThreads(b *testing.B, l *loaded, threads int, op benchOp) {
	sessions := make([]pkcs11.SessionHandle, threads)
	for i := range sessions {
		s, err := l.ctx.OpenSession(l.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		must(b, "C_OpenSession", err)
		sessions[i] = s
	}
	defer func() {
		for _, s := range sessions {
			_ = l.ctx.CloseSession(s)
		}
	}()
	var (
		next    atomic.Int64
		errOnce sync.Once
		first   error
		wg      sync.WaitGroup
		made    = make([][]pkcs11.ObjectHandle, threads)
	)
	b.ResetTimer()
	for i, s := range sessions {
		wg.Go(func() {
			for seq := uint64(0); next.Add(1) <= int64(b.N); seq++ {
				o, err := op.do(l.ctx, s, seq)
				if err != nil {
					errOnce.Do(func() { first = err })
					return
				}
				if o != 0 {
					made[i] = append(made[i], o)
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if first != nil {
		b.Fatalf("%s: %v", op.name, first)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	for i, s := range sessions { // objects made are destroyed untimed, in parallel
		wg.Go(func() {
			for _, o := range made[i] {
				_ = l.ctx.DestroyObject(s, o)
			}
		})
	}
	wg.Wait()
}

// softHSMLib is SoftHSMv2 in this process, with one token initialized in a
// directory of the test run.
var softHSMLib struct {
	once sync.Once
	l    *loaded
	err  error
}

const softHSMPath = "/usr/lib/softhsm/libsofthsm2.so"

// softHSM returns SoftHSMv2 logged in to a fresh token "bench" (PIN 1234).
// Without the softhsm2 package it skips, or fails with COFFER_REQUIRE_TOOLS.
func softHSM(tb testing.TB) *loaded {
	tb.Helper()
	util := testtool.Path(tb, "softhsm2-util")
	testtool.File(tb, softHSMPath, "softhsm2")
	softHSMLib.once.Do(func() {
		dir := filepath.Join(env.dir, "softhsm")
		conf := filepath.Join(dir, "softhsm2.conf")
		if err := os.MkdirAll(filepath.Join(dir, "tokens"), 0o700); err != nil {
			softHSMLib.err = err
			return
		}
		cfg := "directories.tokendir = " + filepath.Join(dir, "tokens") + "\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
		if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
			softHSMLib.err = err
			return
		}
		cmd := exec.Command(util, "--init-token", "--free", "--label", "bench", "--so-pin", "1234", "--pin", "1234")
		cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+conf)
		if out, err := cmd.CombinedOutput(); err != nil {
			softHSMLib.err = fmt.Errorf("softhsm2-util --init-token: %v\n%s", err, out)
			return
		}
		softHSMLib.l, softHSMLib.err = loadPKCS11(softHSMPath, "bench", "1234", map[string]string{"SOFTHSM2_CONF": conf})
	})
	if softHSMLib.err != nil {
		tb.Fatalf("SoftHSMv2: %v", softHSMLib.err)
	}
	return softHSMLib.l
}
