//go:build !(linux || darwin || freebsd || openbsd || netbsd || dragonfly)

package audit

import "os"

// lockFile is a no-op where flock is unavailable: a second writer is not
// detected there.
func lockFile(*os.File) error { return nil }
