package store

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if goroutines outlive the tests: every goroutine
// has an owner that stops and waits for it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
