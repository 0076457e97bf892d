package hsm

// Wycheproof test vectors (https://github.com/C2SP/wycheproof) run through
// the device's own API: keys enter with CreateObject or Import*, and every
// result comes from Encrypt, Decrypt, Sign, Verify or DeriveKey. The vectors
// are fetched as a Go module, as Go's own crypto tests do, and only the files
// for mechanisms the device offers are read. This file holds the fetching,
// parsing and bookkeeping; the suites are in wycheproof_*_test.go.

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/hsm/mech"
)

// The Wycheproof module: C2SP/wycheproof at commit b51abcfb8daf
// (2025-09-01). Pinned so that new vectors arrive only with a deliberate
// bump; the JSON files are under testvectors_v1/.
const (
	wycheproofModule  = "github.com/C2SP/wycheproof"
	wycheproofVersion = "v0.0.0-20250901140545-b51abcfb8daf"
)

// wycheproofFetch downloads the module once per test binary.
var wycheproofFetch struct {
	once sync.Once
	dir  string
	err  error
	skip string
}

// wycheproofDir returns the directory of the downloaded vectors. It skips
// the test only when there is no go command to fetch them with; a failed
// download fails the test, so vectors never silently go unchecked.
func wycheproofDir(t *testing.T) string {
	t.Helper()
	f := &wycheproofFetch
	f.once.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			f.skip = "no go command to fetch the Wycheproof module: " + err.Error()
			return
		}
		// Outside the main module, so the download never touches go.mod or go.sum.
		cmd := exec.Command(goTool, "mod", "download", "-json", wycheproofModule+"@"+wycheproofVersion)
		cmd.Dir = os.TempDir()
		out, err := cmd.Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			f.err = fmt.Errorf("go mod download %s@%s: %w\n%s%s", wycheproofModule, wycheproofVersion, err, out, stderr)
			return
		}
		var j struct{ Dir, Error string }
		if err := json.Unmarshal(out, &j); err != nil {
			f.err = fmt.Errorf("go mod download output: %w\n%s", err, out)
			return
		}
		if j.Error != "" || j.Dir == "" {
			f.err = fmt.Errorf("go mod download %s@%s: %q", wycheproofModule, wycheproofVersion, j.Error)
			return
		}
		f.dir = filepath.Join(j.Dir, "testvectors_v1")
	})
	switch {
	case f.skip != "":
		t.Skip(f.skip)
	case f.err != nil:
		t.Fatal(f.err)
	}
	return f.dir
}

// wpFiles lists the vector files whose names match re, sorted. It fails if
// none do, since that means the module's layout changed under the pin.
func wpFiles(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	ents, err := os.ReadDir(wycheproofDir(t))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if re.MatchString(e.Name()) {
			out = append(out, e.Name())
		}
	}
	if len(out) == 0 {
		t.Fatalf("no Wycheproof file matches %v", re)
	}
	slices.Sort(out)
	return out
}

