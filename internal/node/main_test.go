// The node's tests run with Go's FIPS 140-3 module enforced: a FIPS-mode
// node (the backup and restore tests make some) does not start outside it
// or BoringCrypto (ErrNoFIPSModule), and every other test runs the same
// there. The refusal itself is tested from a process (cmd/coffer,
// TestFIPSHSMRunsInFIPSModule), and the other packages' tests run the
// node's code outside FIPS 140-3 mode.

//go:debug fips140=only

package node

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: Run must
// wait for everything it starts, Close must release the rest.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
