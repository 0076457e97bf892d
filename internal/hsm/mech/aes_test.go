package mech

import (
	"bytes"
	"crypto/cipher"
	"crypto/fips140"
	"encoding/binary"
	"fmt"
	"math"
	"testing"
)

// NIST SP 800-38A appendix F.
const (
	sp38aKey128 = "2b7e151628aed2a6abf7158809cf4f3c"
	sp38aKey256 = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"
	sp38aPlain  = "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51 30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710"
	sp38aIV     = "000102030405060708090a0b0c0d0e0f"
	sp38aCtr    = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"
)

func TestNewAES(t *testing.T) {
	for _, n := range []int{16, 24, 32} {
		if _, err := NewAES(make([]byte, n)); err != nil {
			t.Errorf("NewAES(%d bytes) = %v", n, err)
		}
	}
	for _, n := range []int{0, 8, 15, 17, 31, 33, 64} {
		_, err := NewAES(make([]byte, n))
		wantErr(t, err, ErrKeySize)
	}
}

func TestAESKnownAnswers(t *testing.T) {
	tests := []struct {
		name, key, want string
		run             func(b cipher.Block, src []byte) ([]byte, error)
		inv             func(b cipher.Block, src []byte) ([]byte, error)
	}{
		{"ECB-AES128 F.1.1", sp38aKey128,
			"3ad77bb40d7a3660a89ecaf32466ef97 f5d3d58503b9699de785895a96fdbaaf 43b1cd7f598ece23881b00e3ed030688 7b0c785e27e8ad3f8223207104725dd4",
			func(b cipher.Block, s []byte) ([]byte, error) { return EncryptECB(nil, b, s) },
			func(b cipher.Block, s []byte) ([]byte, error) { return DecryptECB(nil, b, s) }},
		{"ECB-AES256 F.1.5", sp38aKey256,
			"f3eed1bdb5d2a03c064b5a7e3db181f8 591ccb10d410ed26dc5ba74a31362870 b6ed21b99ca6f4f9f153e7b1beafed1d 23304b7a39f9f3ff067d8d8f9e24ecc7",
			func(b cipher.Block, s []byte) ([]byte, error) { return EncryptECB(nil, b, s) },
			func(b cipher.Block, s []byte) ([]byte, error) { return DecryptECB(nil, b, s) }},
		{"CBC-AES128 F.2.1", sp38aKey128,
			"7649abac8119b246cee98e9b12e9197d 5086cb9b507219ee95db113a917678b2 73bed6b8e3c1743b7116e69e22229516 3ff1caa1681fac09120eca307586e1a7",
			func(b cipher.Block, s []byte) ([]byte, error) { return EncryptCBC(nil, b, unhex(t, sp38aIV), s) },
			func(b cipher.Block, s []byte) ([]byte, error) { return DecryptCBC(nil, b, unhex(t, sp38aIV), s) }},
		{"CBC-AES256 F.2.5", sp38aKey256,
			"f58c4c04d6e5f1ba779eabfb5f7bfbd6 9cfc4e967edb808d679f777bc6702c7d 39f23369a9d9bacfa530e26304231461 b2eb05e2c39be9fcda6c19078c6a9d1b",
			func(b cipher.Block, s []byte) ([]byte, error) { return EncryptCBC(nil, b, unhex(t, sp38aIV), s) },
			func(b cipher.Block, s []byte) ([]byte, error) { return DecryptCBC(nil, b, unhex(t, sp38aIV), s) }},
		{"CTR-AES128 F.5.1", sp38aKey128,
			"874d6191b620e3261bef6864990db6ce 9806f66b7970fdff8617187bb9fffdff 5ae4df3edbd5d35e5b4f09020db03eab 1e031dda2fbe03d1792170a0f3009cee",
			func(b cipher.Block, s []byte) ([]byte, error) { return CTR(nil, b, unhex(t, sp38aCtr), 128, s) },
			func(b cipher.Block, s []byte) ([]byte, error) { return CTR(nil, b, unhex(t, sp38aCtr), 128, s) }},
		{"CTR-AES256 F.5.5", sp38aKey256,
			"601ec313775789a5b7a7f504bbf3d228 f443e3ca4d62b59aca84e990cacaf5c5 2b0930daa23de94ce87017ba2d84988d dfc9c58db67aada613c2dd08457941a6",
			func(b cipher.Block, s []byte) ([]byte, error) { return CTR(nil, b, unhex(t, sp38aCtr), 16, s) },
			func(b cipher.Block, s []byte) ([]byte, error) { return CTR(nil, b, unhex(t, sp38aCtr), 16, s) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustAES(t, unhex(t, tt.key))
			pt, want := unhex(t, sp38aPlain), unhex(t, tt.want)
			got, err := tt.run(b, pt)
			if err != nil {
				t.Fatal(err)
			}
			wantBytes(t, got, want)
			back, err := tt.inv(b, want)
			if err != nil {
				t.Fatal(err)
			}
			wantBytes(t, back, pt)
		})
	}
}

