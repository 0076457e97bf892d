package main

/*
#include "pkcs11.h"
*/
import "C"

import (
	"encoding/binary"
	"unsafe"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
	"github.com/coffer-hsm/coffer/internal/cryptoki"
)

// The device's attribute encoding (CK_ULONG as 8 bytes little-endian,
// CK_BBOOL as one byte) is the host's on the 64-bit little-endian platforms
// this library builds for (see arch.go), so attribute values cross the
// boundary unchanged.

// goBytes views C memory as a slice without copying; ok is false for a NULL
// pointer with a nonzero length. The slice must not outlive the call.
func goBytes(p unsafe.Pointer, n C.CK_ULONG) ([]byte, bool) {
	if p == nil {
		return nil, n == 0
	}
	return unsafe.Slice((*byte)(p), int(n)), true
}

// outBuf is the output side of the two-call convention: query when the
// buffer is NULL, else the buffer of *pLen bytes.
func outBuf(p C.CK_BYTE_PTR, pLen C.CK_ULONG_PTR) (buf []byte, query, ok bool) {
	if pLen == nil {
		return nil, false, false
	}
	if p == nil {
		return nil, true, true
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(p)), int(*pLen)), false, true
}

// template reads a C template; values alias C memory.
func template(p C.CK_ATTRIBUTE_PTR, n C.CK_ULONG) ([]client.Attribute, bool) {
	if n == 0 {
		return nil, true
	}
	if p == nil {
		return nil, false
	}
	cattrs := unsafe.Slice(p, int(n))
	out := make([]client.Attribute, n)
	for i := range cattrs {
		v, ok := goBytes(unsafe.Pointer(cattrs[i].pValue), cattrs[i].ulValueLen)
		if !ok {
			return nil, false
		}
		out[i] = client.Attribute{Type: ck.AttributeType(cattrs[i]._type), Value: v}
	}
	return out, true
}

// gcm240 is the layout of CK_GCM_PARAMS in PKCS#11 v2.40's text (without
// ulIvBits), which some applications still pass.
type gcm240 struct {
	pIv      *byte
	ulIvLen  C.CK_ULONG
	pAAD     *byte
	ulAADLen C.CK_ULONG
	tagBits  C.CK_ULONG
}

