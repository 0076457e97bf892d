package mech

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
)

// RFC 3394 §4.
func TestKWRFC3394(t *testing.T) {
	const (
		kek128 = "000102030405060708090A0B0C0D0E0F"
		kek192 = "000102030405060708090A0B0C0D0E0F1011121314151617"
		kek256 = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F"
		data16 = "00112233445566778899AABBCCDDEEFF"
		data24 = "00112233445566778899AABBCCDDEEFF0001020304050607"
		data32 = "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F"
	)
	tests := []struct{ name, kek, data, wrapped string }{
		{"4.1 128-bit data, 128-bit KEK", kek128, data16, "1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5"},
		{"4.2 128-bit data, 192-bit KEK", kek192, data16, "96778B25AE6CA435 F92B5B97C050AED2 468AB8A17AD84E5D"},
		{"4.3 128-bit data, 256-bit KEK", kek256, data16, "64E8C3F9CE0F5BA2 63E9777905818A2A 93C8191E7D6E8AE7"},
		{"4.4 192-bit data, 192-bit KEK", kek192, data24, "031D33264E15D332 68F24EC260743EDC E1C6C7DDEE725A93 6BA814915C6762D2"},
		{"4.5 192-bit data, 256-bit KEK", kek256, data24, "A8F9BC1612C68B3F F6E6F4FBE30E71E4 769C8B80A32CB895 8CD5D17D6B254DA1"},
		{"4.6 256-bit data, 256-bit KEK", kek256, data32, "28C9F404C4B810F4 CBCCB35CFB87F826 3F5786E2D80ED326 CBC7F0E71A99F43B FB988B9B7A02DD21"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustAES(t, unhex(t, tt.kek))
			data, wrapped := unhex(t, tt.data), unhex(t, tt.wrapped)
			got, err := WrapKW(nil, b, nil, data)
			if err != nil {
				t.Fatal(err)
			}
			wantBytes(t, got, wrapped)
			got, err = WrapKW(nil, b, unhex(t, "A6A6A6A6A6A6A6A6"), data) // the default, explicit
			if err != nil {
				t.Fatal(err)
			}
			wantBytes(t, got, wrapped)
			back, err := UnwrapKW(nil, b, nil, wrapped)
			if err != nil {
				t.Fatal(err)
			}
			wantBytes(t, back, data)
		})
	}
}

// RFC 5649 §6.
func TestKWPRFC5649(t *testing.T) {
	const kek = "5840df6e29b02af1 ab493b705bf16ea1 ae8338f4dcc176a8"
	tests := []struct{ name, data, wrapped string }{
		{"20 octets", "c37b7e6492584340 bed1220780894115 5068f738", "138bdeaa9b8fa7fc 61f97742e72248ee 5ae6ae5360d1ae6a 5f54f373fa543b6a"},
		{"7 octets", "466f7250617369", "afbeb0f07dfbf541 9200f2ccb50bb24f"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustAES(t, unhex(t, kek))
			data, wrapped := unhex(t, tt.data), unhex(t, tt.wrapped)
			got, err := WrapKWP(nil, b, nil, data)
			if err != nil {
				t.Fatal(err)
			}
			wantBytes(t, got, wrapped)
			back, err := UnwrapKWP(nil, b, nil, wrapped)
			if err != nil {
				t.Fatal(err)
			}
			wantBytes(t, back, data)
		})
	}
}