// oneShot runs a one-shot mode function by name, for table tests.
type oneShot func(dst []byte, b cipher.Block, iv, src []byte) ([]byte, error)

var modes = []struct {
	name     string
	enc, dec oneShot
	anyLen   bool // plaintext of any length
	ctLen    func(n int) int
}{
	{"ECB",
		func(d []byte, b cipher.Block, _, s []byte) ([]byte, error) { return EncryptECB(d, b, s) },
		func(d []byte, b cipher.Block, _, s []byte) ([]byte, error) { return DecryptECB(d, b, s) },
		false, func(n int) int { return n }},
	{"CBC", EncryptCBC, DecryptCBC, false, func(n int) int { return n }},
	{"CBC-PAD", EncryptCBCPad, DecryptCBCPad, true, func(n int) int { return n/16*16 + 16 }},
	{"CTR",
		func(d []byte, b cipher.Block, iv, s []byte) ([]byte, error) { return CTR(d, b, iv, 32, s) },
		func(d []byte, b cipher.Block, iv, s []byte) ([]byte, error) { return CTR(d, b, iv, 32, s) },
		true, func(n int) int { return n }},
}

func TestAESModesRoundTrip(t *testing.T) {
	for _, m := range modes {
		for _, keyLen := range []int{16, 24, 32} {
			t.Run(fmt.Sprintf("%s/AES-%d", m.name, keyLen*8), func(t *testing.T) {
				b := mustAES(t, testBytes(uint64(keyLen), keyLen))
				iv := testBytes(1, 16)
				for n := 0; n <= 80; n++ {
					if !m.anyLen && n%16 != 0 {
						continue
					}
					pt := testBytes(uint64(n), n)
					prefix := []byte("prefix")
					ct, err := m.enc(bytes.Clone(prefix), b, iv, pt)
					if err != nil {
						t.Fatalf("n=%d: %v", n, err)
					}
					if !bytes.HasPrefix(ct, prefix) || len(ct)-len(prefix) != m.ctLen(n) {
						t.Fatalf("n=%d: output %d bytes, want prefix + %d", n, len(ct), m.ctLen(n))
					}
					ct = ct[len(prefix):]
					if n > 0 && bytes.Equal(ct[:n], pt) {
						t.Fatalf("n=%d: ciphertext equals plaintext", n)
					}
					back, err := m.dec(nil, b, iv, ct)
					if err != nil {
						t.Fatalf("n=%d: decrypt: %v", n, err)
					}
					if !bytes.Equal(back, pt) {
						t.Fatalf("n=%d: round trip %x, want %x", n, back, pt)
					}
					// In place: dst = src[:0] with room for the output.
					buf := make([]byte, n, n+16)
					copy(buf, pt)
					inPlace, err := m.enc(buf[:0], b, iv, buf)
					if err != nil {
						t.Fatal(err)
					}
					wantBytes(t, inPlace, ct)
					inPlace, err = m.dec(inPlace[:0], b, iv, inPlace)
					if err != nil {
						t.Fatal(err)
					}
					wantBytes(t, inPlace, pt)
				}
			})
		}
	}
}

