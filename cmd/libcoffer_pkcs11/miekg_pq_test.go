package main

import (
	"bytes"
	"context"
	"crypto/mldsa"
	"crypto/mlkem"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/testtool"
	"github.com/miekg/pkcs11"
)

// ML-DSA and ML-KEM through the module. miekg/pkcs11 v1.1.1 predates
// PKCS#11 v3.2: its constants are taken from internal/ck, and
// C_EncapsulateKey and C_DecapsulateKey, which it cannot call, are run by
// testdata/pq.c through C_GetInterface("PKCS 11", 3.2).

var (
	ckmMLDSAKeyPairGen = uint(ck.CKM_ML_DSA_KEY_PAIR_GEN)
	ckmMLDSA           = uint(ck.CKM_ML_DSA)
	ckmMLKEMKeyPairGen = uint(ck.CKM_ML_KEM_KEY_PAIR_GEN)
	ckmMLKEM           = uint(ck.CKM_ML_KEM)
	ckaParameterSet    = uint(ck.CKA_PARAMETER_SET)
)

func testMLDSA(t *testing.T, x *mechTest) {
	for _, tc := range []struct {
		set    ck.ParameterSet
		params mldsa.Parameters
	}{{ck.CKP_ML_DSA_44, mldsa.MLDSA44()}, {ck.CKP_ML_DSA_65, mldsa.MLDSA65()}, {ck.CKP_ML_DSA_87, mldsa.MLDSA87()}} {
		t.Run(tc.params.String(), func(t *testing.T) {
			pub, priv, err := x.l.ctx.GenerateKeyPair(x.s, mech(ckmMLDSAKeyPairGen, nil),
				[]*pkcs11.Attribute{attr(pkcs11.CKA_TOKEN, false), attr(ckaParameterSet, uint(tc.set)), attr(pkcs11.CKA_VERIFY, true)},
				[]*pkcs11.Attribute{attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_SIGN, true)})
			must(t, "C_GenerateKeyPair ML-DSA", err)
			x.use(ckmMLDSAKeyPairGen)
			if got := x.get(t, priv, pkcs11.CKA_KEY_TYPE); !bytes.Equal(got, ulong(uint(ck.CKK_ML_DSA))) {
				t.Fatalf("CKA_KEY_TYPE %x", got)
			}
			key, err := mldsa.NewPublicKey(tc.params, x.get(t, pub, pkcs11.CKA_VALUE))
			if err != nil {
				t.Fatalf("CKA_VALUE of the public key: %v", err)
			}
			_, err = x.l.ctx.GetAttributeValue(x.s, priv, []*pkcs11.Attribute{attr(uint(ck.CKA_SEED), nil)})
			wantRV(t, "CKA_SEED of a sensitive key", err, pkcs11.CKR_ATTRIBUTE_SENSITIVE)
			data := []byte("signed with ML-DSA through the token")
			for _, multi := range []bool{false, true} {
				sig := x.sign(t, mech(ckmMLDSA, nil), priv, pub, data, multi)
				if err := mldsa.Verify(key, data, sig, nil); err != nil {
					t.Errorf("Go's crypto/mldsa refuses the token's signature: %v", err)
				}
			}
			// CK_SIGN_ADDITIONAL_CONTEXT {hedgeVariant, pContext, ulContextLen},
			// with a NULL context (miekg cannot pass a pointer in a parameter).
			signCtx := func(hedge, ctxLen uint) []byte {
				return append(append(ulong(hedge), make([]byte, 8)...), ulong(ctxLen)...)
			}
			det := mech(ckmMLDSA, signCtx(uint(ck.CKH_DETERMINISTIC_REQUIRED), 0))
			s1 := x.sign(t, det, priv, pub, data, false)
			s2 := x.sign(t, det, priv, pub, data, false)
			if !bytes.Equal(s1, s2) {
				t.Error("CKH_DETERMINISTIC_REQUIRED signatures differ")
			}
			if err := mldsa.Verify(key, data, s1, nil); err != nil {
				t.Errorf("Go refuses the deterministic signature: %v", err)
			}
			wantRV(t, "C_SignInit, NULL context of 5 bytes", x.l.ctx.SignInit(x.s, mech(ckmMLDSA, signCtx(0, 5)), priv), pkcs11.CKR_MECHANISM_PARAM_INVALID)
			wantRV(t, "C_SignInit, hedgeVariant 9", x.l.ctx.SignInit(x.s, mech(ckmMLDSA, signCtx(9, 0)), priv), pkcs11.CKR_MECHANISM_PARAM_INVALID)
			wantRV(t, "C_SignInit, a 23-byte parameter", x.l.ctx.SignInit(x.s, mech(ckmMLDSA, signCtx(0, 0)[:23]), priv), pkcs11.CKR_MECHANISM_PARAM_INVALID)
			x.use(ckmMLDSA)
			wantRV(t, "C_SignInit with the public key", x.l.ctx.SignInit(x.s, mech(ckmMLDSA, nil), pub), pkcs11.CKR_KEY_TYPE_INCONSISTENT)
		})
	}
}

