package main

/*
#include <stdlib.h>
*/
import "C"

import "unsafe"

// getenv reads the host's environment as it is now. The Go runtime of a
// c-shared library copies the environment once, when the library is
// loaded, so os.Getenv misses a variable the host set later (setenv(3),
// Python's os.environ, a Go host's os.Setenv): C's getenv sees it.
func getenv(name string) string {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	v := C.getenv(cname)
	if v == nil {
		return ""
	}
	return C.GoString(v)
}