func TestKWRoundTrip(t *testing.T) {
	for _, keyLen := range []int{16, 24, 32} {
		b := mustAES(t, testBytes(uint64(keyLen), keyLen))
		for _, iv := range [][]byte{nil, testBytes(1, 8)} {
			t.Run(fmt.Sprintf("KW/AES-%d/iv%d", keyLen*8, len(iv)), func(t *testing.T) {
				for n := 16; n <= 72; n += 8 {
					data := testBytes(uint64(n), n)
					w, err := WrapKW([]byte("p"), b, iv, data)
					if err != nil {
						t.Fatal(err)
					}
					if len(w) != 1+n+8 || w[0] != 'p' {
						t.Fatalf("wrapped %d bytes, want prefix + %d", len(w), n+8)
					}
					got, err := UnwrapKW(nil, b, iv, w[1:])
					if err != nil {
						t.Fatal(err)
					}
					wantBytes(t, got, data)
					buf := append(make([]byte, 0, n+8), data...) // in place
					inPlace, err := WrapKW(buf[:0], b, iv, buf)
					if err != nil {
						t.Fatal(err)
					}
					wantBytes(t, inPlace, w[1:])
					inPlace, err = UnwrapKW(inPlace[:0], b, iv, inPlace)
					if err != nil {
						t.Fatal(err)
					}
					wantBytes(t, inPlace, data)
				}
			})
		}
		for _, iv := range [][]byte{nil, testBytes(2, 4)} {
			t.Run(fmt.Sprintf("KWP/AES-%d/iv%d", keyLen*8, len(iv)), func(t *testing.T) {
				for n := 1; n <= 70; n++ {
					data := testBytes(uint64(n), n)
					w, err := WrapKWP(nil, b, iv, data)
					if err != nil {
						t.Fatal(err)
					}
					if want := (n+7)/8*8 + 8; len(w) != want {
						t.Fatalf("n=%d: wrapped %d bytes, want %d", n, len(w), want)
					}
					got, err := UnwrapKWP(nil, b, iv, w)
					if err != nil {
						t.Fatalf("n=%d: %v", n, err)
					}
					wantBytes(t, got, data)
					buf := append(make([]byte, 0, n+16), data...)
					inPlace, err := WrapKWP(buf[:0], b, iv, buf)
					if err != nil {
						t.Fatal(err)
					}
					wantBytes(t, inPlace, w)
				}
			})
		}
	}
}

func TestKWFailures(t *testing.T) {
	b := mustAES(t, testBytes(3, 16))
	other := mustAES(t, testBytes(4, 16))
	data := testBytes(5, 32)
	w, err := WrapKW(nil, b, nil, data)
	if err != nil {
		t.Fatal(err)
	}
	for i := range w {
		bad := bytes.Clone(w)
		bad[i] ^= 0x01
		out, err := UnwrapKW(nil, b, nil, bad)
		wantErr(t, err, ErrAuthFailed)
		if out != nil {
			t.Fatal("output on failure")
		}
	}
	_, err = UnwrapKW(nil, other, nil, w)
	wantErr(t, err, ErrAuthFailed)
	_, err = UnwrapKW(nil, b, testBytes(6, 8), w)
	wantErr(t, err, ErrAuthFailed)
	for _, n := range []int{0, 8, 15, 17, 31} {
		_, err := WrapKW(nil, b, nil, make([]byte, n))
		wantErr(t, err, ErrDataLen)
	}
	for _, n := range []int{0, 8, 16, 23, 25} {
		_, err := UnwrapKW(nil, b, nil, make([]byte, n))
		wantErr(t, err, ErrDataLen)
	}
	for _, n := range []int{1, 4, 7, 9, 16} {
		_, err := WrapKW(nil, b, make([]byte, n), data)
		wantErr(t, err, ErrParam)
		_, err = UnwrapKW(nil, b, make([]byte, n), w)
		wantErr(t, err, ErrParam)
	}
	_, err = WrapKW(nil, badBlock{}, nil, data)
	wantErr(t, err, ErrParam)
}

