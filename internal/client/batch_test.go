package client

import (
	"testing"
)

// Single-part operations travel on the Batch stream; an HSM that does not
// serve it gets them as RPCs, and the caller sees no difference.
func TestBatchAndFallback(t *testing.T) {
	for _, serves := range []bool{true, false} {
		w, pki := newFakeCluster(t, 2)
		for _, f := range w.servers {
			f.noBatch.Store(!serves)
		}
		c := dial(t, testConfig(w, pki))
		s := login(t, c)
		key := replicatedKey(t, s, 2)
		for range 10 {
			sig, err := s.Sign(t.Context(), key, hmac, []byte("m"))
			if err != nil || string(sig) != "Sign:m" {
				t.Fatalf("serves Batch %v: Sign = %q, %v", serves, sig, err)
			}
			if err := s.Verify(t.Context(), key, hmac, []byte("m"), sig); err != nil {
				t.Fatalf("serves Batch %v: Verify: %v", serves, err)
			}
		}
		var sends int64
		signs := 0
		for i, m := range c.live() {
			sends += m.batch.Sends()
			signs += w.servers[i].count("Sign")
			if m.batch.Supported() != serves {
				t.Errorf("serves Batch %v: the client's Supported is %v", serves, m.batch.Supported())
			}
		}
		if signs != 10 {
			t.Errorf("serves Batch %v: the HSMs signed %d times, want 10", serves, signs)
		}
		if serves && sends < 20 || !serves && sends > 2 {
			t.Errorf("serves Batch %v: %d Batch messages sent", serves, sends)
		}
	}
}
