package mech

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"
)

var curves = []struct {
	name  string
	c     elliptic.Curve
	n     int // byte length
	oid   string
	point int // uncompressed point length
	der   int // DER OCTET STRING length
}{
	{"P-256", elliptic.P256(), 32, "06082a8648ce3d030107", 65, 67},
	{"P-384", elliptic.P384(), 48, "06052b81040022", 97, 99},
	{"P-521", elliptic.P521(), 66, "06052b81040023", 133, 136},
}

func testECKey(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := GenerateEC(nil, c)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestGenerateECUnsupported(t *testing.T) {
	_, err := GenerateEC(nil, elliptic.P224())
	wantErr(t, err, ErrCurve)
	_, err = GenerateEC(nil, nil)
	wantErr(t, err, ErrCurve)
}

func TestCurveOIDs(t *testing.T) {
	for _, tc := range curves {
		t.Run(tc.name, func(t *testing.T) {
			oid, err := CurveOID(tc.c)
			if err != nil {
				t.Fatal(err)
			}
			wantBytes(t, oid, unhex(t, tc.oid))
			c, err := CurveFromOID(oid)
			if err != nil || c != tc.c {
				t.Fatalf("CurveFromOID = %v, %v", c, err)
			}
			oid[0] = 0 // the result is a copy
			if again, _ := CurveOID(tc.c); again[0] != 0x06 {
				t.Fatal("CurveOID returned shared storage")
			}
		})
	}
	for name, der := range map[string]string{
		"P-224":           "06052b81040021",
		"secp256k1":       "06052b8104000a",
		"truncated P-256": "06082a8648ce3d0301",
		"trailing byte":   "06082a8648ce3d03010700",
		"printable name":  "130a7072696d653235367631", // "prime256v1"
		"Ed25519":         "06032b6570",
		"empty":           "",
	} {
		_, err := CurveFromOID(unhex(t, der))
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
		wantErr(t, err, ErrCurve)
	}
	_, err := CurveOID(elliptic.P224())
	wantErr(t, err, ErrCurve)
}

func TestECDSA(t *testing.T) {
	for _, tc := range curves {
		t.Run(tc.name, func(t *testing.T) {
			k := testECKey(t, tc.c)
			pub := &k.PublicKey
			msg := []byte("ecdsa message")
			for _, h := range allHashes {
				sig, err := SignECDSAHash(nil, k, h, msg)
				if err != nil {
					t.Fatal(err)
				}
				if len(sig) != 2*tc.n {
					t.Fatalf("signature of %d bytes, want %d", len(sig), 2*tc.n)
				}
				if err := VerifyECDSAHash(pub, h, msg, sig); err != nil {
					t.Fatalf("%v: %v", h, err)
				}
				// The standard library agrees, through the DER form.
				der, err := ECDSASigToDER(tc.c, sig)
				if err != nil {
					t.Fatal(err)
				}
				if !ecdsa.VerifyASN1(pub, mustDigest(t, h, msg), der) {
					t.Fatalf("%v: standard library rejects the converted signature", h)
				}
				wantErr(t, VerifyECDSAHash(pub, h, []byte("other"), sig), ErrSignatureInvalid)
			}
			// Raw digests of any length (CKM_ECDSA); the standard library
			// truncates long ones.
			for _, n := range []int{1, 20, tc.n, 64, 100} {
				d := testBytes(uint64(n), n)
				sig, err := SignECDSA(rand.Reader, k, d)
				if err != nil {
					t.Fatal(err)
				}
				if err := VerifyECDSA(pub, d, sig); err != nil {
					t.Fatalf("digest of %d bytes: %v", n, err)
				}
			}
		})
	}
}

func TestECDSAVerifyFailures(t *testing.T) {
	k := testECKey(t, elliptic.P256())
	other := testECKey(t, elliptic.P256())
	d := mustDigest(t, crypto.SHA256, []byte("m"))
	sig, err := SignECDSA(nil, k, d)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte { s := bytes.Clone(sig); s[i] ^= 1; return s }
	order := unhex(t, "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551")
	tests := []struct {
		name string
		pub  *ecdsa.PublicKey
		sig  []byte
		want error
	}{
		{"flipped r", &k.PublicKey, flip(0), ErrSignatureInvalid},
		{"flipped s", &k.PublicKey, flip(63), ErrSignatureInvalid},
		{"other key", &other.PublicKey, sig, ErrSignatureInvalid},
		{"odd length", &k.PublicKey, sig[:63], ErrSignatureLen},
		{"halves misread", &k.PublicKey, sig[:62], ErrSignatureInvalid},
		{"long", &k.PublicKey, append(bytes.Clone(sig), 0), ErrSignatureLen},
		{"P-384 length", &k.PublicKey, make([]byte, 96), ErrSignatureLen},
		{"empty", &k.PublicKey, nil, ErrSignatureLen},
		{"zeros", &k.PublicKey, make([]byte, 64), ErrSignatureInvalid},
		{"r = n", &k.PublicKey, append(bytes.Clone(order), sig[32:]...), ErrSignatureInvalid},
		{"s = n", &k.PublicKey, append(bytes.Clone(sig[:32]), order...), ErrSignatureInvalid},
		{"all ones", &k.PublicKey, bytes.Repeat([]byte{0xff}, 64), ErrSignatureInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, VerifyECDSA(tt.pub, d, tt.sig), tt.want)
		})
	}
	_, err = SignECDSAHash(nil, k, crypto.MD5, []byte("m"))
	wantErr(t, err, ErrParam)
}

