package mech

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/fips140"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
)

// Known-answer tests. The device calls SelfTest once at start-up and refuses
// to serve if it fails; the function keeps no state, so a caller that wants
// "once" semantics holds its own sync.Once. Key generation needs no KAT
// beyond its own pairwise consistency test.

// pairwiseDigest is the fixed digest signed by the pairwise consistency tests.
func pairwiseDigest() [32]byte {
	return sha256.Sum256([]byte("coffer pairwise consistency test"))
}

// errKAT is the cause reported when a known answer does not match.
var errKAT = errors.New("known answer mismatch")

// SelfTest runs the known-answer tests: SHA-256, HMAC-SHA-256, AES-GCM
// (seal, open, tag rejection; and a round trip under a random IV), AES-CMAC, AES key wrap, RSA PKCS #1 v1.5
// verification, ECDSA P-256 verification, Ed25519 signing and
// verification, ML-DSA-44 key generation from a seed with deterministic
// signing and verification, and ML-KEM-768 key generation from a seed. It
// returns an error wrapping ErrSelfTest and naming the
// first test that failed.
func SelfTest() error {
	tests := []struct {
		name string
		run  func() error
	}{
		{"SHA-256", katSHA256},
		{"HMAC-SHA-256", katHMAC},
		{"AES-GCM", katGCM},
		{"AES-GCM random IV", testGCMRandomIV},
		{"AES-CMAC", katCMAC},
		{"AES-KW", katKW},
		{"X9.63 KDF SHA-256", katX963},
		{"SP 800-108 KDF HMAC-SHA-256", katKBKDF},
		{"RSA PKCS#1 v1.5 verify", katRSA},
		{"ECDSA P-256 verify", katECDSA},
		{"Ed25519", katEd25519},
		{"ML-DSA-44", katMLDSA},
		{"ML-KEM-768 key generation", katMLKEM},
	}
	for _, t := range tests {
		if err := t.run(); err != nil {
			return fmt.Errorf("mech: self-test %s: %w: %v", t.name, ErrSelfTest, err)
		}
	}
	return nil
}

