package cryptoki

import (
	"bytes"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
)

// TestGCMIVWrittenBack: the IV the HSM chose for an encryption under a
// zeroed IV lands in the caller's own buffer (not a copy), also when the
// result is fetched with the two-call convention; a caller's IV is left
// alone; CKM_CLOUDHSM_AES_GCM refuses a caller's IV at Init.
func TestGCMIVWrittenBack(t *testing.T) {
	m, _, h := loggedIn(t)
	ctx := t.Context()
	key, rv := m.CreateObject(ctx, h, nil)
	must(t, rv)

	buf := make([]byte, 12) // the caller's pIv
	must(t, m.Init(ctx, h, OpEncrypt, client.Mechanism{Type: ck.CKM_AES_GCM, IV: buf, TagBits: 128}, key))
	n, rv := m.Single(ctx, h, OpEncrypt, []byte("data"), nil, true) // length query: the HSM encrypts now
	must(t, rv)
	if bytes.Equal(buf, make([]byte, 12)) {
		t.Fatal("pIv still zero after the encryption")
	}
	got := bytes.Clone(buf)
	_, rv = m.Single(ctx, h, OpEncrypt, []byte("data"), make([]byte, n), false)
	must(t, rv)
	if !bytes.Equal(buf, got) {
		t.Fatal("pIv changed when the result was fetched")
	}

	own := []byte("caller-iv-12")
	must(t, m.Init(ctx, h, OpEncrypt, client.Mechanism{Type: ck.CKM_AES_GCM, IV: own, TagBits: 128}, key))
	_, rv = m.Single(ctx, h, OpEncrypt, []byte("data"), make([]byte, 64), false)
	must(t, rv)
	if string(own) != "caller-iv-12" {
		t.Fatalf("caller's IV overwritten: %q", own)
	}

	wantRV(t, m.Init(ctx, h, OpEncrypt, client.Mechanism{Type: ck.CKM_CLOUDHSM_AES_GCM, IV: own, TagBits: 128}, key), ck.CKR_MECHANISM_PARAM_INVALID)
	wantRV(t, m.Init(ctx, h, OpDecrypt, client.Mechanism{Type: ck.CKM_CLOUDHSM_AES_GCM, IV: own, TagBits: 128}, key), ck.CKR_MECHANISM_PARAM_INVALID)
	must(t, m.Init(ctx, h, OpEncrypt, client.Mechanism{Type: ck.CKM_CLOUDHSM_AES_GCM, TagBits: 128}, key))
}
