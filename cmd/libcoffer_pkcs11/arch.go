//go:build !(amd64 || arm64 || ppc64le || riscv64 || loong64)

package main

// Attribute values cross the C boundary unchanged (convert.go), which is
// right only where CK_ULONG is 64 bits little-endian, like the device's
// encoding. Elsewhere the build stops here.
var _ = cannotBuildOnThisArchitecture