func TestKWPFailures(t *testing.T) {
	b := mustAES(t, testBytes(7, 32))
	for _, n := range []int{5, 8, 20} {
		w, err := WrapKWP(nil, b, nil, testBytes(8, n))
		if err != nil {
			t.Fatal(err)
		}
		for i := range w {
			bad := bytes.Clone(w)
			bad[i] ^= 0x80
			_, err := UnwrapKWP(nil, b, nil, bad)
			wantErr(t, err, ErrAuthFailed)
		}
		_, err = UnwrapKWP(nil, b, []byte{1, 2, 3, 4}, w)
		wantErr(t, err, ErrAuthFailed)
	}
	_, err := WrapKWP(nil, b, nil, nil)
	wantErr(t, err, ErrDataLen)
	for _, n := range []int{0, 8, 15, 17} {
		_, err := UnwrapKWP(nil, b, nil, make([]byte, n))
		wantErr(t, err, ErrDataLen)
	}
	for _, n := range []int{1, 3, 5, 8} {
		_, err := WrapKWP(nil, b, make([]byte, n), []byte{1})
		wantErr(t, err, ErrParam)
	}
}

// TestKWPIntegrityChecks builds ciphertexts whose integrity check value is
// well formed except for one field, using the raw wrapping functions.
func TestKWPIntegrityChecks(t *testing.T) {
	b := mustAES(t, testBytes(9, 16))
	aiv := func(pre [4]byte, mli uint32) [8]byte {
		var a [8]byte
		copy(a[:], pre[:])
		binary.BigEndian.PutUint32(a[4:], mli)
		return a
	}
	// single encrypts AIV||P as one block (the 8-byte case).
	single := func(a [8]byte, p []byte) []byte {
		out := append(a[:], p...)
		b.Encrypt(out, out)
		return out
	}
	// multi wraps p (a multiple of 8, at least 16) under a with W.
	multi := func(a [8]byte, p []byte) []byte {
		r := bytes.Clone(p)
		wrapW(b, &a, r)
		return append(a[:], r...)
	}
	p8 := []byte{1, 2, 3, 4, 5, 0, 0, 0}
	p16 := append(testBytes(10, 9), 0, 0, 0, 0, 0, 0, 0)
	tests := []struct {
		name string
		ct   []byte
		want int // plaintext length, or -1 for ErrAuthFailed
	}{
		{"single ok", single(aiv(defaultKWPIV, 5), p8), 5},
		{"single MLI 0", single(aiv(defaultKWPIV, 0), p8), -1},
		{"single MLI 9", single(aiv(defaultKWPIV, 9), p8), -1},
		{"single MLI 4, non-zero padding", single(aiv(defaultKWPIV, 4), p8), -1},
		{"single wrong constant", single(aiv([4]byte{0xA6, 0x59, 0x59, 0xA7}, 5), p8), -1},
		{"single MLI huge", single(aiv(defaultKWPIV, 0xffffffff), p8), -1},
		{"multi ok", multi(aiv(defaultKWPIV, 9), p16), 9},
		{"multi MLI 8 (should be single block)", multi(aiv(defaultKWPIV, 8), p16), -1},
		{"multi MLI 17", multi(aiv(defaultKWPIV, 17), p16), -1},
		{"multi MLI 10, non-zero padding", multi(aiv(defaultKWPIV, 10), append(testBytes(11, 10), 0, 0, 7, 0, 0, 0)), -1},
		{"multi RFC 3394 IV", multi(defaultKWIV, p16), -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := UnwrapKWP(nil, b, nil, tt.ct)
			if tt.want < 0 {
				wantErr(t, err, ErrAuthFailed)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.want {
				t.Fatalf("unwrapped %d bytes, want %d", len(got), tt.want)
			}
		})
	}
}

func TestCTLessOrEq(t *testing.T) {
	for _, c := range []struct {
		x, y uint64
		want int
	}{{0, 0, 1}, {0, 1, 1}, {1, 0, 0}, {1 << 63, 1<<63 - 1, 0}, {1<<64 - 1, 1<<64 - 1, 1}, {5, 1<<64 - 1, 1}} {
		if got := ctLessOrEq(c.x, c.y); got != c.want {
			t.Errorf("ctLessOrEq(%d, %d) = %d", c.x, c.y, got)
		}
	}
}