// TestECDSAVerifyShortRS: PKCS #11 lets a signature passed in for
// verification be shorter than twice the curve's byte length, r and s each
// half of it. SunPKCS11 drops the leading zero bytes of r and s (it has only
// the integers of the DER signature it converts), so when both have one, the
// 64-byte P-256 signature reaches the device as 62 bytes; the device said
// CKR_SIGNATURE_LEN_RANGE and Java's verify of a good signature failed.
// The vector: a P-256 key and a signature whose r and s both are below 2^248.
func TestECDSAVerifyShortRS(t *testing.T) {
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), unhex(t, shortRSPoint))
	if err != nil {
		t.Fatal(err)
	}
	d := mustDigest(t, crypto.SHA256, []byte(shortRSMessage))
	rs := unhex(t, shortRSR+shortRSS)
	if err := VerifyECDSA(pub, d, rs); err != nil {
		t.Fatalf("the 64-byte signature: %v", err)
	}
	short := append(bytes.Clone(rs[1:32]), rs[33:]...) // each half without its leading zero
	if err := VerifyECDSA(pub, d, short); err != nil {
		t.Fatalf("the same signature as 62 bytes: %v", err)
	}
	wantErr(t, VerifyECDSA(pub, mustDigest(t, crypto.SHA256, []byte("other")), short), ErrSignatureInvalid)
	wantErr(t, VerifyECDSA(pub, d, short[:61]), ErrSignatureLen)
	wantErr(t, VerifyECDSA(pub, d, append(bytes.Clone(rs), 0, 0)), ErrSignatureLen)
}

// The short-r-and-s vector (generated with crypto/ecdsa: a fresh key, signed
// until r and s both had a zero top byte).
const (
	shortRSPoint   = "04b94fac8b35a90dd0c5f4af834e1320e5c1af66a05d99f69743ca78119ebdf19c4e28cc67ad3eaf90250d9835c8d93758b7beeaecc9475eed3c3753a8ff6fa99a"
	shortRSMessage = "r and s both shorter than 32 bytes"
	shortRSR       = "00b8b59122f55b87b74e9bde0fbf226c59c9292731660c9c9619573c09d04a6e"
	shortRSS       = "001fc8be4556b35fc20f93c23621b14c2d84cc318f4340da2baec1af182c57a3"
)