// hexes decodes hex strings; a typo in a constant fails the self-test.
func hexes(s ...string) ([][]byte, error) {
	out := make([][]byte, len(s))
	for i, h := range s {
		b, err := hex.DecodeString(h)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

func expect(got, want []byte, err error) error {
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return errKAT
	}
	return nil
}

// NIST CAVS ANSI X9.63 KDF, SHA-256, shared info of 128 bits.
func katX963() error {
	v, err := hexes("22518b10e70f2a3f243810ae3254139efbee04aa57c7af7d", "75eef81aa3041e33b80971203d2c0c52",
		"c498af77161cc59f2962b9a713e2b215152d139766ce34a776df11866a69bf2e52a13d9c7c6fc878c50c5ea0bc7b00e0da2447cfd874f6cf"+
			"92f30d0097111485500c90c3af8b487872d04685d14c8d1dc8d7fa08beb0ce0ababc11f0bd496269142d43525a78e5bc79a17f59676a5706dc54d54d4d1f0bd7e386128ec26afc21")
	if err != nil {
		return err
	}
	got, err := X963KDF(crypto.SHA256, v[0], v[1], len(v[2]))
	return expect(got, v[2], err)
}

// NIST CAVP KBKDF counter mode, HMAC-SHA-256, counter (32 bits) before the
// fixed input.
func katKBKDF() error {
	v, err := hexes("dd1d91b7d90b2bd3138533ce92b272fbf8a369316aefe242e659cc0ae238afe0",
		"01322b96b30acd197979444e468e1c5c6859bf1b1cf951b7e725303e237e46b864a145fab25e517b08f8683d0315bb2911d80a0e8aba17f3b413faac",
		"10621342bfb0fd40046c0e29f2cfdbf0")
	if err != nil {
		return err
	}
	got, err := KBKDFCounterHMAC(crypto.SHA256, v[0], []KBKDFSegment{{Kind: KBKDFCounter, WidthBits: 32}, {Kind: KBKDFBytes, Bytes: v[1]}}, len(v[2]))
	return expect(got, v[2], err)
}

// FIPS 180-2 appendix B.1.
func katSHA256() error {
	v, err := hexes("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
	if err != nil {
		return err
	}
	got, err := Digest(nil, crypto.SHA256, []byte("abc"))
	return expect(got, v[0], err)
}

// RFC 4231 test case 1 (its 160-bit key is long enough for FIPS 140-only mode).
func katHMAC() error {
	v, err := hexes("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
	if err != nil {
		return err
	}
	key, msg := v[0], []byte("Hi There")
	v = v[1:]
	got, err := SignHMAC(crypto.SHA256, key, msg, sha256.Size)
	if err := expect(got, v[0], err); err != nil {
		return err
	}
	return VerifyHMAC(crypto.SHA256, key, msg, v[0], sha256.Size)
}

// testGCMRandomIV seals under an IV the device chooses and opens the
// result, the path FIPS 140-only mode allows and the store's sealing takes.
// It is a consistency test (the IV is random): it proves the path works on
// the crypto backend the binary runs, which the known answer above cannot.
func testGCMRandomIV() error {
	b, err := NewAES(make([]byte, 32))
	if err != nil {
		return err
	}
	pt, aad := []byte("coffer GCM random IV self-test"), []byte("aad")
	iv, ct, err := SealGCMRandomIV(nil, nil, b, GCMTagLen, pt, aad)
	if err != nil {
		return err
	}
	got, err := OpenGCMPrefixedIV(nil, b, GCMTagLen, append(iv, ct...), aad)
	if err := expect(got, pt, err); err != nil {
		return err
	}
	ct[0] ^= 1
	if _, err := OpenGCMPrefixedIV(nil, b, GCMTagLen, append(iv, ct...), aad); !errors.Is(err, ErrAuthFailed) {
		return fmt.Errorf("altered ciphertext opened (%v)", err)
	}
	return nil
}

// The GCM specification (McGrew and Viega), test case 4. In FIPS 140-only
// mode the standard library refuses caller-chosen IVs, so GCM through this
// package is unavailable and the test is skipped (the module runs its own
// GCM self-test).
func katGCM() error {
	if fips140.Enforced() {
		return nil
	}
	v, err := hexes(
		"feffe9928665731c6d6a8f9467308308",
		"cafebabefacedbaddecaf888",
		"feedfacedeadbeeffeedfacedeadbeefabaddad2",
		"d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
		"42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091"+
			"5bc94fbc3221a5db94fae95ae7121a47")
	if err != nil {
		return err
	}
	key, iv, aad, pt, ct := v[0], v[1], v[2], v[3], v[4]
	b, err := NewAES(key)
	if err != nil {
		return err
	}
	got, err := SealGCM(nil, b, iv, GCMTagLen, pt, aad)
	if err := expect(got, ct, err); err != nil {
		return err
	}
	got, err = OpenGCM(nil, b, iv, GCMTagLen, ct, aad)
	if err := expect(got, pt, err); err != nil {
		return err
	}
	bad := bytes.Clone(ct)
	bad[len(bad)-1] ^= 1
	if _, err := OpenGCM(nil, b, iv, GCMTagLen, bad, aad); !errors.Is(err, ErrAuthFailed) {
		return errors.New("modified tag accepted")
	}
	return nil
}

// RFC 4493 §4 example 2.
func katCMAC() error {
	v, err := hexes("2b7e151628aed2a6abf7158809cf4f3c", "6bc1bee22e409f96e93d7e117393172a", "070a16b46b4d4144f79bdd9dd04a287c")
	if err != nil {
		return err
	}
	b, err := NewAES(v[0])
	if err != nil {
		return err
	}
	got, err := SignCMAC(b, v[1], CMACSize)
	return expect(got, v[2], err)
}

// RFC 3394 §4.1.
func katKW() error {
	v, err := hexes("000102030405060708090a0b0c0d0e0f", "00112233445566778899aabbccddeeff", "1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5")
	if err != nil {
		return err
	}
	b, err := NewAES(v[0])
	if err != nil {
		return err
	}
	got, err := WrapKW(nil, b, nil, v[1])
	if err := expect(got, v[2], err); err != nil {
		return err
	}
	got, err = UnwrapKW(nil, b, nil, v[2])
	return expect(got, v[1], err)
}

// An RSA-2048 signature made by OpenSSL (openssl dgst -sha256 -sign) over
// "abc", e = 65537.
func katRSA() error {
	v, err := hexes(
		"c5862c677b556d27e6a1df67c3488a0e50ac9be077a59358e10bbed628a0996b943b54a8310e04d9933d6bb56274cd75228e0cbe09f06bf31fcb1c7046fe3491"+
			"93eab32bbc8eec29d7da8e1bc20c365207cb076855b5e3b9d60a54f64559ce104310fa59721153db901d5b4793bd2433febaf9c746308d20f9a7d030ddc7c2f2"+
			"ae006c6858474a4e6d268a7c8018c90680f98eef82d7c53ec6fcee4b6c7d4c82b262ae3ac3fd25992112609942903563c07a205a4809570cf013e19cbdddd02"+
			"1407bd66a00fe17d50152d1116d74c2a28e9f19dba2542726fb6e295656b201dd5100260440474c85ee9e1b677133ab6de93c25c5c13560816ce592305357e2e3",
		"91636ea1b54ace6218cdaae34d9af9fc9544ac2bcee115b0d6234c0d99a0320e7fff85fbc2810ff0f87863e09f1ce2d6313d25e570cab95e31fa8da132c8d43a"+
			"b9c95f32d3cbc18c965880cd82a43099af576ccf1d2abc971bb35e28599a54343afb67ee6a735de4501fca35d2f76af628b35ad724f083c8a0f584946dd74e9"+
			"33feb22bdc4830fab6858c7f47fef8033acb1040175b9e49ec4e37fd5bd0bbc7b9d949426b77ea8c212e72679a6b273d3b03fc0a0d7f81bd00573ab39c0aa30"+
			"6f008ed3389f6fa151d809e3d093db48516f62d8f1617aa2fe1b73b1be98af399fdc1bd2451949c04521e12001e0a63ac9168b939a1ec0c2753dcc4c21d23480b6")
	if err != nil {
		return err
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(v[0]), E: RSAExponent}
	msg, sig := []byte("abc"), v[1]
	if err := VerifyPKCS1v15Hash(pub, crypto.SHA256, msg, sig); err != nil {
		return err
	}
	if VerifyPKCS1v15Hash(pub, crypto.SHA256, []byte("abd"), sig) == nil {
		return errors.New("wrong message accepted")
	}
	return nil
}

// An ECDSA P-256 signature made by OpenSSL over SHA-256("abc"), as r||s.
func katECDSA() error {
	v, err := hexes(
		"0461aa2d748cd9246a1522f70edf597e5287065cfafa3dca91e5aa2e0833be03a1249ba8b8f4395bcb3a0d5d94fd109fc5001acfdff7c6dac5bceb8d7dbf43561e",
		"701a2929b8e83c3b759c1f49b4610977d90ca76ed57b0b7672fc62af68e55518"+
			"85946f95e252f8d2a5dfdd6dfe525b7df3243fb1397ec1a484ffbc42c70569f0")
	if err != nil {
		return err
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), v[0])
	if err != nil {
		return err
	}
	msg, sig := []byte("abc"), v[1]
	if err := VerifyECDSAHash(pub, crypto.SHA256, msg, sig); err != nil {
		return err
	}
	if VerifyECDSAHash(pub, crypto.SHA256, []byte("abd"), sig) == nil {
		return errors.New("wrong message accepted")
	}
	return nil
}

// RFC 8032 §7.1 test 1 (empty message).
func katEd25519() error {
	v, err := hexes(
		"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
		"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
		"e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")
	if err != nil {
		return err
	}
	priv, err := Ed25519FromSeed(v[0])
	if err != nil {
		return err
	}
	if !bytes.Equal(priv.Public().(ed25519.PublicKey), v[1]) {
		return errKAT
	}
	got, err := SignEd25519(priv, nil)
	if err := expect(got, v[2], err); err != nil {
		return err
	}
	return VerifyEd25519(v[1], nil, v[2])
}

// Wycheproof mldsa_44_sign_seed_test.json tcId 1: the key from the seed
// signs "Hello world" deterministically into the vector's signature (its
// SHA-256 here), which then verifies.
func katMLDSA() error {
	v, err := hexes("2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a",
		"8cd6fc03daa72e87210a4e721523e84c14f27733789075e65736744d4787fdd5")
	if err != nil {
		return err
	}
	p, err := MLDSAParams(44)
	if err != nil {
		return err
	}
	k, err := MLDSAFromSeed(p, v[0])
	if err != nil {
		return err
	}
	msg := []byte("Hello world")
	sig, err := SignMLDSA(k, msg, nil, true)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(sig)
	if err := expect(sum[:], v[1], nil); err != nil {
		return err
	}
	return VerifyMLDSA(k.PublicKey(), msg, nil, sig)
}

// Wycheproof mlkem_test.json, the ML-KEM-768 MLKEMTest vector: the seed
// gives the vector's encapsulation key (its SHA-256 here), and a pairwise
// encapsulation decapsulates to the same secret.
func katMLKEM() error {
	v, err := hexes("cbfc4405d1b2a3a386c94c25e0f2d5f5ee92cb0388ff4d6aa04223086d51c3fd24752da14c9fc3b8ae0d9e4a8b1016b8d8fc69e229c03ea2ef08a4ae0cffc37f",
		"67fe2cb60768d55758c67bfd5842692dedb14513d581c48db2cd3adf94568106")
	if err != nil {
		return err
	}
	dk, err := MLKEMFromSeed(768, v[0])
	if err != nil {
		return err
	}
	ek := MLKEMPublic(dk)
	sum := sha256.Sum256(ek.Bytes())
	if err := expect(sum[:], v[1], nil); err != nil {
		return err
	}
	ss, ct := ek.Encapsulate()
	got, err := DecapsulateMLKEM(dk, ct)
	return expect(got, ss, err)
}
