package durable

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteFileReplacesWholeAndKeepsMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, []byte("new contents"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != "new contents" {
		t.Fatalf("read %q, %v", got, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600 (not the old file's 0644)", fi.Mode().Perm())
	}
	assertOnly(t, dir, "f")
}

func TestAbortLeavesThePathAsItWas(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Create(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("half")); err != nil {
		t.Fatal(err)
	}
	f.Abort()
	f.Abort()
	if err := f.Commit(); err == nil {
		t.Error("Commit after Abort succeeded")
	}
	got, _ := os.ReadFile(path)
	if string(got) != "old" {
		t.Errorf("path holds %q after an abort, want the old contents", got)
	}
	assertOnly(t, dir, "f")
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("reader broke") }

func TestWriteFromFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "blob")
	if _, err := WriteFrom(path, failingReader{}, 0o600); err == nil || !strings.Contains(err.Error(), "reader broke") {
		t.Fatalf("WriteFrom: %v, want the reader's error", err)
	}
	assertOnly(t, dir)
	n, err := WriteFrom(path, bytes.NewReader([]byte("12345")), 0o600)
	if err != nil || n != 5 {
		t.Fatalf("WriteFrom: %d, %v", n, err)
	}
	assertOnly(t, dir, "blob")
}

func TestCreateNeedsTheDirectory(t *testing.T) {
	if _, err := Create(filepath.Join(t.TempDir(), "missing", "f"), 0o600); err == nil {
		t.Fatal("Create in a missing directory succeeded")
	}
	if err := SyncDir(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("SyncDir of a missing directory succeeded")
	}
}

// assertOnly checks dir holds exactly names: no temporary file is left.
func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("directory holds %v, want %v", got, names)
	}
}

func TestWriteFileAllMakesTheDirectory(t *testing.T) {
	top := t.TempDir()
	path := filepath.Join(top, "a", "b", "f")
	if err := WriteFileAll(path, []byte("data"), 0o640); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != "data" {
		t.Fatalf("read %q, %v", got, err)
	}
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{{filepath.Join(top, "a"), 0o700}, {filepath.Join(top, "a", "b"), 0o700}, {path, 0o640}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != c.mode {
			t.Errorf("%s: mode %v, want %v", c.path, fi.Mode().Perm(), c.mode)
		}
	}
	assertOnly(t, filepath.Join(top, "a", "b"), "f")
}
