package node

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
	"github.com/coffer-hsm/coffer/internal/cryptoki"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// keyShape is an object of one class, key type and size, made on the HSM
// by the client and found by the PKCS#11 module.
type keyShape struct {
	name string
	id   client.ObjectID
	h    cryptoki.ObjectHandle
}

// shapeRV is the part of an answer that the key-shape rule decides: an
// object that is no key, a key of the wrong class or type, a mechanism
// that does not do the function. Whatever else an HSM answers (a missing
// parameter, a usage attribute, bad data) comes after the rule let the key
// through, as does the module's CKR_OK.
func shapeRV(rv ck.RV) ck.RV {
	switch rv {
	case ck.CKR_KEY_HANDLE_INVALID, ck.CKR_KEY_TYPE_INCONSISTENT, ck.CKR_MECHANISM_INVALID:
		return rv
	}
	return ck.CKR_OK
}

// TestModuleKeyRulesFollowDevice: the PKCS#11 module refuses a key of the
// wrong class or type at C_*Init, before any round trip, so its answer
// must be the one the HSM gives when the operation begins. For every
// mechanism the HSM offers, every function of C_*Init (and ML-KEM's
// encapsulation and decapsulation) and every shape of object (class, key
// type, size), the module's answer is the device's; for a function the
// mechanism does not do, the module refuses too.
func TestModuleKeyRulesFollowDevice(t *testing.T) {
	pki := newTestPKI(t, "cluster-keyrules")
	n := start(t, config(t, pki, 1, MasterKeyCreate))
	eventually(t, "ready", n.Ready)
	activate(t, hsmv1.NewHSMClient(dial(t, pki, n.Addr())))
	ctx := t.Context()
	cl := dialCluster(t, pki, n.Addr())
	s, err := cl.Login(ctx, "crypto-user", cuName, cuPW)
	if err != nil {
		t.Fatal(err)
	}

	shapes := makeShapes(t, s)
	mod, h := moduleSession(t, cl)
	for i := range shapes {
		shapes[i].h = findLabelled(t, mod, h, shapes[i].name)
	}

	mechs, rv := mod.MechanismList(ctx, 0)
	if rv != ck.CKR_OK {
		t.Fatalf("C_GetMechanismList: %v", rv)
	}
	kinds := []struct {
		name  string
		kind  cryptoki.OpKind
		fn    client.Function
		flag  ck.Flags
		begin bool
	}{
		{"encrypt", cryptoki.OpEncrypt, client.FnEncrypt, ck.CKF_ENCRYPT, true},
		{"decrypt", cryptoki.OpDecrypt, client.FnDecrypt, ck.CKF_DECRYPT, true},
		{"sign", cryptoki.OpSign, client.FnSign, ck.CKF_SIGN, true},
		{"verify", cryptoki.OpVerify, client.FnVerify, ck.CKF_VERIFY, true},
	}
	checked := 0
	for _, m := range mechs {
		mi, rv := mod.MechanismInfo(ctx, 0, m)
		if rv != ck.CKR_OK {
			t.Fatalf("C_GetMechanismInfo(%v): %v", m, rv)
		}
		if mi.Flags&(ck.CKF_ENCRYPT|ck.CKF_DECRYPT|ck.CKF_SIGN|ck.CKF_VERIFY) == 0 {
			continue // no C_*Init takes it (digests, key generation, derivation, KEM)
		}
		mech := client.Mechanism{Type: m}
		for _, k := range kinds {
			for _, sh := range shapes {
				got := shapeRV(mod.Init(ctx, h, k.kind, mech, sh.h))
				mod.SessionCancel(ctx, h, k.flag)
				if mi.Flags&k.flag == 0 {
					if got == ck.CKR_OK {
						t.Errorf("%v %s with %s: the module lets it through; %v does not %s", m, k.name, sh.name, m, k.name)
					}
					continue
				}
				op, err := s.Begin(ctx, k.fn, sh.id, mech)
				if err == nil {
					op.Abort(ctx)
				}
				if want := shapeRV(client.Code(err)); got != want {
					t.Errorf("%v %s with %s: the module answers %v, the HSM %v (%v)", m, k.name, sh.name, got, want, err)
				}
				checked++
			}
		}
	}

	// C_EncapsulateKey and C_DecapsulateKey check the key's shape as
	// C_EncryptInit and C_DecryptInit do.
	kem := client.Mechanism{Type: ck.CKM_ML_KEM}
	secret := []client.Attribute{{Type: ck.CKA_CLASS, Value: ulong(uint64(ck.CKO_SECRET_KEY))}, {Type: ck.CKA_KEY_TYPE, Value: ulong(uint64(ck.CKK_GENERIC_SECRET))}}
	for _, sh := range shapes {
		_, _, mrv := mod.EncapsulateKey(ctx, h, kem, sh.h, secret, nil, true)
		_, _, err := s.EncapsulateKey(ctx, sh.id, kem, secret)
		if got, want := shapeRV(mrv), shapeRV(client.Code(err)); got != want {
			t.Errorf("encapsulate with %s: the module answers %v, the HSM %v (%v)", sh.name, got, want, err)
		}
		_, mrv = mod.DecapsulateKey(ctx, h, kem, sh.h, secret, []byte("not a ciphertext"))
		_, err = s.DecapsulateKey(ctx, sh.id, kem, []byte("not a ciphertext"), secret)
		if got, want := shapeRV(mrv), shapeRV(client.Code(err)); got != want {
			t.Errorf("decapsulate with %s: the module answers %v, the HSM %v (%v)", sh.name, got, want, err)
		}
		checked += 2
	}
	if checked < 1000 {
		t.Errorf("only %d mechanism, function and shape combinations checked", checked)
	}
}

