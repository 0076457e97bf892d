package store

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestSealedEncoding(t *testing.T) {
	box := bytes.Repeat([]byte{0xB0}, boxOverhead+3)
	v := Version{Wall: 0x0102030405060708, Logical: 0x090A0B0C, Node: 0x0D0E0F10}
	s := Sealed{Kind: KindUser, ID: "ab", Version: v, Tombstone: true, Box: box}
	got, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte{
		1, 2, 1, // format, kind, flags
		1, 2, 3, 4, 5, 6, 7, 8, // wall
		9, 10, 11, 12, // logical
		13, 14, 15, 16, // node
		0, 2, 'a', 'b', // id
	}, box...)
	if !bytes.Equal(got, want) {
		t.Fatalf("MarshalBinary =\n%x, want\n%x", got, want)
	}
	var back Sealed
	if err := back.UnmarshalBinary(got); err != nil {
		t.Fatal(err)
	}
	if !sealedEqual(back, s) {
		t.Fatalf("round trip = %+v, want %+v", back, s)
	}
	got[len(got)-1] = 0 // the decoded box does not alias its input
	if back.Box[len(back.Box)-1] != 0xB0 {
		t.Fatal("UnmarshalBinary kept a reference to its input")
	}
}

func TestDecodeRejects(t *testing.T) {
	good, err := Sealed{Kind: KindObject, ID: "id", Version: Version{Wall: 1}, Box: make([]byte, boxOverhead)}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"short header", good[:headerFixed-1]},
		{"format 0", edit(func(b []byte) []byte { b[0] = 0; return b })},
		{"format 2", edit(func(b []byte) []byte { b[0] = 2; return b })},
		{"kind 0", edit(func(b []byte) []byte { b[1] = 0; return b })},
		{"kind 4", edit(func(b []byte) []byte { b[1] = 4; return b })},
		{"unknown flag", edit(func(b []byte) []byte { b[2] = 2; return b })},
		{"zero version", edit(func(b []byte) []byte { b[10] = 0; return b })},
		{"id length 0", edit(func(b []byte) []byte { b[20] = 0; return b })},
		{"id too long", edit(func(b []byte) []byte { b[19], b[20] = 0x04, 0x01; return append(b, make([]byte, 2000)...) })},
		{"id overruns", edit(func(b []byte) []byte { return b[:headerFixed+1] })},
		{"box short", good[:len(good)-1]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s Sealed
			if err := s.UnmarshalBinary(tc.in); !errors.Is(err, ErrMalformedRecord) {
				t.Fatalf("UnmarshalBinary err = %v, want ErrMalformedRecord", err)
			}
		})
	}
}

// FuzzDecode checks that decoding never panics, and that whatever decodes
// encodes back to exactly the same bytes (one encoding per record).
func FuzzDecode(f *testing.F) {
	for _, s := range []Sealed{
		{Kind: KindObject, ID: "obj-1", Version: Version{Wall: 1700000000000000000, Node: 1}, Box: make([]byte, boxOverhead)},
		{Kind: KindUser, ID: "admin", Version: Version{Wall: 5, Logical: 3, Node: 2}, Tombstone: true, Box: make([]byte, boxOverhead+10)},
		{Kind: KindSetting, ID: strings.Repeat("s", MaxIDLen), Version: Version{Wall: -1, Logical: 1}, Box: bytes.Repeat([]byte{1}, 64)},
	} {
		b, err := s.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var s Sealed
		if err := s.UnmarshalBinary(in); err != nil {
			if !errors.Is(err, ErrMalformedRecord) {
				t.Fatalf("error %v does not wrap ErrMalformedRecord", err)
			}
			return
		}
		out, err := s.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", s, err)
		}
		if !bytes.Equal(in, out) {
			t.Fatalf("round trip changed the bytes:\n in %x\nout %x", in, out)
		}
		h, n, err := decodeHeader(in)
		if err != nil || n != headerFixed+len(s.ID) || h.ID != s.ID || h.Version != s.Version {
			t.Fatalf("decodeHeader disagrees with UnmarshalBinary: %+v %d %v", h, n, err)
		}
	})
}