// mechanism reads a C mechanism and its parameters; byte fields alias C
// memory. ok is false for a NULL mechanism or malformed parameters.
func mechanism(p C.CK_MECHANISM_PTR) (client.Mechanism, ck.RV) {
	if p == nil {
		return client.Mechanism{}, ck.CKR_ARGUMENTS_BAD
	}
	m := client.Mechanism{Type: ck.MechanismType(p.mechanism)}
	param, ok := goBytes(unsafe.Pointer(p.pParameter), p.ulParameterLen)
	if !ok {
		return m, ck.CKR_MECHANISM_PARAM_INVALID
	}
	bad := ck.CKR_MECHANISM_PARAM_INVALID
	size := uintptr(p.ulParameterLen)
	ptr := unsafe.Pointer(p.pParameter)
	switch m.Type {
	case ck.CKM_AES_CBC, ck.CKM_AES_CBC_PAD, ck.CKM_AES_KEY_WRAP, ck.CKM_AES_KEY_WRAP_PAD,
		ck.CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD, ck.CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD, ck.CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD:
		m.IV = param
	case ck.CKM_AES_CTR:
		if size != unsafe.Sizeof(C.CK_AES_CTR_PARAMS{}) {
			return m, bad
		}
		cp := (*C.CK_AES_CTR_PARAMS)(ptr)
		m.CounterBits = uint(cp.ulCounterBits)
		m.IV = unsafe.Slice((*byte)(unsafe.Pointer(&cp.cb[0])), len(cp.cb))
	case ck.CKM_AES_GCM, ck.CKM_CLOUDHSM_AES_GCM:
		switch size {
		case unsafe.Sizeof(C.CK_GCM_PARAMS_V3{}):
			cp := (*C.CK_GCM_PARAMS_V3)(ptr)
			iv, ok1 := goBytes(unsafe.Pointer(cp.pIv), cp.ulIvLen)
			aad, ok2 := goBytes(unsafe.Pointer(cp.pAAD), cp.ulAADLen)
			if !ok1 || !ok2 {
				return m, bad
			}
			m.IV, m.AAD, m.TagBits = iv, aad, uint(cp.ulTagBits)
		case unsafe.Sizeof(gcm240{}):
			cp := (*gcm240)(ptr)
			iv, ok1 := goBytes(unsafe.Pointer(cp.pIv), cp.ulIvLen)
			aad, ok2 := goBytes(unsafe.Pointer(cp.pAAD), cp.ulAADLen)
			if !ok1 || !ok2 {
				return m, bad
			}
			m.IV, m.AAD, m.TagBits = iv, aad, uint(cp.tagBits)
		default:
			return m, bad
		}
	case ck.CKM_AES_CMAC_GENERAL, ck.CKM_SHA_1_HMAC_GENERAL, ck.CKM_SHA224_HMAC_GENERAL, ck.CKM_SHA256_HMAC_GENERAL,
		ck.CKM_SHA384_HMAC_GENERAL, ck.CKM_SHA512_HMAC_GENERAL:
		if len(param) != 8 {
			return m, bad
		}
		m.MACLen = uint(binary.NativeEndian.Uint64(param))
	case ck.CKM_RSA_PKCS_PSS, ck.CKM_SHA1_RSA_PKCS_PSS, ck.CKM_SHA224_RSA_PKCS_PSS, ck.CKM_SHA256_RSA_PKCS_PSS,
		ck.CKM_SHA384_RSA_PKCS_PSS, ck.CKM_SHA512_RSA_PKCS_PSS:
		if size != unsafe.Sizeof(C.CK_RSA_PKCS_PSS_PARAMS{}) {
			return m, bad
		}
		cp := (*C.CK_RSA_PKCS_PSS_PARAMS)(ptr)
		m.Hash, m.MGF, m.SaltLen = ck.MechanismType(cp.hashAlg), ck.MGF(cp.mgf), uint(cp.sLen)
	case ck.CKM_RSA_PKCS_OAEP:
		if size != unsafe.Sizeof(C.CK_RSA_PKCS_OAEP_PARAMS{}) || !oaepParams(&m, (*C.CK_RSA_PKCS_OAEP_PARAMS)(ptr)) {
			return m, bad
		}
	case ck.CKM_RSA_AES_KEY_WRAP:
		if size != unsafe.Sizeof(C.CK_RSA_AES_KEY_WRAP_PARAMS{}) {
			return m, bad
		}
		cp := (*C.CK_RSA_AES_KEY_WRAP_PARAMS)(ptr)
		if cp.pOAEPParams == nil || !oaepParams(&m, cp.pOAEPParams) {
			return m, bad
		}
		m.AESKeyBits = uint(cp.ulAESKeyBits)
	case ck.CKM_ECDH1_DERIVE:
		if size != unsafe.Sizeof(C.CK_ECDH1_DERIVE_PARAMS{}) {
			return m, bad
		}
		cp := (*C.CK_ECDH1_DERIVE_PARAMS)(ptr)
		m.KDF = ck.KDF(cp.kdf)
		sd, ok1 := goBytes(unsafe.Pointer(cp.pSharedData), cp.ulSharedDataLen)
		pd, ok2 := goBytes(unsafe.Pointer(cp.pPublicData), cp.ulPublicDataLen)
		if !ok1 || !ok2 {
			return m, bad
		}
		m.SharedData, m.PublicData = sd, pd
	case ck.CKM_ML_DSA:
		// CK_SIGN_ADDITIONAL_CONTEXT (PKCS#11 v3.2), or no parameter: pure
		// ML-DSA, hedged, with an empty context.
		if size == 0 {
			break
		}
		if size != unsafe.Sizeof(signContext{}) {
			return m, bad
		}
		cp := (*signContext)(ptr)
		ctx, ok := goBytes(unsafe.Pointer(cp.pContext), cp.ulContextLen)
		if !ok {
			return m, bad
		}
		if len(ctx) > 255 || cp.hedgeVariant > C.CK_ULONG(ck.CKH_DETERMINISTIC_REQUIRED) {
			return m, bad // refused at C_SignInit; the HSM checks again
		}
		m.Hedge, m.Context = ck.HedgeType(cp.hedgeVariant), ctx
	case ck.CKM_SP800_108_COUNTER_KDF:
		if size != unsafe.Sizeof(C.CK_SP800_108_KDF_PARAMS{}) {
			return m, bad
		}
		cp := (*C.CK_SP800_108_KDF_PARAMS)(ptr)
		if cp.ulAdditionalDerivedKeys != 0 || cp.pAdditionalDerivedKeys != nil { // not offered
			return m, bad
		}
		m.PRF = ck.MechanismType(cp.prfType)
		var ok bool
		if m.KDFData, ok = kdfData(cp.pDataParams, cp.ulNumberOfDataParams); !ok {
			return m, bad
		}
	}
	return m, ck.CKR_OK
}

// signContext is CK_SIGN_ADDITIONAL_CONTEXT of PKCS#11 v3.2, which the
// system's v3.0 header lacks.
type signContext struct {
	hedgeVariant C.CK_ULONG
	pContext     *byte
	ulContextLen C.CK_ULONG
}

// maxKDFDataParams bounds ulNumberOfDataParams (the HSM takes 64).
const maxKDFDataParams = 64

