package main

/*
#include "pkcs11.h"
*/
import "C"

import (
	"fmt"
	"runtime/debug"

	"github.com/coffer-hsm/coffer/internal/ck"
)

// rv converts a return value for C.
func rv(v ck.RV) C.CK_RV { return C.CK_RV(v) }

// guard is deferred by every export: a panic becomes CKR_GENERAL_ERROR,
// logged with its stack, and never reaches the host process.
func guard(out *C.CK_RV, fn string) {
	if r := recover(); r != nil {
		logger().Error("panic recovered at the PKCS#11 boundary", "function", fn,
			"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		*out = C.CKR_GENERAL_ERROR
	}
}