// testMLKEM generates ML-KEM keys with miekg, then runs testdata/pq.c for
// what miekg cannot call.
func testMLKEM(t *testing.T, x *mechTest) {
	for _, set := range []ck.ParameterSet{ck.CKP_ML_KEM_768, ck.CKP_ML_KEM_1024} {
		pub, priv, err := x.l.ctx.GenerateKeyPair(x.s, mech(ckmMLKEMKeyPairGen, nil),
			[]*pkcs11.Attribute{attr(pkcs11.CKA_TOKEN, false), attr(ckaParameterSet, uint(set))},
			[]*pkcs11.Attribute{attr(pkcs11.CKA_TOKEN, false)})
		must(t, "C_GenerateKeyPair ML-KEM", err)
		ek := x.get(t, pub, pkcs11.CKA_VALUE)
		if set == ck.CKP_ML_KEM_768 {
			_, err = mlkem.NewEncapsulationKey768(ek)
		} else {
			_, err = mlkem.NewEncapsulationKey1024(ek)
		}
		if err != nil {
			t.Fatalf("CKA_VALUE of the ML-KEM public key: %v", err)
		}
		if got := x.get(t, priv, uint(ck.CKA_DECAPSULATE)); !bytes.Equal(got, []byte{1}) {
			t.Fatalf("CKA_DECAPSULATE %x", got)
		}
		// Wrapping is refused: ML-KEM keys have no PKCS#8 encoding here.
		wk := x.aesKey(t, false)
		_, err = x.l.ctx.WrapKey(x.s, mech(pkcs11.CKM_AES_KEY_WRAP_PAD, nil), wk, priv)
		wantRV(t, "C_WrapKey of an ML-KEM private key", err, pkcs11.CKR_KEY_NOT_WRAPPABLE)
	}
	x.use(ckmMLKEMKeyPairGen)

	cc := testtool.Path(t, "gcc")
	bin := filepath.Join(t.TempDir(), "pq")
	out, err := exec.Command(cc, "-Wall", "-Werror", "-I/usr/include/nss", "-I/usr/include/nspr",
		"-o", bin, "testdata/pq.c", "-ldl").CombinedOutput()
	if err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	seed := bytes.Repeat([]byte{0x5a}, mlkem.SeedSize)
	dk, err := mlkem.NewDecapsulationKey768(seed)
	if err != nil {
		t.Fatal(err)
	}
	ss, ct := dk.EncapsulationKey().Encapsulate()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, env.lib, userPIN, hex.EncodeToString(seed), hex.EncodeToString(ct), hex.EncodeToString(ss))
	cmd.Env = append(os.Environ(), "COFFER_PKCS11_CONFIG="+env.config, "PQ_EK="+hex.EncodeToString(dk.EncapsulationKey().Bytes()))
	got, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(got), "OK") {
		t.Fatalf("pq: %v\n%s\n--- library log:\n%s", err, got, logTail())
	}
	// The token's encapsulation to Go's key: Go decapsulates the same secret.
	var kemLine []string
	for _, line := range strings.Split(string(got), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "KEM" {
			kemLine = f
		}
	}
	if kemLine == nil {
		t.Fatalf("pq printed no KEM line:\n%s", got)
	}
	tct, err1 := hex.DecodeString(kemLine[1])
	tss, err2 := hex.DecodeString(kemLine[2])
	if err1 != nil || err2 != nil {
		t.Fatalf("KEM line: %v %v", err1, err2)
	}
	want, err := dk.Decapsulate(tct)
	if err != nil || !bytes.Equal(want, tss) {
		t.Fatalf("Go decapsulates %x from the token's ciphertext, the token's secret is %x (%v)", want, tss, err)
	}
	x.use(ckmMLKEM)
}
