package mech

import (
	"bytes"
	"crypto"
	"crypto/hmac"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/coffer-hsm/coffer/internal/testtool"
)

// NIST CAVP KBKDF counter mode (KDFCTR_gen.rsp), HMAC-SHA-256, counter
// before the fixed input, r = 32: the fixed input data is one byte array.
func TestKBKDFCounterCAVP(t *testing.T) {
	got, err := KBKDFCounterHMAC(crypto.SHA256, unhex(t, "dd1d91b7d90b2bd3138533ce92b272fbf8a369316aefe242e659cc0ae238afe0"),
		[]KBKDFSegment{{Kind: KBKDFCounter, WidthBits: 32},
			{Kind: KBKDFBytes, Bytes: unhex(t, "01322b96b30acd197979444e468e1c5c6859bf1b1cf951b7e725303e237e46b864a145fab25e517b08f8683d0315bb2911d80a0e8aba17f3b413faac")}}, 16)
	if err != nil {
		t.Fatal(err)
	}
	wantBytes(t, got, unhex(t, "10621342bfb0fd40046c0e29f2cfdbf0"))
}

// The PKCS #11 layout of SP 800-108's [i] || Label || 0x00 || Context || [L]
// against OpenSSL's KBKDF, for each HMAC and output lengths that end inside
// a block.
func TestKBKDFCounterOpenSSL(t *testing.T) {
	testtool.Require(t, "openssl")
	key := bytes.Repeat([]byte{0x0b}, 32)
	label, context := []byte("label"), []byte("context")
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		for _, n := range []int{16, 33, 100, 800} {
			got, err := KBKDFCounterHMAC(h, key, []KBKDFSegment{
				{Kind: KBKDFCounter, WidthBits: 32}, {Kind: KBKDFBytes, Bytes: label}, {Kind: KBKDFBytes, Bytes: []byte{0}},
				{Kind: KBKDFBytes, Bytes: context}, {Kind: KBKDFLength, WidthBits: 32, SumOfKeys: true},
			}, n)
			if err != nil {
				t.Fatal(err)
			}
			want := opensslKDF(t, "KBKDF", n, "mac:HMAC", "digest:"+opensslDigest(h), "hexkey:"+hex.EncodeToString(key),
				"hexsalt:"+hex.EncodeToString(label), "hexinfo:"+hex.EncodeToString(context))
			if !bytes.Equal(got, want) {
				t.Fatalf("%v, %d bytes: %x, OpenSSL %x", h, n, got, want)
			}
		}
	}
}

// Narrow and little-endian counters and lengths, and the sum-of-segments
// length, are laid out as PKCS #11 says (checked with crypto/hmac on the
// input written out by hand).
func TestKBKDFCounterLayouts(t *testing.T) {
	key := []byte("key")
	got, err := KBKDFCounterHMAC(crypto.SHA256, key, []KBKDFSegment{
		{Kind: KBKDFBytes, Bytes: []byte("A")},
		{Kind: KBKDFCounter, WidthBits: 16, LittleEndian: true},
		{Kind: KBKDFLength, WidthBits: 24}, // sum of segments: 2 blocks, 512 bits
		{Kind: KBKDFBytes, Bytes: []byte("B")},
	}, 40)
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for i := byte(1); i <= 2; i++ {
		m := hmac.New(crypto.SHA256.New, key)
		m.Write([]byte{'A', i, 0, 0x00, 0x02, 0x00, 'B'})
		want = m.Sum(want)
	}
	wantBytes(t, got, want[:40])
}

func TestKBKDFCounterRefusals(t *testing.T) {
	ctr := KBKDFSegment{Kind: KBKDFCounter, WidthBits: 32}
	for name, c := range map[string]struct {
		segs []KBKDFSegment
		n    int
	}{
		"no counter":           {[]KBKDFSegment{{Kind: KBKDFBytes, Bytes: []byte("x")}}, 16},
		"two counters":         {[]KBKDFSegment{ctr, ctr}, 16},
		"two lengths":          {[]KBKDFSegment{ctr, {Kind: KBKDFLength, WidthBits: 32}, {Kind: KBKDFLength, WidthBits: 32}}, 16},
		"counter of 12 bits":   {[]KBKDFSegment{{Kind: KBKDFCounter, WidthBits: 12}}, 16},
		"counter of 64 bits":   {[]KBKDFSegment{{Kind: KBKDFCounter, WidthBits: 64}}, 16},
		"8-bit counter, 8 KiB": {[]KBKDFSegment{{Kind: KBKDFCounter, WidthBits: 8}}, 255*32 + 1},
		"8-bit length of 256":  {[]KBKDFSegment{ctr, {Kind: KBKDFLength, WidthBits: 8, SumOfKeys: true}}, 32},
		"length of 0 bits":     {[]KBKDFSegment{ctr, {Kind: KBKDFLength}}, 16},
		"unknown kind":         {[]KBKDFSegment{ctr, {Kind: 9}}, 16},
		"no output":            {[]KBKDFSegment{ctr}, 0},
	} {
		if _, err := KBKDFCounterHMAC(crypto.SHA256, []byte("k"), c.segs, c.n); !errors.Is(err, ErrParam) {
			t.Errorf("%s: %v, want ErrParam", name, err)
		}
	}
	// 255 iterations are what an 8-bit counter counts.
	if _, err := KBKDFCounterHMAC(crypto.SHA256, []byte("k"), []KBKDFSegment{{Kind: KBKDFCounter, WidthBits: 8}}, 255*32); err != nil {
		t.Fatal(err)
	}
}
