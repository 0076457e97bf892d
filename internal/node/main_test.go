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
