package store

import (
	"bytes"
	"errors"
	"testing"
)

func TestMaskingKeyCopy(t *testing.T) {
	mk := newMK(t)
	s, _ := newTestStore(t, 1, mk)
	got, err := s.MaskingKey()
	if err != nil || !bytes.Equal(got, mk) {
		t.Fatalf("MaskingKey = %x, %v", got, err)
	}
	got[0] ^= 1
	again, _ := s.MaskingKey()
	if !bytes.Equal(again, mk) {
		t.Fatal("MaskingKey returned the store's own slice")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MaskingKey(); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}