func TestECDSASigDER(t *testing.T) {
	tests := []struct {
		name, rs, der string
	}{
		{"small values", "00000000000000000000000000000000000000000000000000000000000000010000000000000000000000000000000000000000000000000000000000000002",
			"3006020101020102"},
		{"high bit needs a zero", "80" + zeros(31) + "7f" + zeros(31),
			"3045022100" + "80" + zeros(31) + "0220" + "7f" + zeros(31)},
		{"zero", zeros(64), "3006020100020100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			der, err := ECDSASigToDER(elliptic.P256(), unhex(t, tt.rs))
			if err != nil {
				t.Fatal(err)
			}
			wantBytes(t, der, unhex(t, tt.der))
			rs, err := ECDSASigFromDER(elliptic.P256(), der)
			if err != nil {
				t.Fatal(err)
			}
			wantBytes(t, rs, unhex(t, tt.rs))
		})
	}
	bad := map[string]string{
		"empty":              "",
		"trailing data":      "300602010102010200",
		"inner trailing":     "3009020101020102020103",
		"one integer":        "3003020101",
		"negative r":         "3006020181020102",
		"non-minimal r":      "300702020001020102",
		"not a sequence":     "3106020101020102",
		"r too long":         "3026022101" + zeros(32) + "020102",
		"long-form length":   "308106020101020102",
		"empty integer":      "30050200020102",
		"octet string for r": "3006040101020102",
	}
	for name, h := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := ECDSASigFromDER(elliptic.P256(), unhex(t, h))
			wantErr(t, err, ErrEncoding)
		})
	}
	_, err := ECDSASigToDER(elliptic.P256(), make([]byte, 63))
	wantErr(t, err, ErrEncoding)
	_, err = ECDSASigToDER(elliptic.P224(), make([]byte, 56))
	wantErr(t, err, ErrCurve)
}

func zeros(n int) string { return string(bytes.Repeat([]byte("00"), n)) }

