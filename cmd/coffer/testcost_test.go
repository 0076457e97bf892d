package main

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/coffer-hsm/coffer/internal/hsm"
)

// TestTestPasswordCostRefusedOutsideTests: a node whose config asks for the
// test-only password cost refuses to start unless it is the test binary,
// and so does a command asked by the environment to write it.
func TestTestPasswordCostRefusedOutsideTests(t *testing.T) {
	yes := func() bool { return true }
	no := func() bool { return false }

	if c, err := checkTestPasswordCost(false, no); err != nil || c != (hsm.PasswordCost{}) {
		t.Errorf("not asked, production binary: %+v, %v; want the default cost", c, err)
	}
	if c, err := checkTestPasswordCost(false, yes); err != nil || c != (hsm.PasswordCost{}) {
		t.Errorf("not asked, test binary: %+v, %v; want the default cost", c, err)
	}
	if c, err := checkTestPasswordCost(true, no); !errors.Is(err, errTestPasswordCost) || c != (hsm.PasswordCost{}) {
		t.Errorf("asked, production binary: %+v, %v; want %v", c, err, errTestPasswordCost)
	}
	if c, err := checkTestPasswordCost(true, yes); err != nil || c != testPasswordCost {
		t.Errorf("asked, test binary: %+v, %v; want %+v", c, err, testPasswordCost)
	}

	env := func(v string) func(string) string {
		return func(k string) string {
			if k == testPasswordCostEnv {
				return v
			}
			return ""
		}
	}
	for _, c := range []struct {
		val    string
		isTest func() bool
		want   bool
		err    bool
	}{
		{"", no, false, false},
		{"", yes, false, false},
		{"1", yes, true, false},
		{"1", no, false, true},
		{"true", yes, false, true},
	} {
		got, err := wantTestPasswordCost(env(c.val), c.isTest)
		if got != c.want || (err != nil) != c.err {
			t.Errorf("%s=%q, test binary %v: %v, %v; want %v, error %v", testPasswordCostEnv, c.val, c.isTest(), got, err, c.want, c.err)
		}
		if c.err && c.val == "1" && !errors.Is(err, errTestPasswordCost) {
			t.Errorf("%s=1 outside tests: %v, want %v", testPasswordCostEnv, err, errTestPasswordCost)
		}
	}

	// The real predicate, read in one place: this is a test binary.
	if !runningTests() {
		t.Fatal("runningTests() is false in the test binary")
	}
}

// TestHSMInitWritesTestPasswordCost: with the variable set (TestMain sets
// it), `coffer hsm init` asks every node for the test cost.
func TestHSMInitWritesTestPasswordCost(t *testing.T) {
	dir := t.TempDir()
	if err := runHSMInit([]string{"--dir", dir, "--node", "1=127.0.0.1:1", "--node", "2=127.0.0.1:2"}, discard{}, discard{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"hsm-1.json", "hsm-2.json"} {
		f, err := readRawHSMFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !f.TestPasswordCost {
			t.Errorf("%s: test_password_cost not set", name)
		}
	}
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }
