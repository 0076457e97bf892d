package hsm

import (
	"bytes"
	"regexp"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
)

// ML-DSA and ML-KEM vectors through the device: keys enter with
// CreateObject (CKA_SEED for private keys, CKA_VALUE for public keys, as
// PKCS#11 v3.2 has them), results come from Sign, Verify and
// DecapsulateKey.

var wpMLDSASets = map[string]ck.ParameterSet{"44": ck.CKP_ML_DSA_44, "65": ck.CKP_ML_DSA_65, "87": ck.CKP_ML_DSA_87}

type mldsaVector struct {
	wpVector
	Msg hexBytes  `json:"msg"`
	Ctx *hexBytes `json:"ctx"`
	Sig hexBytes  `json:"sig"`
}

func (v mldsaVector) mechanism() Mechanism {
	m := Mechanism{Type: ck.CKM_ML_DSA, Hedge: ck.CKH_DETERMINISTIC_REQUIRED}
	if v.Ctx != nil {
		m.Context = *v.Ctx
	}
	return m
}

func TestWycheproofMLDSAVerify(t *testing.T) {
	t.Parallel()
	td, s := wpDevice(t)
	var c wpCounts
	for _, file := range wpFiles(t, regexp.MustCompile(`^mldsa_(44|65|87)_verify_test\.json$`)) {
		ps := wpMLDSASets[file[6:8]]
		t.Run(file, func(t *testing.T) {
			type group struct {
				PublicKey hexBytes `json:"publicKey"`
				Tests     []mldsaVector
			}
			for _, g := range wpLoad[group](t, file) {
				pub, err := td.CreateObject(t.Context(), s, Template{
					Ulong(ck.CKA_CLASS, uint(ck.CKO_PUBLIC_KEY)), Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_ML_DSA)),
					Ulong(ck.CKA_PARAMETER_SET, uint(ps)), Bytes(ck.CKA_VALUE, g.PublicKey)})
				if err != nil {
					// A malformed key: every vector of the group is invalid.
					for _, tc := range g.Tests {
						c.judge(t, file, tc.wpVector, err, ErrAttributeValueInvalid)
					}
					continue
				}
				for _, tc := range g.Tests {
					err := td.Verify(s, pub, tc.mechanism(), tc.Msg, tc.Sig)
					c.judge(t, file, tc.wpVector, err, ErrSignatureInvalid, ErrSignatureLenRange, ErrMechanismParamInvalid)
				}
			}
		})
	}
	c.done(t, "ML-DSA verify")
}

// TestWycheproofMLDSASign makes each key from its seed (a keygen-from-seed
// known answer: the deterministic signature depends on the whole expanded
// key) and compares deterministic signatures.
func TestWycheproofMLDSASign(t *testing.T) {
	t.Parallel()
	td, s := wpDevice(t)
	var c wpCounts
	for _, file := range wpFiles(t, regexp.MustCompile(`^mldsa_(44|65|87)_sign_seed_test\.json$`)) {
		ps := wpMLDSASets[file[6:8]]
		t.Run(file, func(t *testing.T) {
			type group struct {
				PrivateSeed hexBytes `json:"privateSeed"`
				Tests       []mldsaVector
			}
			for _, g := range wpLoad[group](t, file) {
				priv, err := td.CreateObject(t.Context(), s, Template{
					Ulong(ck.CKA_CLASS, uint(ck.CKO_PRIVATE_KEY)), Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_ML_DSA)),
					Ulong(ck.CKA_PARAMETER_SET, uint(ps)), Bytes(ck.CKA_SEED, g.PrivateSeed)})
				if err != nil {
					t.Errorf("%s: private key from seed: %v", file, err)
					continue
				}
				for _, tc := range g.Tests {
					sig, err := td.Sign(s, priv, tc.mechanism(), tc.Msg)
					c.judge(t, file, tc.wpVector, err, ErrMechanismParamInvalid)
					if err == nil && !bytes.Equal(sig, tc.Sig) {
						mismatch(t, file, tc.wpVector, "signature", sig, tc.Sig)
					}
				}
			}
		})
	}
	c.done(t, "ML-DSA sign")
}

func TestWycheproofMLKEM(t *testing.T) {
	t.Parallel()
	td, s := wpDevice(t)
	var c wpCounts
	const file = "mlkem_test.json"
	sets := map[string]ck.ParameterSet{"ML-KEM-512": ck.CKP_ML_KEM_512, "ML-KEM-768": ck.CKP_ML_KEM_768, "ML-KEM-1024": ck.CKP_ML_KEM_1024}
	t.Run(file, func(t *testing.T) {
		type vector struct {
			wpVector
			Seed hexBytes `json:"seed"`
			Ek   hexBytes `json:"ek"`
			C    hexBytes `json:"c"`
			K    hexBytes `json:"K"`
		}
		type group struct {
			Type         string `json:"type"`
			ParameterSet string `json:"parameterSet"`
			Tests        []vector
		}
		ctx := t.Context()
		for _, g := range wpLoad[group](t, file) {
			ps, ok := sets[g.ParameterSet]
			if !ok {
				t.Fatalf("%s: parameter set %q", file, g.ParameterSet)
			}
			for _, tc := range g.Tests {
				pubT := Template{Ulong(ck.CKA_CLASS, uint(ck.CKO_PUBLIC_KEY)), Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_ML_KEM)),
					Ulong(ck.CKA_PARAMETER_SET, uint(ps)), Bytes(ck.CKA_VALUE, tc.Ek)}
				_, perr := td.CreateObject(ctx, s, pubT)
				if ps == ck.CKP_ML_KEM_512 {
					c.refused(t, file, tc.wpVector, perr, ErrKeySizeRange)
					continue
				}
				if g.Type == "MLKEMEncapsTest" { // malformed encapsulation keys
					c.judge(t, file, tc.wpVector, perr, ErrAttributeValueInvalid)
					continue
				}
				priv, err := td.CreateObject(ctx, s, Template{
					Ulong(ck.CKA_CLASS, uint(ck.CKO_PRIVATE_KEY)), Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_ML_KEM)),
					Ulong(ck.CKA_PARAMETER_SET, uint(ps)), Bytes(ck.CKA_SEED, tc.Seed)})
				var k ObjectID
				if err == nil {
					err = perr
				}
				if err == nil {
					k, err = td.DecapsulateKey(ctx, s, priv, Mechanism{Type: ck.CKM_ML_KEM}, tc.C, Template{Bool(ck.CKA_SENSITIVE, false)})
				}
				c.judge(t, file, tc.wpVector, err)
				if err != nil {
					continue
				}
				// The encapsulation key derived from the seed is the vector's.
				pubs, _ := td.FindObjects(s, Template{Ulong(ck.CKA_CLASS, uint(ck.CKO_PUBLIC_KEY)), Bytes(ck.CKA_VALUE, tc.Ek)})
				if len(pubs) == 0 {
					t.Errorf("%s %v: public key not found", file, tc.wpVector)
				}
				if got := pqAttr(t, td, s, k, ck.CKA_VALUE); !bytes.Equal(got, tc.K) {
					mismatch(t, file, tc.wpVector, "shared secret", got, tc.K)
				}
				if id := pqAttr(t, td, s, priv, ck.CKA_ID); len(pubs) > 0 && !bytes.Equal(id, pqAttr(t, td, s, pubs[0], ck.CKA_ID)) {
					t.Errorf("%s %v: the seed's key is not the vector's encapsulation key (ids differ)", file, tc.wpVector)
				}
			}
		}
	})
	c.done(t, "ML-KEM")
}