func TestECPointEncoding(t *testing.T) {
	for _, tc := range curves {
		t.Run(tc.name, func(t *testing.T) {
			k := testECKey(t, tc.c)
			raw, err := MarshalECPoint(&k.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			der, err := MarshalECPointDER(&k.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			if len(raw) != tc.point || raw[0] != 0x04 || len(der) != tc.der || der[0] != 0x04 {
				t.Fatalf("raw %d bytes, DER %d bytes", len(raw), len(der))
			}
			if !bytes.HasSuffix(der, raw) {
				t.Fatal("DER form does not wrap the raw point")
			}
			for _, in := range [][]byte{raw, der} {
				pub, err := ParseECPoint(tc.c, in)
				if err != nil {
					t.Fatal(err)
				}
				if !pub.Equal(&k.PublicKey) {
					t.Fatal("parsed point differs")
				}
			}
			offCurve := bytes.Clone(raw)
			offCurve[len(offCurve)-1] ^= 1
			compressed := append([]byte{0x02 | raw[len(raw)-1]&1}, raw[1:1+tc.n]...)
			for name, in := range map[string][]byte{
				"off curve":      offCurve,
				"compressed":     compressed,
				"truncated":      raw[:len(raw)-1],
				"DER truncated":  der[:len(der)-1],
				"DER trailing":   append(bytes.Clone(der), 0),
				"infinity":       {0},
				"zeros":          make([]byte, tc.point),
				"DER off curve":  append(bytes.Clone(der[:len(der)-len(raw)]), offCurve...),
				"empty":          nil,
				"other DER type": append([]byte{0x03}, der[1:]...),
			} {
				_, err := ParseECPoint(tc.c, in)
				if err == nil {
					t.Errorf("%s: accepted", name)
				}
				wantErr(t, err, ErrEncoding)
			}
		})
	}
	_, err := ParseECPoint(elliptic.P224(), make([]byte, 57))
	wantErr(t, err, ErrCurve)
}

func TestParseECPrivateScalar(t *testing.T) {
	for _, tc := range curves {
		t.Run(tc.name, func(t *testing.T) {
			k := testECKey(t, tc.c)
			d, err := k.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseECPrivateScalar(tc.c, d)
			if err != nil || !got.Equal(k) {
				t.Fatalf("ParseECPrivateScalar = %v", err)
			}
			// A short value is left-padded.
			one, err := ParseECPrivateScalar(tc.c, []byte{1})
			if err != nil {
				t.Fatal(err)
			}
			gx, err := MarshalECPoint(&one.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			wantBytes(t, gx[1:1+tc.n], tc.c.Params().Gx.FillBytes(make([]byte, tc.n)))
			for name, in := range map[string][]byte{
				"zero":  make([]byte, tc.n),
				"order": tc.c.Params().N.FillBytes(make([]byte, tc.n)),
				"long":  append([]byte{0}, d...),
				"empty": nil,
			} {
				_, err := ParseECPrivateScalar(tc.c, in)
				if err == nil {
					t.Errorf("%s: accepted", name)
				}
				wantErr(t, err, ErrEncoding)
			}
		})
	}
}

func TestECDH(t *testing.T) {
	for idx, tc := range curves {
		t.Run(tc.name, func(t *testing.T) {
			a, b := testECKey(t, tc.c), testECKey(t, tc.c)
			bRaw, _ := MarshalECPoint(&b.PublicKey)
			aDER, _ := MarshalECPointDER(&a.PublicKey)
			z1, err := DeriveECDH(a, bRaw)
			if err != nil {
				t.Fatal(err)
			}
			z2, err := DeriveECDH(b, aDER)
			if err != nil {
				t.Fatal(err)
			}
			wantBytes(t, z1, z2)
			if len(z1) != tc.n {
				t.Fatalf("shared secret of %d bytes, want %d", len(z1), tc.n)
			}
			// Against crypto/ecdh directly.
			ae, _ := a.ECDH()
			be, _ := b.PublicKey.ECDH()
			want, err := ae.ECDH(be)
			if err != nil {
				t.Fatal(err)
			}
			wantBytes(t, z1, want)

			offCurve := bytes.Clone(bRaw)
			offCurve[len(offCurve)-1] ^= 1
			other := testECKey(t, curves[(idx+1)%len(curves)].c)
			otherRaw, _ := MarshalECPoint(&other.PublicKey)
			for name, peer := range map[string][]byte{
				"off curve":   offCurve,
				"other curve": otherRaw,
				"infinity":    {0},
				"compressed":  append([]byte{2}, bRaw[1:1+tc.n]...),
				"empty":       nil,
			} {
				_, err := DeriveECDH(a, peer)
				if err == nil {
					t.Errorf("%s: accepted", name)
				}
				wantErr(t, err, ErrParam)
			}
		})
	}
}

// RFC 5903 §8.1: ECDH on P-256.
func TestECDHKnownAnswer(t *testing.T) {
	i, err := ParseECPrivateScalar(elliptic.P256(), unhex(t, "C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433"))
	if err != nil {
		t.Fatal(err)
	}
	gi, _ := MarshalECPoint(&i.PublicKey)
	wantBytes(t, gi, unhex(t, "04 DAD0B65394221CF9B051E1FECA5787D098DFE637FC90B9EF945D0C3772581180 5271A0461CDB8252D61F1C456FA3E59AB1F45B33ACCF5F58389E0577B8990BB3"))
	gr := unhex(t, "04 D12DFB5289C8D4F81208B70270398C342296970A0BCCB74C736FC7554494BF63 56FBF3CA366CC23E8157854C13C58D6AAC23F046ADA30F8353E74F33039872AB")
	z, err := DeriveECDH(i, gr)
	if err != nil {
		t.Fatal(err)
	}
	wantBytes(t, z, unhex(t, "D6840F6B42F6EDAFD13116E0E12565202FEF8E9ECE7DCE03812464D04B9442DE"))
}