func TestAESModesBadInput(t *testing.T) {
	b := mustAES(t, make([]byte, 16))
	iv := make([]byte, 16)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			if m.name != "ECB" {
				for _, n := range []int{0, 8, 15, 17, 32} {
					_, err := m.enc(nil, b, make([]byte, n), make([]byte, 16))
					wantErr(t, err, ErrParam)
				}
			}
			if !m.anyLen {
				for _, n := range []int{1, 15, 17, 33} {
					_, err := m.enc(nil, b, iv, make([]byte, n))
					wantErr(t, err, ErrDataLen)
					_, err = m.dec(nil, b, iv, make([]byte, n))
					wantErr(t, err, ErrDataLen)
				}
			}
			_, err := m.enc(nil, badBlock{}, iv, make([]byte, 16))
			wantErr(t, err, ErrParam)
		})
	}
	for _, n := range []int{0, 1, 15, 17} {
		_, err := DecryptCBCPad(nil, b, iv, make([]byte, n))
		wantErr(t, err, ErrDataLen)
	}
}

// badBlock is a block cipher with the wrong block size.
type badBlock struct{}

func (badBlock) BlockSize() int          { return 8 }
func (badBlock) Encrypt(dst, src []byte) { copy(dst, src) }
func (badBlock) Decrypt(dst, src []byte) { copy(dst, src) }

func TestCBCPadEqualsManualPadding(t *testing.T) {
	b := mustAES(t, testBytes(2, 16))
	iv := testBytes(3, 16)
	for n := 0; n < 40; n++ {
		pt := testBytes(uint64(n), n)
		p := 16 - n%16
		padded := append(bytes.Clone(pt), bytes.Repeat([]byte{byte(p)}, p)...)
		want, err := EncryptCBC(nil, b, iv, padded)
		if err != nil {
			t.Fatal(err)
		}
		got, err := EncryptCBCPad(nil, b, iv, pt)
		if err != nil {
			t.Fatal(err)
		}
		wantBytes(t, got, want)
	}
}

func TestCBCPadBadPadding(t *testing.T) {
	b := mustAES(t, testBytes(4, 32))
	iv := testBytes(5, 16)
	good := bytes.Repeat([]byte{3}, 16)
	tests := []struct {
		name string
		last []byte // the last plaintext block
	}{
		{"zero", append(make([]byte, 15), 0)},
		{"seventeen", append(make([]byte, 15), 17)},
		{"255", append(make([]byte, 15), 255)},
		{"short run", append(make([]byte, 13), 9, 3, 3)},
		{"first byte of 16 wrong", append([]byte{15}, bytes.Repeat([]byte{16}, 15)...)},
		{"middle wrong", []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6, 6, 6, 7, 6, 6}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct, err := EncryptCBC(nil, b, iv, append(bytes.Clone(good), tt.last...))
			if err != nil {
				t.Fatal(err)
			}
			prefix := []byte{0xAA}
			out, err := DecryptCBCPad(prefix, b, iv, ct)
			wantErr(t, err, ErrEncryptedDataInvalid)
			if out != nil {
				t.Fatalf("output %x on bad padding", out)
			}
		})
	}
}

