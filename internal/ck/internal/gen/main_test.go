package main

import (
	"bytes"
	"os"
	"testing"

	"github.com/coffer-hsm/coffer/internal/testtool"
)

// zz_constants.go is what the headers cgo compiles against give: regenerate
// it (go generate ./internal/ck) when a header changes.
func TestGeneratedFromTheHeaders(t *testing.T) {
	t.Chdir("../..") // internal/ck, where go generate runs
	testtool.File(t, defaultHeaders[0], "libnss3-dev")
	got, err := generate(defaultHeaders)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("zz_constants.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("internal/ck/zz_constants.go differs from what its headers give: run go generate ./internal/ck")
	}
}
