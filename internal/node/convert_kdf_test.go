package node

import (
	"bytes"
	"strings"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// The SP 800-108 data parameters and the RSA-AES key size cross the wire as
// given, and are bounded: at most 64 parameters, 64 KiB of bytes in all,
// none empty.
func TestMechanismKDFData(t *testing.T) {
	in := &hsmv1.Mechanism{Type: uint64(ck.CKM_SP800_108_COUNTER_KDF), Prf: uint64(ck.CKM_SHA256_HMAC), AesKeyBits: 192,
		KdfData: []*hsmv1.KDFDataParam{
			{Type: ck.CK_SP800_108_ITERATION_VARIABLE, WidthBits: 16, LittleEndian: true},
			{Type: ck.CK_SP800_108_BYTE_ARRAY, Value: []byte("label")},
			{Type: ck.CK_SP800_108_DKM_LENGTH, WidthBits: 32, DkmMethod: ck.CK_SP800_108_DKM_LENGTH_SUM_OF_KEYS},
		}}
	m, err := mechanism(in)
	if err != nil {
		t.Fatal(err)
	}
	if m.PRF != ck.CKM_SHA256_HMAC || m.AESKeyBits != 192 || len(m.KDFData) != 3 ||
		m.KDFData[0].WidthBits != 16 || !m.KDFData[0].LittleEndian || !bytes.Equal(m.KDFData[1].Value, []byte("label")) ||
		m.KDFData[2].DKMMethod != ck.CK_SP800_108_DKM_LENGTH_SUM_OF_KEYS || m.KDFData[2].Type != ck.CK_SP800_108_DKM_LENGTH {
		t.Fatalf("converted %+v", m)
	}
	many := make([]*hsmv1.KDFDataParam, 65)
	for i := range many {
		many[i] = &hsmv1.KDFDataParam{Type: ck.CK_SP800_108_BYTE_ARRAY}
	}
	big := []*hsmv1.KDFDataParam{{Type: ck.CK_SP800_108_BYTE_ARRAY, Value: make([]byte, 40<<10)}, {Type: ck.CK_SP800_108_BYTE_ARRAY, Value: make([]byte, 40<<10)}}
	for name, ps := range map[string][]*hsmv1.KDFDataParam{"65 parameters": many, "80 KiB": big, "an empty one": {nil}} {
		_, err := mechanism(&hsmv1.Mechanism{Type: uint64(ck.CKM_SP800_108_COUNTER_KDF), KdfData: ps})
		if err == nil || !strings.Contains(err.Error(), "KDF data") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