func ulong(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// makeShapes makes one token object of every shape the HSM holds: AES and
// generic secret keys of several sizes, both halves of RSA, EC, Ed25519,
// ML-DSA and ML-KEM key pairs of every size offered, and a data object.
func makeShapes(t *testing.T, s *client.Session) []keyShape {
	t.Helper()
	ctx := t.Context()
	var out []keyShape
	label := func(name string) []client.Attribute {
		return []client.Attribute{client.Bool(ck.CKA_TOKEN, true), {Type: ck.CKA_LABEL, Value: []byte("keyrules " + name)}}
	}
	with := func(name string, more ...client.Attribute) []client.Attribute { return append(label(name), more...) }
	add := func(name string, id client.ObjectID, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("make %s: %v", name, err)
		}
		out = append(out, keyShape{name: name, id: id})
	}
	secretUse := []client.Attribute{client.Bool(ck.CKA_ENCRYPT, true), client.Bool(ck.CKA_DECRYPT, true), client.Bool(ck.CKA_SIGN, true), client.Bool(ck.CKA_VERIFY, true)}
	for _, n := range []uint64{16, 24, 32} {
		name := fmt.Sprintf("AES-%d", n*8)
		id, err := s.GenerateKey(ctx, client.Mechanism{Type: ck.CKM_AES_KEY_GEN}, with(name, append(slices.Clone(secretUse), client.Attribute{Type: ck.CKA_VALUE_LEN, Value: ulong(n)})...))
		add(name, id, err)
	}
	for _, n := range []uint64{16, 64, 800} {
		name := fmt.Sprintf("generic secret of %d bytes", n)
		id, err := s.GenerateKey(ctx, client.Mechanism{Type: ck.CKM_GENERIC_SECRET_KEY_GEN}, with(name, append(slices.Clone(secretUse), client.Attribute{Type: ck.CKA_VALUE_LEN, Value: ulong(n)})...))
		add(name, id, err)
	}
	pair := func(name string, m ck.MechanismType, pubMore []client.Attribute, pubUse, privUse []client.Attribute) {
		t.Helper()
		pub, priv, err := s.GenerateKeyPair(ctx, client.Mechanism{Type: m},
			with(name+" public", append(slices.Clone(pubMore), pubUse...)...), with(name+" private", privUse...))
		add(name+" public", pub, err)
		add(name+" private", priv, err)
	}
	sigPub, sigPriv := []client.Attribute{client.Bool(ck.CKA_VERIFY, true)}, []client.Attribute{client.Bool(ck.CKA_SIGN, true)}
	for _, bits := range []uint64{2048, 3072, 4096} {
		pair(fmt.Sprintf("RSA-%d", bits), ck.CKM_RSA_PKCS_KEY_PAIR_GEN, []client.Attribute{{Type: ck.CKA_MODULUS_BITS, Value: ulong(bits)}},
			[]client.Attribute{client.Bool(ck.CKA_VERIFY, true), client.Bool(ck.CKA_ENCRYPT, true)},
			[]client.Attribute{client.Bool(ck.CKA_SIGN, true), client.Bool(ck.CKA_DECRYPT, true)})
	}
	for _, c := range []struct {
		name string
		oid  string
	}{{"P-256", "\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07"}, {"P-384", "\x06\x05\x2b\x81\x04\x00\x22"}, {"P-521", "\x06\x05\x2b\x81\x04\x00\x23"}} {
		pair("EC "+c.name, ck.CKM_EC_KEY_PAIR_GEN, []client.Attribute{{Type: ck.CKA_EC_PARAMS, Value: []byte(c.oid)}}, sigPub, sigPriv)
	}
	pair("Ed25519", ck.CKM_EC_EDWARDS_KEY_PAIR_GEN, []client.Attribute{{Type: ck.CKA_EC_PARAMS, Value: []byte("\x06\x03\x2b\x65\x70")}}, sigPub, sigPriv)
	for _, ps := range []ck.ParameterSet{ck.CKP_ML_DSA_44, ck.CKP_ML_DSA_65, ck.CKP_ML_DSA_87} {
		pair(fmt.Sprintf("ML-DSA parameter set %d", ps), ck.CKM_ML_DSA_KEY_PAIR_GEN, []client.Attribute{{Type: ck.CKA_PARAMETER_SET, Value: ulong(uint64(ps))}}, sigPub, sigPriv)
	}
	for _, ps := range []ck.ParameterSet{ck.CKP_ML_KEM_768, ck.CKP_ML_KEM_1024} {
		pair(fmt.Sprintf("ML-KEM parameter set %d", ps), ck.CKM_ML_KEM_KEY_PAIR_GEN, []client.Attribute{{Type: ck.CKA_PARAMETER_SET, Value: ulong(uint64(ps))}},
			[]client.Attribute{client.Bool(ck.CKA_ENCAPSULATE, true)}, []client.Attribute{client.Bool(ck.CKA_DECAPSULATE, true)})
	}
	id, err := s.CreateObject(ctx, with("data object", client.Attribute{Type: ck.CKA_CLASS, Value: ulong(uint64(ck.CKO_DATA))}, client.Attribute{Type: ck.CKA_VALUE, Value: []byte("not a key")}))
	add("data object", id, err)
	return out
}

