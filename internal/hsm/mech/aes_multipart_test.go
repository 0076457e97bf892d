package mech

import (
	"bytes"
	"crypto/cipher"
	"fmt"
	"math/rand/v2"
	"testing"
)

// oneShotFor returns the one-shot function equivalent to a multipart mode.
func oneShotFor(mode Mode, dir Direction) oneShot {
	name := mode.String()
	for _, m := range modes {
		if m.name == name {
			if dir == Encrypt {
				return m.enc
			}
			return m.dec
		}
	}
	panic("no one-shot for " + name)
}

// runChunks feeds src to m in chunks of random sizes, checking UpdateLen and
// FinalLen against what Update and Final produce.
func runChunks(t *testing.T, m *Multipart, src []byte, r *rand.Rand) ([]byte, error) {
	t.Helper()
	var out []byte
	for len(src) > 0 {
		k := r.IntN(min(len(src), 40) + 1)
		want := m.UpdateLen(k)
		before := len(out)
		var err error
		out, err = m.Update(out, src[:k])
		if err != nil {
			return nil, err
		}
		if got := len(out) - before; got != want {
			t.Fatalf("Update(%d bytes) appended %d, UpdateLen said %d", k, got, want)
		}
		src = src[k:]
	}
	bound := m.FinalLen()
	before := len(out)
	out, err := m.Final(out)
	if err != nil {
		return nil, err
	}
	if got := len(out) - before; got > bound {
		t.Fatalf("Final appended %d bytes, FinalLen said at most %d", got, bound)
	}
	return out, nil
}

func TestMultipartMatchesOneShot(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, mode := range []Mode{ModeECB, ModeCBC, ModeCBCPad, ModeCTR} {
		for _, keyLen := range []int{16, 24, 32} {
			t.Run(fmt.Sprintf("%v/AES-%d", mode, keyLen*8), func(t *testing.T) {
				b := mustAES(t, testBytes(uint64(keyLen), keyLen))
				iv := testBytes(2, 16)
				for n := 0; n <= 100; n++ {
					if (mode == ModeECB || mode == ModeCBC) && n%16 != 0 {
						continue
					}
					pt := testBytes(uint64(n), n)
					want, err := oneShotFor(mode, Encrypt)(nil, b, iv, pt)
					if err != nil {
						t.Fatal(err)
					}
					for range 3 { // several chunkings
						enc, err := NewMultipart(b, mode, Encrypt, iv, 32)
						if err != nil {
							t.Fatal(err)
						}
						got, err := runChunks(t, enc, pt, r)
						if err != nil {
							t.Fatalf("n=%d: %v", n, err)
						}
						wantBytes(t, got, want)
						dec, err := NewMultipart(b, mode, Decrypt, iv, 32)
						if err != nil {
							t.Fatal(err)
						}
						back, err := runChunks(t, dec, want, r)
						if err != nil {
							t.Fatalf("n=%d: decrypt: %v", n, err)
						}
						wantBytes(t, back, pt)
					}
				}
			})
		}
	}
}

func TestMultipartCBCPadHoldsBackLastBlock(t *testing.T) {
	b := mustAES(t, testBytes(3, 16))
	iv := testBytes(4, 16)
	pt := testBytes(5, 20)
	ct, err := EncryptCBCPad(nil, b, iv, pt) // 32 bytes
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMultipart(b, ModeCBCPad, Decrypt, iv, 0)
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.Update(nil, ct[:16])
	if err != nil || len(out) != 0 {
		t.Fatalf("Update(first block) = %x, %v; want nothing held back", out, err)
	}
	out, err = m.Update(out, ct[16:])
	if err != nil || len(out) != 16 {
		t.Fatalf("Update(second block) = %d bytes, %v; want 16", len(out), err)
	}
	out, err = m.Final(out)
	if err != nil {
		t.Fatal(err)
	}
	wantBytes(t, out, pt)
}

func TestMultipartFinalErrors(t *testing.T) {
	b := mustAES(t, testBytes(6, 16))
	iv := testBytes(7, 16)
	badPad, err := EncryptCBC(nil, b, iv, bytes.Repeat([]byte{0x11}, 32))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		mode  Mode
		dir   Direction
		input []byte
		want  error
	}{
		{"ECB partial", ModeECB, Encrypt, make([]byte, 17), ErrDataLen},
		{"ECB decrypt partial", ModeECB, Decrypt, make([]byte, 5), ErrDataLen},
		{"CBC partial", ModeCBC, Encrypt, make([]byte, 31), ErrDataLen},
		{"CBC-PAD decrypt empty", ModeCBCPad, Decrypt, nil, ErrDataLen},
		{"CBC-PAD decrypt partial", ModeCBCPad, Decrypt, make([]byte, 24), ErrDataLen},
		{"CBC-PAD decrypt bad padding", ModeCBCPad, Decrypt, badPad, ErrEncryptedDataInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewMultipart(b, tt.mode, tt.dir, iv, 0)
			if err != nil {
				t.Fatal(err)
			}
			out, err := m.Update(nil, tt.input)
			if err != nil {
				t.Fatal(err)
			}
			_, err = m.Final(out)
			wantErr(t, err, tt.want)
			_, err = m.Final(nil)
			wantErr(t, err, ErrDone)
			_, err = m.Update(nil, []byte{1})
			wantErr(t, err, ErrDone)
		})
	}
}

func TestMultipartCTRWrap(t *testing.T) {
	b := mustAES(t, testBytes(8, 16))
	iv := unhex(t, "000000000000000000000000000000fe")
	m, err := NewMultipart(b, ModeCTR, Encrypt, iv, 8)
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.Update(nil, make([]byte, 20))
	if err != nil {
		t.Fatal(err)
	}
	out, err = m.Update(out, make([]byte, 12))
	if err != nil {
		t.Fatal(err)
	}
	want, err := CTR(nil, b, iv, 8, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	wantBytes(t, out, want)
	_, err = m.Update(out, make([]byte, 1))
	wantErr(t, err, ErrDataLen)
	_, err = m.Update(nil, nil)
	wantErr(t, err, ErrDone)
}

func TestNewMultipartBadParams(t *testing.T) {
	b := mustAES(t, make([]byte, 16))
	iv := make([]byte, 16)
	tests := []struct {
		name string
		b    cipher.Block
		mode Mode
		dir  Direction
		iv   []byte
		bits int
	}{
		{"mode 0", b, 0, Encrypt, iv, 0},
		{"mode 9", b, 9, Encrypt, iv, 0},
		{"direction 0", b, ModeCBC, 0, iv, 0},
		{"CBC short IV", b, ModeCBC, Encrypt, iv[:8], 0},
		{"CBC-PAD no IV", b, ModeCBCPad, Decrypt, nil, 0},
		{"CTR 0 bits", b, ModeCTR, Encrypt, iv, 0},
		{"CTR 129 bits", b, ModeCTR, Encrypt, iv, 129},
		{"ECB bad block", badBlock{}, ModeECB, Encrypt, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewMultipart(tt.b, tt.mode, tt.dir, tt.iv, tt.bits)
			wantErr(t, err, ErrParam)
		})
	}
	if s := Mode(9).String(); s != "Mode(9)" {
		t.Errorf("Mode(9).String() = %q", s)
	}
}