func TestPKCS7PadLenExhaustive(t *testing.T) {
	for p := 0; p < 256; p++ {
		blk := make([]byte, 16)
		for i := range blk {
			blk[i] = byte(p)
		}
		n, ok := pkcs7PadLen(blk)
		valid := p >= 1 && p <= 16
		if (ok == 1) != valid || (valid && n != p) || (!valid && n != 0) {
			t.Fatalf("p=%d: n=%d ok=%d", p, n, ok)
		}
		if !valid {
			continue
		}
		for i := 16 - p; i < 16; i++ { // corrupt one padding byte
			bad := bytes.Clone(blk)
			bad[i] ^= 0x40
			if _, ok := pkcs7PadLen(bad); ok != 0 && i != 15 {
				t.Fatalf("p=%d, byte %d corrupted: accepted", p, i)
			}
		}
	}
}

func TestCTRBudget(t *testing.T) {
	block := func(hi, lo uint64) []byte {
		b := make([]byte, 16)
		binary.BigEndian.PutUint64(b, hi)
		binary.BigEndian.PutUint64(b[8:], lo)
		return b
	}
	max := uint64(math.MaxUint64)
	tests := []struct {
		name   string
		iv     []byte
		bits   int
		budget uint64
	}{
		{"8 bits at 0xfe", block(0, 0x12fe), 8, 32},
		{"8 bits at 0", block(0, 0x1200), 8, 256 * 16},
		{"1 bit at 1", block(0, 1), 1, 16},
		{"1 bit at 0", block(0, 0xfe), 1, 32},
		{"32 bits at max", block(7, 0xffffffff), 32, 16},
		{"63 bits saturating", block(0, 1<<62), 63, max},
		{"59 bits at 0", block(0, 0), 59, 1 << 63},
		{"60 bits at 1", block(0, 1), 60, 1<<64 - 16},
		{"64 bits at max", block(1, max), 64, 16},
		{"64 bits at max-1", block(1, max-1), 64, 32},
		{"64 bits at 0", block(1, 0), 64, max},
		{"64 bits saturating", block(1, 1<<60), 64, max},
		{"65 bits, high bit clear", block(0, max), 65, max},
		{"65 bits, high bit set", block(1, max-1), 65, 32},
		{"128 bits all ones", block(max, max), 128, 16},
		{"128 bits near top", block(max, max-3), 128, 64},
		{"128 bits", block(max-1, max), 128, max},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ctrBudget(tt.iv, tt.bits)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.budget {
				t.Fatalf("budget = %d, want %d", got, tt.budget)
			}
		})
	}
	for _, bits := range []int{-1, 0, 129} {
		_, err := ctrBudget(make([]byte, 16), bits)
		wantErr(t, err, ErrParam)
	}
}

func TestCTRCounterWrap(t *testing.T) {
	b := mustAES(t, testBytes(6, 16))
	iv := unhex(t, "0102030405060708090a0b0c0d0e0efe") // 8-bit counter at 0xfe, 9-bit at 0x0fe
	// Two blocks fit: the keystream is E(..fe), E(..ff), with no carry.
	got, err := CTR(nil, b, iv, 8, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 32)
	b.Encrypt(want, iv)
	next := bytes.Clone(iv)
	next[15] = 0xff
	b.Encrypt(want[16:], next)
	wantBytes(t, got, want)
	for _, n := range []int{33, 48, 1 << 20} {
		_, err := CTR(nil, b, iv, 8, make([]byte, n))
		wantErr(t, err, ErrDataLen)
	}
	// With a 9-bit counter the same IV has room for 258 blocks.
	if _, err := CTR(nil, b, iv, 9, make([]byte, 258*16)); err != nil {
		t.Fatal(err)
	}
	_, err = CTR(nil, b, iv, 9, make([]byte, 258*16+1))
	wantErr(t, err, ErrDataLen)
	_, err = CTR(nil, b, iv, 0, nil)
	wantErr(t, err, ErrParam)
	_, err = CTR(nil, b, iv, 129, nil)
	wantErr(t, err, ErrParam)
}

