package node

import (
	"bytes"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/store"
)

// FuzzEnvelope: parsing never panics, and an envelope that parses is made
// again, byte for byte, from what was parsed (under the same key).
func FuzzEnvelope(f *testing.F) {
	mk := bytes.Repeat([]byte{7}, 32)
	check := bytes.Repeat([]byte{9}, mkCheckLen)
	rec := store.Sealed{Kind: store.KindObject, ID: "00000000000000ab", Version: store.Version{Wall: 5, Node: 1}, Box: make([]byte, 40)}
	good, err := sealEnvelope(mk, check, "cluster-a", "cluster-b", time.Unix(0, 12345), rec)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{envelopeV1})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := parseEnvelope(b)
		if err != nil {
			return
		}
		again, err := sealEnvelope(mk, e.mkCheck, e.source, e.destination, e.issued, e.record)
		if err != nil {
			t.Fatalf("a parsed envelope does not seal again: %v", err)
		}
		if !bytes.Equal(again[:len(again)-envelopeMACLen], e.body) {
			t.Fatalf("body changed:\n%x\n%x", e.body, again)
		}
		ok, err := e.verify(mk)
		if err != nil {
			t.Fatal(err)
		}
		if ok != bytes.Equal(again, b) {
			t.Fatalf("verify = %v for an envelope that is %v the one sealed", ok, bytes.Equal(again, b))
		}
	})
}
