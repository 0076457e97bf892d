package store

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

// TestLocalValues: node-local values survive a reopen, are sealed (not in
// the file in the clear) and are not records, so they never replicate.
func TestLocalValues(t *testing.T) {
	tn := newTestNode(t, 1)
	s := tn.open(t)
	ctx := t.Context()
	if _, err := s.GetLocal("anchor"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetLocal of a missing value = %v, want ErrNotFound", err)
	}
	secret := []byte("local value in clear 0123456789")
	if err := s.PutLocal(ctx, "anchor", secret); err != nil {
		t.Fatal(err)
	}
	if err := s.PutLocal(ctx, "", secret); err == nil {
		t.Fatal("PutLocal accepted an empty name")
	}
	count := 0
	if err := s.Versions(ctx, func(Kind, string, Version, bool) error { count++; return nil }); err != nil || count != 0 {
		t.Fatalf("Versions saw %d records (%v); a local value is not a record", count, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = tn.open(t)
	got, err := s.GetLocal("anchor")
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("GetLocal after reopen = %q, %v", got, err)
	}
	s.Close()
	raw, err := os.ReadFile(tn.cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, secret) {
		t.Fatal("the local value is in the store file in the clear")
	}
}
