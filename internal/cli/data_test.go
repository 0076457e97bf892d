package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadData(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "raw.bin")
	b64 := filepath.Join(dir, "sig.b64")
	if err := os.WriteFile(raw, []byte{0xff, 0x00, 0x10}, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b64, []byte("aGVsbG8=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		path, b64 string
		encoded   bool
		want      []byte
		err       string
	}{
		{name: "file", path: raw, want: []byte{0xff, 0x00, 0x10}},
		{name: "base64", b64: "aGVsbG8=", want: []byte("hello")},
		{name: "both", path: raw, b64: "aGVsbG8=", err: "not both"},
		{name: "neither", err: "give --data-path FILE or --data BASE64"},
		{name: "bad base64", b64: "!!", err: "not base64: illegal base64 data at input byte 0; --data takes the value itself in base64; to read it from a file, use --data-path FILE"},
		{name: "a file given as base64", b64: raw, err: "is a file: use --data-path " + raw},
		{name: "missing file", path: filepath.Join(dir, "none"), err: "no such file"},
		{name: "encoded file, base64", path: b64, encoded: true, want: []byte("hello")},
		{name: "encoded file, raw", path: raw, encoded: true, want: []byte{0xff, 0x00, 0x10}},
		{name: "plain file is not decoded", path: b64, want: []byte("aGVsbG8=\n")},
	} {
		t.Run(c.name, func(t *testing.T) {
			read := ReadData
			if c.encoded {
				read = ReadEncoded
			}
			got, err := read(c.path, c.b64, "data")
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, c.want) {
				t.Errorf("got %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

func TestWriteFileExclusive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := WriteFile(path, []byte("one"), 0o600, true); err != nil {
		t.Fatal(err)
	}
	err := WriteFile(path, []byte("two"), 0o600, true)
	if err == nil || !strings.Contains(err.Error(), "key material is never written over a file") {
		t.Errorf("second exclusive write: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "one" {
		t.Errorf("file now holds %q", b)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	if err := WriteFile(path, []byte("three"), 0o600, false); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "three" {
		t.Errorf("file now holds %q", b)
	}
}

func TestHashes(t *testing.T) {
	for _, name := range HashNames() {
		h, err := LookupHash(name)
		if err != nil || h.Name != name || !h.Crypto.Available() {
			t.Errorf("%s: %+v %v", name, h, err)
		}
		if m, err := LookupMGF("", h); err != nil || m != h.MGF {
			t.Errorf("default MGF of %s: %v %v", name, m, err)
		}
		if m, err := LookupMGF("mgf1-"+name, HashFunctions()[0]); err != nil || m != h.MGF {
			t.Errorf("mgf1-%s: %v %v", name, m, err)
		}
	}
	if _, err := LookupHash("md5"); err == nil {
		t.Error("md5 accepted")
	}
	if _, err := LookupMGF("mgf2", HashFunctions()[0]); err == nil {
		t.Error("mgf2 accepted")
	}
}
