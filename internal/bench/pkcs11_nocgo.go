//go:build !cgo

package bench

import "errors"

// PKCS11Config opens a PKCS#11 module.
type PKCS11Config struct {
	Path string
	PIN  string
	Slot *uint
}

// PKCS11Target needs cgo; this build has none.
type PKCS11Target struct{ Target }

// OpenPKCS11 fails: loading a PKCS#11 module needs a build with cgo.
func OpenPKCS11(PKCS11Config) (*PKCS11Target, error) {
	return nil, errors.New("this coffer was built without cgo: it cannot load a PKCS#11 module")
}

// Close does nothing.
func (*PKCS11Target) Close() error { return nil }
