package store

import (
	"errors"
	"testing"
)

// Open reads a record sealed elsewhere under the same masking key, without
// storing it; another key's record wraps ErrBadBox.
func TestOpenSealedOfAClone(t *testing.T) {
	ctx := t.Context()
	mk := newMK(t)
	src, _ := newTestStore(t, 1, mk)
	clone, _ := newTestStore(t, 2, mk)
	other, _ := newTestStore(t, 3, newMK(t))
	mustPut(t, src, KindObject, "k", []byte("payload"))
	rec, err := src.Export(ctx, KindObject, "k")
	if err != nil {
		t.Fatal(err)
	}
	r, err := clone.OpenSealed(rec)
	if err != nil || string(r.Data) != "payload" || r.ID != "k" || r.Version != rec.Version {
		t.Fatalf("open on a clone: %+v, %v", r, err)
	}
	if _, err := clone.Get(ctx, KindObject, "k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open stored the record: %v", err)
	}
	if _, err := other.OpenSealed(rec); !errors.Is(err, ErrBadBox) {
		t.Fatalf("open under another key: %v", err)
	}
	rec.ID = "renamed" // the id is bound to the box
	if _, err := clone.OpenSealed(rec); !errors.Is(err, ErrBadBox) {
		t.Fatalf("open with another id: %v", err)
	}
	if _, err := src.Delete(ctx, KindObject, "k"); err != nil {
		t.Fatal(err)
	}
	tomb, err := src.Export(ctx, KindObject, "k")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := clone.OpenSealed(tomb); err != nil || !r.Tombstone || len(r.Data) != 0 {
		t.Fatalf("open a tombstone: %+v, %v", r, err)
	}
}
