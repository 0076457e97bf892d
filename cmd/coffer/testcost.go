package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/coffer-hsm/coffer/internal/hsm"
)

// The test-only password-hash cost. Every login hashes its password with
// hsm.DefaultPasswordCost (Argon2id t=3, m=64 MiB, p=4, or PBKDF2 600,000
// iterations in FIPS mode), which dominates Coffer's own tests of whole
// clusters under the race detector. Those tests ask for a cheap cost that is
// still a real Argon2id / PBKDF2 hash: `"test_password_cost": true` in an
// HSM's config file. A node refuses the setting unless it runs as Coffer's
// test binary (testing.Testing), so it can never weaken a deployed HSM.
//
// `coffer hsm init`, `coffer controlplane` and `coffer up` write the setting
// into the configs they make when testPasswordCostEnv is set, and refuse the
// variable outside the test binary as well.
const testPasswordCostEnv = "COFFER_TEST_PASSWORD_COST"

// testPasswordCost is the cost test_password_cost selects: the smallest
// hsm.PasswordCost accepts.
var testPasswordCost = hsm.PasswordCost{Argon2Time: 1, Argon2MemoryKiB: 8, Argon2Threads: 1, PBKDF2Iterations: 1000}

// errTestPasswordCost is the refusal of the test-only cost outside a test binary.
var errTestPasswordCost = errors.New("the test-only password cost (test_password_cost, " + testPasswordCostEnv +
	") is accepted only by Coffer's test binary, never by a coffer build: remove it")

// runningTests is the one place the real predicate is read: true only in a
// `go test` binary (and in the commands it re-executes itself as).
func runningTests() bool { return testing.Testing() }

// checkTestPasswordCost returns the device password cost for an HSM config
// whose test_password_cost is want: zero (the default) when it is false, the
// test cost when it is true and the binary is a test binary, and an error
// otherwise.
func checkTestPasswordCost(want bool, isTest func() bool) (hsm.PasswordCost, error) {
	if !want {
		return hsm.PasswordCost{}, nil
	}
	if !isTest() {
		return hsm.PasswordCost{}, errTestPasswordCost
	}
	return testPasswordCost, nil
}

// wantTestPasswordCost reports whether testPasswordCostEnv asks for the
// test-only cost in the HSM configs being written; set outside a test
// binary it is an error.
func wantTestPasswordCost(getenv func(string) string, isTest func() bool) (bool, error) {
	v := getenv(testPasswordCostEnv)
	if v == "" {
		return false, nil
	}
	if v != "1" {
		return false, fmt.Errorf("%s=%q: want 1 or unset", testPasswordCostEnv, v)
	}
	if _, err := checkTestPasswordCost(true, isTest); err != nil {
		return false, err
	}
	return true, nil
}
