package cryptoki

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
)

// The fake's KEM side: a fixed ciphertext, and a count of the keys made.

var fakeCiphertext = bytes.Repeat([]byte{0xc7}, 1088)

func (s *fakeSession) EncapsulateKey(_ context.Context, _ client.ObjectID, _ client.Mechanism, tmpl []client.Attribute, _ ...client.CreateOption) (client.ObjectID, []byte, error) {
	s.c.mu.Lock()
	s.c.calls["kem"]++
	s.c.mu.Unlock()
	return s.add(tmpl), fakeCiphertext, nil
}

func (s *fakeSession) DecapsulateKey(_ context.Context, _ client.ObjectID, _ client.Mechanism, ct []byte, tmpl []client.Attribute, _ ...client.CreateOption) (client.ObjectID, error) {
	if !bytes.Equal(ct, fakeCiphertext) {
		return 0, refuse(ck.CKR_ENCRYPTED_DATA_INVALID)
	}
	s.c.mu.Lock()
	s.c.calls["kem"]++
	s.c.mu.Unlock()
	return s.add(tmpl), nil
}

func ulongAttr(t ck.AttributeType, v uint64) client.Attribute {
	return client.Attribute{Type: t, Value: binary.LittleEndian.AppendUint64(nil, v)}
}

// TestEncapsulateTwoCalls: C_EncapsulateKey answers the ciphertext length
// (from the key's CKA_PARAMETER_SET) without making a key when asked or
// given too short a buffer; the key halves and the mechanism are checked
// before the HSM is asked.
func TestEncapsulateTwoCalls(t *testing.T) {
	m, fc, h := loggedIn(t)
	fc.mu.Lock()
	fc.mechs = append(fc.mechs, client.MechanismInfo{Type: ck.CKM_ML_KEM, MinKeySize: uint(ck.CKP_ML_KEM_768), MaxKeySize: uint(ck.CKP_ML_KEM_1024),
		Flags: ck.CKF_HW | ck.CKF_ENCAPSULATE | ck.CKF_DECAPSULATE, KeyType: ck.CKK_ML_KEM, KeyUse: client.KeyPair})
	fc.mu.Unlock()
	ctx := t.Context()
	pair := func(ps ck.ParameterSet) (ObjectHandle, ObjectHandle) {
		pub, priv, rv := m.GenerateKeyPair(ctx, h, client.Mechanism{Type: ck.CKM_ML_KEM_KEY_PAIR_GEN},
			[]client.Attribute{ulongAttr(ck.CKA_CLASS, uint64(ck.CKO_PUBLIC_KEY)), ulongAttr(ck.CKA_KEY_TYPE, uint64(ck.CKK_ML_KEM)), ulongAttr(ck.CKA_PARAMETER_SET, uint64(ps))},
			[]client.Attribute{ulongAttr(ck.CKA_CLASS, uint64(ck.CKO_PRIVATE_KEY)), ulongAttr(ck.CKA_KEY_TYPE, uint64(ck.CKK_ML_KEM)), ulongAttr(ck.CKA_PARAMETER_SET, uint64(ps))})
		must(t, rv)
		return pub, priv
	}
	pub, priv := pair(ck.CKP_ML_KEM_768)
	kem := client.Mechanism{Type: ck.CKM_ML_KEM}

	_, n, rv := m.EncapsulateKey(ctx, h, kem, pub, nil, nil, true)
	must(t, rv)
	if n != 1088 {
		t.Fatalf("length query: %d, want 1088", n)
	}
	_, n, rv = m.EncapsulateKey(ctx, h, kem, pub, nil, make([]byte, 100), false)
	wantRV(t, rv, ck.CKR_BUFFER_TOO_SMALL)
	if n != 1088 || fc.kemCalls() != 0 {
		t.Fatalf("short buffer: length %d, %d keys made", n, fc.kemCalls())
	}
	out := make([]byte, 2000)
	k, n, rv := m.EncapsulateKey(ctx, h, kem, pub, nil, out, false)
	must(t, rv)
	if k == 0 || n != 1088 || !bytes.Equal(out[:n], fakeCiphertext) || fc.kemCalls() != 1 {
		t.Fatalf("encapsulate: key %d, %d bytes, %d keys", k, n, fc.kemCalls())
	}
	_, rv = m.DecapsulateKey(ctx, h, kem, priv, nil, out[:n])
	must(t, rv)

	_, _, rv = m.EncapsulateKey(ctx, h, kem, priv, nil, out, false)
	wantRV(t, rv, ck.CKR_KEY_TYPE_INCONSISTENT)
	_, rv = m.DecapsulateKey(ctx, h, kem, pub, nil, out[:n])
	wantRV(t, rv, ck.CKR_KEY_TYPE_INCONSISTENT)
	_, _, rv = m.EncapsulateKey(ctx, h, client.Mechanism{Type: ck.CKM_ML_DSA}, pub, nil, out, false)
	wantRV(t, rv, ck.CKR_MECHANISM_INVALID)
	_, _, rv = m.EncapsulateKey(ctx, h, kem, 0xdead, nil, out, false)
	wantRV(t, rv, ck.CKR_KEY_HANDLE_INVALID)

	pub1024, _ := pair(ck.CKP_ML_KEM_1024)
	_, n, rv = m.EncapsulateKey(ctx, h, kem, pub1024, nil, nil, true)
	must(t, rv)
	if n != 1568 {
		t.Fatalf("ML-KEM-1024 length query: %d", n)
	}
	if fc.kemCalls() != 2 {
		t.Fatalf("%d keys made, want 2", fc.kemCalls())
	}
}

func (c *fakeCluster) kemCalls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls["kem"]
}
