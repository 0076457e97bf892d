package store

import (
	"bytes"
	"errors"
	"testing"
)

func TestOpenSealed(t *testing.T) {
	ctx := t.Context()
	mk := newMK(t)
	src, _ := newTestStore(t, 1, mk)
	v := mustPut(t, src, KindObject, "k1", []byte("payload"))
	rec, err := src.Export(ctx, KindObject, "k1")
	if err != nil {
		t.Fatal(err)
	}
	same, _ := newTestStore(t, 2, mk)
	got, err := same.OpenSealed(rec)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Data, []byte("payload")) || got.Version != v || got.ID != "k1" {
		t.Fatalf("opened %+v", got)
	}
	if _, err := same.Get(ctx, KindObject, "k1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("OpenSealed stored the record: %v", err)
	}
	other, _ := newTestStore(t, 3, newMK(t))
	if _, err := other.OpenSealed(rec); !errors.Is(err, ErrBadBox) {
		t.Fatalf("another masking key: %v, want ErrBadBox", err)
	}
	moved := rec
	moved.ID = "k2" // the metadata is the box's associated data
	if _, err := same.OpenSealed(moved); !errors.Is(err, ErrBadBox) {
		t.Fatalf("renamed record: %v, want ErrBadBox", err)
	}
}