// moduleSession is a PKCS#11 module over cl with a session logged in as
// alice.
func moduleSession(t *testing.T, cl *client.Cluster) (*cryptoki.Module, cryptoki.SessionHandle) {
	t.Helper()
	ctx := t.Context()
	mod, err := cryptoki.New(ctx, cryptoki.Config{
		Handles: &cryptoki.Handles{},
		Slots: []cryptoki.SlotConfig{{ClusterID: "cluster-keyrules", Dial: func(context.Context) (cryptoki.Cluster, error) {
			return cryptoki.ClientCluster(cl), nil
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mod.Close(context.Background()) })
	h, rv := mod.OpenSession(0, ck.CKF_SERIAL_SESSION|ck.CKF_RW_SESSION)
	if rv != ck.CKR_OK {
		t.Fatalf("C_OpenSession: %v", rv)
	}
	if rv := mod.Login(ctx, h, ck.CKU_USER, []byte(cuName+":"+cuPW)); rv != ck.CKR_OK {
		t.Fatalf("C_Login: %v", rv)
	}
	return mod, h
}

// findLabelled is the module's handle of the object labelled "keyrules
// name": found, so the module learns its class and key type from the HSM.
func findLabelled(t *testing.T, mod *cryptoki.Module, h cryptoki.SessionHandle, name string) cryptoki.ObjectHandle {
	t.Helper()
	ctx := t.Context()
	if rv := mod.FindObjectsInit(ctx, h, []client.Attribute{{Type: ck.CKA_LABEL, Value: []byte("keyrules " + name)}}); rv != ck.CKR_OK {
		t.Fatalf("C_FindObjectsInit(%s): %v", name, rv)
	}
	found := make([]cryptoki.ObjectHandle, 2)
	n, rv := mod.FindObjects(h, found)
	mod.FindObjectsFinal(h)
	if rv != ck.CKR_OK || n != 1 {
		t.Fatalf("C_FindObjects(%s): %d objects, %v", name, n, rv)
	}
	return found[0]
}
