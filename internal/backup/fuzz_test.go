package backup

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/coffer-hsm/coffer/internal/store"
)

// FuzzOpen: no input makes Open panic; an input Open accepts (only the
// seeds, short of forging the tag) reads back its announced records, and
// anything else is a refusal.
func FuzzOpen(f *testing.F) {
	key := bytes.Repeat([]byte{0x42}, KeyLen)
	mk := bytes.Repeat([]byte{0x17}, 32)
	f.Add(makeBlob(f, key, "backup-fuzz", mk, []byte("ck"), testRecords(3)))
	f.Add(makeBlob(f, key, "backup-fuzz", mk, nil, nil))
	f.Add([]byte(magic + "\x01\x00\x00\x00\x10"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := open(data, key, "backup-fuzz")
		if err != nil {
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("not a refusal: %v", err)
			}
			return
		}
		var n uint64
		if err := b.Records(context.Background(), func(store.Sealed) error { n++; return nil }); err != nil {
			t.Fatalf("Records after Open: %v", err)
		}
		if n != b.Header.Records {
			t.Fatalf("%d records, header says %d", n, b.Header.Records)
		}
	})
}