// The GCM specification (McGrew and Viega), test cases 1-6 (AES-128).
func TestGCMKnownAnswers(t *testing.T) {
	const (
		k   = "feffe9928665731c6d6a8f9467308308"
		p64 = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255"
		p60 = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
		aad = "feedfacedeadbeeffeedfacedeadbeefabaddad2"
	)
	tests := []struct {
		name, key, iv, pt, aad, ct, tag string
	}{
		{"1", "00000000000000000000000000000000", "000000000000000000000000", "", "", "", "58e2fccefa7e3061367f1d57a4e7455a"},
		{"2", "00000000000000000000000000000000", "000000000000000000000000", "00000000000000000000000000000000", "",
			"0388dace60b6a392f328c2b971b2fe78", "ab6e47d42cec13bdf53a67b21257bddf"},
		{"3", k, "cafebabefacedbaddecaf888", p64, "",
			"42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
			"4d5c2af327cd64a62cf35abd2ba6fab4"},
		{"4", k, "cafebabefacedbaddecaf888", p60, aad,
			"42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
			"5bc94fbc3221a5db94fae95ae7121a47"},
		{"5 (8-byte IV)", k, "cafebabefacedbad", p60, aad,
			"61353b4c2806934a777ff51fa22a4755699b2a714fcdc6f83766e5f97b6c742373806900e49f24b22b097544d4896b424989b5e1ebac0f07c23f4598",
			"3612d2e79e3b0785561be14aaca2fccb"},
		{"6 (60-byte IV)", k,
			"9313225df88406e555909c5aff5269aa6a7a9538534f7da1e4c303d2a318a728c3c0c95156809539fcf0e2429a6b525416aedbf5a0de6a57a637b39b",
			p60, aad,
			"8ce24998625615b603a033aca13fb894be9112a5c3a211a8ba262a3cca7e2ca701e4a9a4fba43c90ccdcb281d48c7c6fd62875d2aca417034c34aee5",
			"619cc5aefffe0bfa462af43c1699d050"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustAES(t, unhex(t, tt.key))
			iv, pt, aad := unhex(t, tt.iv), unhex(t, tt.pt), unhex(t, tt.aad)
			want := append(unhex(t, tt.ct), unhex(t, tt.tag)...)
			got, err := SealGCM(nil, b, iv, 16, pt, aad)
			if fips140.Enforced() && err != nil && len(iv) == GCMStandardIVLen {
				// Enforced, GCM seals under no caller's IV; it still opens.
				back, err := OpenGCM(nil, b, iv, 16, want, aad)
				if err != nil {
					t.Fatal(err)
				}
				wantBytes(t, back, pt)
				return
			}
			skipRefusedByFIPSOnly(t, err)
			wantBytes(t, got, want)
			back, err := OpenGCM(nil, b, iv, 16, want, aad)
			if err != nil {
				t.Fatal(err)
			}
			wantBytes(t, back, pt)
			if len(iv) != 12 {
				return
			}
			for tagLen := 12; tagLen < 16; tagLen++ { // a short tag is a prefix of the full one
				got, err := SealGCM(nil, b, iv, tagLen, pt, aad)
				if err != nil {
					t.Fatal(err)
				}
				wantBytes(t, got, want[:len(pt)+tagLen])
				back, err := OpenGCM(nil, b, iv, tagLen, got, aad)
				if err != nil {
					t.Fatal(err)
				}
				wantBytes(t, back, pt)
			}
		})
	}
}

