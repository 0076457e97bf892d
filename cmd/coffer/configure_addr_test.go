package main

import "testing"

// An HSM address without a port is its ENI address, on CloudHSM's port.
func TestConfigureAddressDefaultsPort(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.11":      "127.0.0.11:2223",
		"127.0.0.11:2300": "127.0.0.11:2300",
		"hsm.example":     "hsm.example:2223",
		"::1":             "[::1]:2223",
		"[::1]":           "[::1]:2223",
		"[::1]:9":         "[::1]:9",
	} {
		var a addrsFlag
		if err := a.Set(in); err != nil || len(a) != 1 || a[0] != want {
			t.Errorf("-a %s: %v %v, want %s", in, a, err, want)
		}
	}
	for _, bad := range []string{"", "a b", "127.0.0.1/8"} {
		var a addrsFlag
		if err := a.Set(bad); err == nil {
			t.Errorf("-a %q accepted: %v", bad, a)
		}
	}
}
