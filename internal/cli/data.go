package cli

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"fmt"
	"os"
	"strings"

	"github.com/coffer-hsm/coffer/internal/ck"
)

// Hash is a hash function as the CLI names it, with its PKCS#11 digest
// mechanism and MGF1.
type Hash struct {
	Name   string
	Digest ck.MechanismType
	MGF    ck.MGF
	Crypto crypto.Hash
}

// HashFunctions are the values of --hash-function.
func HashFunctions() []Hash {
	return []Hash{
		{"sha1", ck.CKM_SHA_1, ck.CKG_MGF1_SHA1, crypto.SHA1},
		{"sha224", ck.CKM_SHA224, ck.CKG_MGF1_SHA224, crypto.SHA224},
		{"sha256", ck.CKM_SHA256, ck.CKG_MGF1_SHA256, crypto.SHA256},
		{"sha384", ck.CKM_SHA384, ck.CKG_MGF1_SHA384, crypto.SHA384},
		{"sha512", ck.CKM_SHA512, ck.CKG_MGF1_SHA512, crypto.SHA512},
	}
}

// HashNames lists the values of --hash-function.
func HashNames() []string {
	var out []string
	for _, h := range HashFunctions() {
		out = append(out, h.Name)
	}
	return out
}

// MGFNames lists the values of --mgf.
func MGFNames() []string {
	var out []string
	for _, h := range HashFunctions() {
		out = append(out, "mgf1-"+h.Name)
	}
	return out
}

// LookupHash reads --hash-function.
func LookupHash(name string) (Hash, error) {
	for _, h := range HashFunctions() {
		if h.Name == name {
			return h, nil
		}
	}
	return Hash{}, Usagef("--hash-function %q: want one of %s", name, strings.Join(HashNames(), ", "))
}

// LookupMGF reads --mgf (mgf1-sha256 ...); empty means MGF1 with the hash
// function.
func LookupMGF(name string, h Hash) (ck.MGF, error) {
	if name == "" {
		return h.MGF, nil
	}
	for _, m := range HashFunctions() {
		if "mgf1-"+m.Name == name {
			return m.MGF, nil
		}
	}
	return 0, Usagef("--mgf %q: want one of %s", name, strings.Join(MGFNames(), ", "))
}

// ReadData returns the data of --data-path FILE or --data BASE64, exactly
// one of which must be given.
func ReadData(path, b64, what string) ([]byte, error) {
	switch {
	case path != "" && b64 != "":
		return nil, Usagef("give --%s-path or --%s, not both", what, what)
	case path != "":
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, Failf("--%s-path: %w", what, err)
		}
		return b, nil
	case b64 != "":
		b, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			hint := fmt.Sprintf("--%s takes the value itself in base64; to read it from a file, use --%s-path FILE", what, what)
			if _, serr := os.Stat(b64); serr == nil {
				hint = fmt.Sprintf("%q is a file: use --%s-path %s (a file may hold base64 or raw bytes)", b64, what, b64)
			}
			return nil, &Error{Code: ExitUsage, Err: fmt.Errorf("--%s: not base64: %w", what, err), Hint: hint}
		}
		return b, nil
	}
	return nil, Usagef("give --%s-path FILE or --%s BASE64", what, what)
}

// ReadEncoded is ReadData for signatures and MACs: a file may hold them as
// base64 text (as the CLI prints them) or raw.
func ReadEncoded(path, b64, what string) ([]byte, error) {
	b, err := ReadData(path, b64, what)
	if err != nil || path == "" {
		return b, err
	}
	text := bytes.TrimSpace(b)
	if dec, err := base64.StdEncoding.DecodeString(string(text)); err == nil && len(text) > 0 {
		return dec, nil
	}
	return b, nil
}

// WriteFile writes data to path with mode; exclusive refuses to replace a
// file (key material).
func WriteFile(path string, data []byte, mode os.FileMode, exclusive bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if exclusive {
		flags = os.O_WRONLY | os.O_CREATE | os.O_EXCL
	}
	f, err := os.OpenFile(path, flags, mode)
	if err != nil {
		if exclusive && os.IsExist(err) {
			return &Error{Code: ExitFailed, Err: fmt.Errorf("%s exists", path), Hint: "key material is never written over a file: remove it or choose another --path"}
		}
		return Failf("%w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return Failf("%w", err)
	}
	if err := f.Close(); err != nil {
		return Failf("%w", err)
	}
	return nil
}