func TestGCMParams(t *testing.T) {
	b := mustAES(t, testBytes(7, 32))
	tests := []struct {
		ivLen, tagLen int
		ok            bool
	}{
		{12, 16, true}, {12, 12, true}, {12, 13, true}, {12, 15, true},
		{1, 16, true}, {8, 16, true}, {16, 16, true}, {60, 16, true}, {256, 16, true},
		{12, 4, false}, {12, 8, false}, {12, 11, false}, {12, 17, false}, {12, 0, false},
		{8, 12, false}, {16, 15, false}, {0, 16, false}, {257, 16, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("iv%d/tag%d", tt.ivLen, tt.tagLen), func(t *testing.T) {
			iv := testBytes(8, tt.ivLen)
			pt := testBytes(9, 33)
			ct, err := SealGCM(nil, b, iv, tt.tagLen, pt, []byte("aad"))
			if !tt.ok {
				wantErr(t, err, ErrParam)
				_, err = OpenGCM(nil, b, iv, tt.tagLen, make([]byte, 64), nil)
				wantErr(t, err, ErrParam)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(ct) != len(pt)+tt.tagLen {
				t.Fatalf("ciphertext %d bytes, want %d", len(ct), len(pt)+tt.tagLen)
			}
			back, err := OpenGCM(nil, b, iv, tt.tagLen, ct, []byte("aad"))
			if err != nil {
				t.Fatal(err)
			}
			wantBytes(t, back, pt)
		})
	}
}

func TestGCMOpenFailures(t *testing.T) {
	b := mustAES(t, testBytes(10, 16))
	iv, pt, aad := testBytes(11, 12), testBytes(12, 40), []byte("header")
	ct, err := SealGCM(nil, b, iv, 16, pt, aad)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(s []byte, i int) []byte { s = bytes.Clone(s); s[i] ^= 1; return s }
	tests := []struct {
		name        string
		b           cipher.Block
		iv, ct, aad []byte
	}{
		{"tag", b, iv, flip(ct, len(ct)-1), aad},
		{"ciphertext", b, iv, flip(ct, 0), aad},
		{"aad", b, iv, ct, flip(aad, 0)},
		{"no aad", b, iv, ct, nil},
		{"iv", b, flip(iv, 11), ct, aad},
		{"key", mustAES(t, testBytes(13, 16)), iv, ct, aad},
		{"truncated", b, iv, ct[:len(ct)-1], aad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := OpenGCM(nil, tt.b, tt.iv, 16, tt.ct, tt.aad)
			wantErr(t, err, ErrAuthFailed)
			wantErr(t, err, ErrEncryptedDataInvalid)
			if out != nil {
				t.Fatal("output on failure")
			}
		})
	}
	_, err = OpenGCM(nil, b, iv, 16, ct[:15], aad)
	wantErr(t, err, ErrDataLen)
	// In place.
	buf := append(make([]byte, 0, len(pt)+16), pt...)
	sealed, err := SealGCM(buf[:0], b, iv, 16, buf, aad)
	if err != nil {
		t.Fatal(err)
	}
	wantBytes(t, sealed, ct)
	opened, err := OpenGCM(sealed[:0], b, iv, 16, sealed, aad)
	if err != nil {
		t.Fatal(err)
	}
	wantBytes(t, opened, pt)
}

func TestNewGCMCached(t *testing.T) {
	b := mustAES(t, testBytes(14, 16))
	a, err := NewGCM(b, 12, 16)
	if err != nil {
		t.Fatal(err)
	}
	iv := testBytes(15, 12)
	want, err := SealGCM(nil, b, iv, 16, []byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	wantBytes(t, a.Seal(nil, iv, []byte("x"), nil), want)
	if _, err := NewGCM(badBlock{}, 12, 16); err == nil {
		t.Fatal("NewGCM accepted a non-AES block")
	}
}

func TestAESNoAllocsWithRoom(t *testing.T) {
	b := mustAES(t, testBytes(16, 16))
	src := testBytes(17, 1024)
	dst := make([]byte, 0, 2048)
	if n := testing.AllocsPerRun(20, func() { _, _ = EncryptECB(dst, b, src) }); n != 0 {
		t.Errorf("EncryptECB allocates %v times", n)
	}
	if n := testing.AllocsPerRun(20, func() { _, _ = DecryptECB(dst, b, src) }); n != 0 {
		t.Errorf("DecryptECB allocates %v times", n)
	}
}