// kdfData reads an array of CK_PRF_DATA_PARAM; byte arrays alias C memory.
func kdfData(p C.CK_PRF_DATA_PARAM_PTR, n C.CK_ULONG) ([]client.KDFDataParam, bool) {
	if n == 0 || p == nil || n > maxKDFDataParams {
		return nil, false
	}
	out := make([]client.KDFDataParam, n)
	for i, cp := range unsafe.Slice(p, int(n)) {
		v, ok := goBytes(unsafe.Pointer(cp.pValue), cp.ulValueLen)
		if !ok {
			return nil, false
		}
		d := client.KDFDataParam{Type: uint(cp._type)}
		switch d.Type {
		case C.CK_SP800_108_ITERATION_VARIABLE:
			if uintptr(len(v)) != unsafe.Sizeof(C.CK_SP800_108_COUNTER_FORMAT{}) {
				return nil, false
			}
			f := (*C.CK_SP800_108_COUNTER_FORMAT)(unsafe.Pointer(&v[0]))
			d.LittleEndian, d.WidthBits = f.bLittleEndian != 0, uint(f.ulWidthInBits)
		case C.CK_SP800_108_DKM_LENGTH:
			if uintptr(len(v)) != unsafe.Sizeof(C.CK_SP800_108_DKM_LENGTH_FORMAT{}) {
				return nil, false
			}
			f := (*C.CK_SP800_108_DKM_LENGTH_FORMAT)(unsafe.Pointer(&v[0]))
			d.DKMMethod, d.LittleEndian, d.WidthBits = uint(f.dkmLengthMethod), f.bLittleEndian != 0, uint(f.ulWidthInBits)
		default:
			d.Value = v
		}
		out[i] = d
	}
	return out, true
}

// oaepParams reads CK_RSA_PKCS_OAEP_PARAMS into m; false if its source
// data is malformed.
func oaepParams(m *client.Mechanism, cp *C.CK_RSA_PKCS_OAEP_PARAMS) bool {
	m.Hash, m.MGF = ck.MechanismType(cp.hashAlg), ck.MGF(cp.mgf)
	if cp.source == C.CKZ_DATA_SPECIFIED {
		var ok bool
		if m.Label, ok = goBytes(unsafe.Pointer(cp.pSourceData), cp.ulSourceDataLen); !ok {
			return false
		}
	}
	return true
}

// pad copies s into a blank-padded fixed-size CK_UTF8CHAR field.
func pad(dst []C.CK_UTF8CHAR, s string) {
	for i := range dst {
		dst[i] = ' '
	}
	for i := 0; i < len(dst) && i < len(s); i++ {
		dst[i] = C.CK_UTF8CHAR(s[i])
	}
}

func version(v [2]byte) C.CK_VERSION {
	return C.CK_VERSION{major: C.CK_BYTE(v[0]), minor: C.CK_BYTE(v[1])}
}

func fillInfo(p *C.CK_INFO, i cryptoki.Info) {
	*p = C.CK_INFO{}
	p.cryptokiVersion = C.CK_VERSION{major: 3, minor: 0}
	pad(p.manufacturerID[:], i.Manufacturer)
	pad(p.libraryDescription[:], i.Description)
	p.libraryVersion = version(i.Version)
}

func fillSlotInfo(p *C.CK_SLOT_INFO, i cryptoki.SlotInfo) {
	*p = C.CK_SLOT_INFO{}
	pad(p.slotDescription[:], i.Description)
	pad(p.manufacturerID[:], i.Manufacturer)
	p.flags = C.CK_FLAGS(i.Flags)
	p.hardwareVersion = version(i.Version)
	p.firmwareVersion = version(i.Version)
}

func fillTokenInfo(p *C.CK_TOKEN_INFO, i cryptoki.TokenInfo) {
	*p = C.CK_TOKEN_INFO{}
	pad(p.label[:], i.Label)
	pad(p.manufacturerID[:], i.Manufacturer)
	pad(p.model[:], i.Model)
	pad((*[16]C.CK_UTF8CHAR)(unsafe.Pointer(&p.serialNumber[0]))[:], i.Serial)
	p.flags = C.CK_FLAGS(i.Flags)
	p.ulMaxSessionCount = C.CK_ULONG(i.MaxSessions)
	p.ulSessionCount = C.CK_ULONG(i.Sessions)
	p.ulMaxRwSessionCount = C.CK_ULONG(i.MaxRWSessions)
	p.ulRwSessionCount = C.CK_ULONG(i.RWSessions)
	p.ulMaxPinLen = C.CK_ULONG(i.MaxPinLen)
	p.ulMinPinLen = C.CK_ULONG(i.MinPinLen)
	p.ulTotalPublicMemory = C.CK_ULONG(i.TotalPublicMemory)
	p.ulFreePublicMemory = C.CK_ULONG(i.FreePublicMemory)
	p.ulTotalPrivateMemory = C.CK_ULONG(i.TotalPrivateMemory)
	p.ulFreePrivateMemory = C.CK_ULONG(i.FreePrivateMemory)
	p.hardwareVersion = version(i.Version)
	p.firmwareVersion = version(i.Version)
	pad((*[16]C.CK_UTF8CHAR)(unsafe.Pointer(&p.utcTime[0]))[:], "")
}