// wpLoad reads the test groups of one vector file into G, which names only
// the fields the suite uses.
func wpLoad[G any](t *testing.T, file string) []G {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(wycheproofDir(t), file))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		TestGroups []G `json:"testGroups"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if len(f.TestGroups) == 0 {
		t.Fatalf("%s: no test groups", file)
	}
	return f.TestGroups
}

// hexBytes is a byte string that JSON carries in hex.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	if err != nil {
		return fmt.Errorf("hex field: %w", err)
	}
	*h = v
	return nil
}

// wpVector is what every Wycheproof test case has.
type wpVector struct {
	TcID    int      `json:"tcId"`
	Comment string   `json:"comment"`
	Flags   []string `json:"flags"`
	Result  string   `json:"result"` // valid, invalid or acceptable
}

func (v wpVector) String() string {
	return fmt.Sprintf("tcId %d (%q, flags %v, %s)", v.TcID, v.Comment, v.Flags, v.Result)
}

// wpCounts tallies one suite's vectors by how they were judged. Subtests run
// sequentially, so it needs no lock.
type wpCounts struct {
	valid, invalid, acceptable int // checked against the device
	unsupported                int // refused as documented, refusal checked
}

func (c *wpCounts) ran() int { return c.valid + c.invalid + c.acceptable + c.unsupported }

func (c *wpCounts) String() string {
	return fmt.Sprintf("ran %d: valid %d, invalid %d, acceptable %d, unsupported %d",
		c.ran(), c.valid, c.invalid, c.acceptable, c.unsupported)
}

// done asserts that the suite checked vectors and logs the counts.
func (c *wpCounts) done(t *testing.T, suite string) {
	t.Helper()
	if c.valid+c.invalid+c.acceptable == 0 {
		t.Fatalf("%s: no Wycheproof vector was checked (%v)", suite, c)
	}
	t.Logf("%s: %v", suite, c)
}

// judge records the device's verdict on v: err nil means it accepted the
// vector (the caller compares any output), otherwise err must be one of the
// refusals. Valid vectors must be accepted, invalid ones refused, and
// acceptable ones may go either way.
//
// With Go's FIPS 140-3 module enforced (GODEBUG=fips140=only, as a
// FIPS-mode HSM on a native build runs), a vector whose key or parameters
// the module does not approve (SHA-1, keys or exponents FIPS 186-5 does not
// allow, GCM under a caller's IV) is refused as a bad parameter saying so:
// it counts as unsupported (refusedUnderFIPSOnly).
func (c *wpCounts) judge(t *testing.T, file string, v wpVector, err error, refusals ...*Kind) {
	t.Helper()
	if refusedUnderFIPSOnly(err) {
		c.unsupported++
		return
	}
	refusedRight := err != nil && isOneOf(err, refusals)
	switch v.Result {
	case "valid":
		c.valid++
		if err != nil {
			t.Errorf("%s %v: valid vector refused: %v", file, v, err)
		}
	case "invalid":
		c.invalid++
		if err == nil {
			t.Errorf("%s %v: invalid vector accepted", file, v)
		} else if !refusedRight {
			t.Errorf("%s %v: refused with %v, want one of %s", file, v, err, kindNames(refusals))
		}
	case "acceptable":
		c.acceptable++
		switch {
		case err == nil:
			t.Logf("%s %v: acceptable vector accepted", file, v)
		case refusedRight:
			t.Logf("%s %v: acceptable vector refused: %v", file, v, err)
		default:
			t.Errorf("%s %v: refused with %v, want one of %s", file, v, err, kindNames(refusals))
		}
	default:
		t.Errorf("%s %v: unknown result %q", file, v, v.Result)
	}
}

// refusedUnderFIPSOnly reports whether err is the device's refusal of
// what Go's enforced FIPS 140-3 module does not approve: a bad-parameter or
// key-size refusal that says so, and only under GODEBUG=fips140=only.
func refusedUnderFIPSOnly(err error) bool {
	return mech.RefusedInFIPSOnlyMode(err) && isOneOf(err, []*Kind{ErrMechanismParamInvalid, ErrKeySizeRange})
}

// refused records a vector the device does not support (a documented
// limit), asserting that the device said so with kind.
func (c *wpCounts) refused(t *testing.T, file string, v wpVector, err error, kind *Kind) {
	t.Helper()
	c.unsupported++
	if !errors.Is(err, kind) || Code(err) != kind.RV {
		t.Errorf("%s %v: unsupported vector: err = %v, want %q (%v)", file, v, err, kind.msg, kind.RV)
	}
}

// mismatch reports output that differs from the vector's for a vector the
// device accepted.
func mismatch(t *testing.T, file string, v wpVector, what string, got, want []byte) {
	t.Helper()
	t.Errorf("%s %v: %s = %x, want %x", file, v, what, got, want)
}

func isOneOf(err error, kinds []*Kind) bool {
	for _, k := range kinds {
		if errors.Is(err, k) && Code(err) == k.RV {
			return true
		}
	}
	return false
}

func kindNames(kinds []*Kind) string {
	var s []string
	for _, k := range kinds {
		s = append(s, fmt.Sprintf("%q", k.msg))
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// wpHash is what the device calls one of Wycheproof's hash names.
type wpHash struct {
	hash  ck.MechanismType // digest: PSS and OAEP hashAlg
	mgf   ck.MGF           // MGF1 with this hash
	hmac  ck.MechanismType // CKM_SHA*_HMAC_GENERAL
	ecdsa ck.MechanismType // CKM_ECDSA_SHA*
	pkcs1 ck.MechanismType // CKM_SHA*_RSA_PKCS
	pss   ck.MechanismType // CKM_SHA*_RSA_PKCS_PSS
}

// wpHashes covers the hashes the device has mechanisms for. Vectors for
// SHA-512/224, SHA-512/256, SHA-3 and SHAKE are not selected: the device
// offers no mechanism to run them with.
var wpHashes = map[string]wpHash{
	"SHA-1":   {ck.CKM_SHA_1, ck.CKG_MGF1_SHA1, ck.CKM_SHA_1_HMAC_GENERAL, ck.CKM_ECDSA_SHA1, ck.CKM_SHA1_RSA_PKCS, ck.CKM_SHA1_RSA_PKCS_PSS},
	"SHA-224": {ck.CKM_SHA224, ck.CKG_MGF1_SHA224, ck.CKM_SHA224_HMAC_GENERAL, ck.CKM_ECDSA_SHA224, ck.CKM_SHA224_RSA_PKCS, ck.CKM_SHA224_RSA_PKCS_PSS},
	"SHA-256": {ck.CKM_SHA256, ck.CKG_MGF1_SHA256, ck.CKM_SHA256_HMAC_GENERAL, ck.CKM_ECDSA_SHA256, ck.CKM_SHA256_RSA_PKCS, ck.CKM_SHA256_RSA_PKCS_PSS},
	"SHA-384": {ck.CKM_SHA384, ck.CKG_MGF1_SHA384, ck.CKM_SHA384_HMAC_GENERAL, ck.CKM_ECDSA_SHA384, ck.CKM_SHA384_RSA_PKCS, ck.CKM_SHA384_RSA_PKCS_PSS},
	"SHA-512": {ck.CKM_SHA512, ck.CKG_MGF1_SHA512, ck.CKM_SHA512_HMAC_GENERAL, ck.CKM_ECDSA_SHA512, ck.CKM_SHA512_RSA_PKCS, ck.CKM_SHA512_RSA_PKCS_PSS},
}

// hashFor looks up a Wycheproof hash name; the file selection guarantees it
// is one the device has.
func hashFor(t *testing.T, file, name string) wpHash {
	t.Helper()
	h, ok := wpHashes[name]
	if !ok {
		t.Fatalf("%s: hash %q selected but not mapped", file, name)
	}
	return h
}

// wpDevice is a fresh activated device with a logged-in crypto user.
func wpDevice(t *testing.T) (*testDevice, SessionID) {
	t.Helper()
	td, admin := activated(t)
	return td, withCU(t, td, admin, "alice")
}

// secretKey imports a secret key value as a session object; the caller
// checks err (CreateObject refuses sizes the key type cannot have).
func secretKey(t *testing.T, td *testDevice, s SessionID, kt ck.KeyType, value []byte) (ObjectID, error) {
	t.Helper()
	return td.CreateObject(t.Context(), s, Template{
		Ulong(ck.CKA_CLASS, uint(ck.CKO_SECRET_KEY)),
		Ulong(ck.CKA_KEY_TYPE, uint(kt)),
		Bytes(ck.CKA_VALUE, value),
	})
}
