package mech

import (
	"crypto"
	"testing"
)

// FIPS 180-4 examples: "abc".
func TestDigestKnownAnswers(t *testing.T) {
	tests := []struct {
		h    crypto.Hash
		want string
	}{
		{crypto.SHA1, "a9993e364706816aba3e25717850c26c9cd0d89d"},
		{crypto.SHA224, "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7"},
		{crypto.SHA256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{crypto.SHA384, "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"},
		{crypto.SHA512, "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"},
	}
	for _, tt := range tests {
		t.Run(tt.h.String(), func(t *testing.T) {
			want := unhex(t, tt.want)
			got, err := Digest([]byte("p"), tt.h, []byte("abc"))
			skipRefusedByFIPSOnly(t, err)
			wantBytes(t, got, append([]byte("p"), want...))
			d, err := NewDigest(tt.h)
			if err != nil {
				t.Fatal(err)
			}
			d.Write([]byte("a"))
			d.Write([]byte("bc"))
			wantBytes(t, d.Sum(nil), want)
			buf := make([]byte, 0, 64)
			if n := testing.AllocsPerRun(10, func() { _, _ = Digest(buf, tt.h, []byte("abc")) }); n != 0 {
				t.Errorf("Digest allocates %v times with room in dst", n)
			}
		})
	}
}

func TestDigestUnsupported(t *testing.T) {
	for _, h := range []crypto.Hash{0, crypto.MD5, crypto.SHA512_256, crypto.SHA3_256, 99} {
		_, err := Digest(nil, h, nil)
		wantErr(t, err, ErrParam)
		_, err = NewDigest(h)
		wantErr(t, err, ErrParam)
	}
}
