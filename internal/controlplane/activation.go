package controlplane

import (
	"errors"
	"io"
	"os"

	"github.com/coffer-hsm/coffer/internal/audit"
)

// auditShowsActivation reads a node's audit log for the record of the
// pre-admin's activation. A log that does not exist yet shows none; a log
// whose end is being written is read up to its last whole record.
func auditShowsActivation(path string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	r := audit.NewReader(f)
	for {
		rec, err := r.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return false, nil
			}
			return false, nil // a torn or damaged tail: no activation seen before it
		}
		if rec.Op == "activate" && rec.Result == "ok" {
			return true, nil
		}
	}
}
