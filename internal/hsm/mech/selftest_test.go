package mech

import (
	"errors"
	"testing"
)

func TestSelfTest(t *testing.T) {
	if err := SelfTest(); err != nil {
		t.Fatal(err)
	}
}

func TestSelfTestReportsFailure(t *testing.T) {
	err := expect([]byte{1}, []byte{2}, nil)
	if !errors.Is(err, errKAT) {
		t.Fatalf("expect mismatch = %v, want errKAT", err)
	}
	if _, err := hexes("zz"); err == nil {
		t.Fatal("hexes accepted bad hex")
	}
}
