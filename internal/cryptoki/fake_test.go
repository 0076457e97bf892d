package cryptoki

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"sync"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
)

// fakeCluster is an in-memory cluster: users, objects with attributes, and
// "crypto" that is easy to check (sign = SHA-256 of key id and data,
// encrypt = XOR with 0x5a).
type fakeCluster struct {
	mu       sync.Mutex
	users    map[string]string // username -> password
	roles    map[string]string
	failures map[string]int
	objects  map[client.ObjectID]map[ck.AttributeType][]byte
	nextID   client.ObjectID
	calls    map[string]int
	open     int                    // client sessions open
	lastMech client.Mechanism       // the mechanism of the last Encrypt, as the fake received it
	mechs    []client.MechanismInfo // the mechanism table; a test may add to it before the module first asks
}

func newFakeCluster() *fakeCluster {
	return &fakeCluster{
		users:    map[string]string{"alice": "password1", "admin": "adminpw1"},
		roles:    map[string]string{"alice": "crypto-user", "admin": "admin"},
		failures: map[string]int{},
		objects:  map[client.ObjectID]map[ck.AttributeType][]byte{},
		nextID:   100,
		calls:    map[string]int{},
		mechs: []client.MechanismInfo{
			{Type: ck.CKM_AES_GCM, MinKeySize: 128, MaxKeySize: 256, Flags: ck.CKF_HW | ck.CKF_ENCRYPT | ck.CKF_DECRYPT | ck.CKF_WRAP | ck.CKF_UNWRAP, KeyType: ck.CKK_AES, KeyUse: client.SecretKey},
			{Type: ck.CKM_CLOUDHSM_AES_GCM, MinKeySize: 128, MaxKeySize: 256, Flags: ck.CKF_HW | ck.CKF_ENCRYPT | ck.CKF_DECRYPT | ck.CKF_WRAP | ck.CKF_UNWRAP, KeyType: ck.CKK_AES, KeyUse: client.SecretKey},
			{Type: ck.CKM_AES_KEY_GEN, MinKeySize: 128, MaxKeySize: 256, Flags: ck.CKF_HW | ck.CKF_GENERATE, KeyType: ck.CKK_AES},
			{Type: ck.CKM_SHA256, Flags: ck.CKF_HW | ck.CKF_DIGEST},
			{Type: ck.CKM_ECDSA_SHA256, MinKeySize: 256, MaxKeySize: 521, Flags: ck.CKF_HW | ck.CKF_SIGN | ck.CKF_VERIFY, KeyType: ck.CKK_EC, KeyUse: client.KeyPair},
		},
	}
}

func refuse(rv ck.RV) error { return &client.Error{RV: rv, Msg: "fake"} }

func (c *fakeCluster) count(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[op]
}

func (c *fakeCluster) Login(_ context.Context, role, username, password string) (Session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.failures[username] >= 3:
		return nil, refuse(ck.CKR_PIN_LOCKED)
	case c.users[username] != password || c.roles[username] != role:
		c.failures[username]++
		return nil, refuse(ck.CKR_PIN_INCORRECT)
	}
	c.failures[username] = 0
	c.open++
	return &fakeSession{c: c, user: username}, nil
}

func (c *fakeCluster) Mechanisms(context.Context) ([]client.MechanismInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mechs, nil
}

func (c *fakeCluster) Close() error { return nil }

type fakeSession struct {
	c    *fakeCluster
	user string
}

func (s *fakeSession) Username() string { return s.user }

func (s *fakeSession) add(tmpl []client.Attribute) client.ObjectID {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextID++
	attrs := map[ck.AttributeType][]byte{ck.CKA_TOKEN: {0}, ck.CKA_SENSITIVE: {1}, ck.CKA_VALUE: []byte("secret-key-bytes")}
	for _, a := range tmpl {
		attrs[a.Type] = bytes.Clone(a.Value)
	}
	c.objects[c.nextID] = attrs
	return c.nextID
}

func (s *fakeSession) GenerateKey(_ context.Context, _ client.Mechanism, tmpl []client.Attribute, _ ...client.CreateOption) (client.ObjectID, error) {
	return s.add(tmpl), nil
}

func (s *fakeSession) GenerateKeyPair(_ context.Context, _ client.Mechanism, public, private []client.Attribute, _ ...client.CreateOption) (client.ObjectID, client.ObjectID, error) {
	return s.add(public), s.add(private), nil
}

func (s *fakeSession) CreateObject(_ context.Context, tmpl []client.Attribute, _ ...client.CreateOption) (client.ObjectID, error) {
	return s.add(tmpl), nil
}

func (s *fakeSession) UnwrapKey(_ context.Context, _ client.ObjectID, _ client.Mechanism, _ []byte, tmpl []client.Attribute, _ ...client.CreateOption) (client.ObjectID, error) {
	return s.add(tmpl), nil
}

func (s *fakeSession) DeriveKey(_ context.Context, _ client.ObjectID, _ client.Mechanism, tmpl []client.Attribute, _ ...client.CreateOption) (client.ObjectID, error) {
	return s.add(tmpl), nil
}

func (s *fakeSession) FindObjects(_ context.Context, tmpl []client.Attribute) ([]client.ObjectID, error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []client.ObjectID
	for id := client.ObjectID(0); id <= c.nextID; id++ {
		attrs, ok := c.objects[id]
		if !ok {
			continue
		}
		match := true
		for _, a := range tmpl {
			if !bytes.Equal(attrs[a.Type], a.Value) {
				match = false
			}
		}
		if match {
			out = append(out, id)
		}
	}
	return out, nil
}

func (s *fakeSession) GetAttributes(_ context.Context, id client.ObjectID, types []ck.AttributeType) ([]client.AttributeValue, error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	attrs, ok := c.objects[id]
	if !ok {
		return nil, refuse(ck.CKR_OBJECT_HANDLE_INVALID)
	}
	out := make([]client.AttributeValue, len(types))
	for i, t := range types {
		v, ok := attrs[t]
		switch {
		case !ok:
			out[i] = client.AttributeValue{Type: t, RV: ck.CKR_ATTRIBUTE_TYPE_INVALID}
		case t == ck.CKA_VALUE && attrs[ck.CKA_SENSITIVE][0] == 1:
			out[i] = client.AttributeValue{Type: t, RV: ck.CKR_ATTRIBUTE_SENSITIVE}
		default:
			out[i] = client.AttributeValue{Type: t, Value: v}
		}
	}
	return out, nil
}

func (s *fakeSession) SetAttributes(_ context.Context, id client.ObjectID, tmpl []client.Attribute) error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range tmpl {
		c.objects[id][a.Type] = a.Value
	}
	return nil
}

func (s *fakeSession) DestroyObject(_ context.Context, id client.ObjectID) error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.objects[id]; !ok {
		return refuse(ck.CKR_OBJECT_HANDLE_INVALID)
	}
	delete(c.objects, id)
	c.calls["destroy"]++
	return nil
}

func xor(b []byte) []byte {
	out := make([]byte, len(b))
	for i := range b {
		out[i] = b[i] ^ 0x5a
	}
	return out
}

func (s *fakeSession) Encrypt(_ context.Context, _ client.ObjectID, m client.Mechanism, data []byte) ([]byte, error) {
	s.c.mu.Lock()
	s.c.lastMech = m
	s.c.lastMech.IV, s.c.lastMech.AAD = bytes.Clone(m.IV), bytes.Clone(m.AAD)
	s.c.mu.Unlock()
	return xor(data), nil
}

// EncryptIV is Encrypt; for AES-GCM with a zeroed 12-byte IV it returns a
// fresh random IV as the HSM does.
func (s *fakeSession) EncryptIV(ctx context.Context, key client.ObjectID, m client.Mechanism, data []byte) ([]byte, []byte, error) {
	out, err := s.Encrypt(ctx, key, m, data)
	if m.Type == ck.CKM_AES_GCM && bytes.Equal(m.IV, make([]byte, 12)) {
		return out, []byte(rand.Text())[:12], err
	}
	return out, nil, err
}

func (s *fakeSession) WrapKeyIV(ctx context.Context, wk client.ObjectID, m client.Mechanism, key client.ObjectID) ([]byte, []byte, error) {
	out, err := s.WrapKey(ctx, wk, m, key)
	return out, nil, err
}

func (s *fakeSession) Decrypt(_ context.Context, _ client.ObjectID, _ client.Mechanism, data []byte) ([]byte, error) {
	return xor(data), nil
}

func fakeSig(key client.ObjectID, data []byte) []byte {
	h := sha256.Sum256(append([]byte{byte(key)}, data...))
	return h[:]
}

func (s *fakeSession) Sign(_ context.Context, key client.ObjectID, _ client.Mechanism, data []byte) ([]byte, error) {
	s.c.mu.Lock()
	s.c.calls["sign"]++
	s.c.mu.Unlock()
	return fakeSig(key, data), nil
}

func (s *fakeSession) Verify(_ context.Context, key client.ObjectID, _ client.Mechanism, data, sig []byte) error {
	if !bytes.Equal(sig, fakeSig(key, data)) {
		return refuse(ck.CKR_SIGNATURE_INVALID)
	}
	return nil
}

func (s *fakeSession) Digest(_ context.Context, _ client.Mechanism, data []byte) ([]byte, error) {
	h := sha256.Sum256(data)
	return h[:], nil
}

func (s *fakeSession) WrapKey(_ context.Context, _ client.ObjectID, _ client.Mechanism, key client.ObjectID) ([]byte, error) {
	s.c.mu.Lock()
	s.c.calls["wrap"]++
	s.c.mu.Unlock()
	return []byte{byte(key), 1, 2, 3, 4, 5, 6, 7}, nil
}

func (s *fakeSession) GenerateRandom(_ context.Context, n int) ([]byte, error) {
	s.c.mu.Lock()
	s.c.calls["random"]++
	s.c.mu.Unlock()
	return bytes.Repeat([]byte{7}, n), nil
}

func (s *fakeSession) ChangePassword(_ context.Context, username, pw string, _ *client.Approvals) error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.c.users[username] = pw
	return nil
}

func (s *fakeSession) Begin(_ context.Context, fn client.Function, key client.ObjectID, _ client.Mechanism) (Operation, error) {
	return &fakeOp{fn: fn, key: key}, nil
}

func (s *fakeSession) Close(context.Context) error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.c.open--
	return nil
}

type fakeOp struct {
	fn   client.Function
	key  client.ObjectID
	data []byte
	done bool
}

func (o *fakeOp) Update(_ context.Context, data []byte) ([]byte, error) {
	if o.done {
		return nil, client.ErrOperationLost
	}
	o.data = append(o.data, data...)
	if o.fn == client.FnEncrypt || o.fn == client.FnDecrypt {
		return xor(data), nil
	}
	return nil, nil
}

func (o *fakeOp) FinishIV(ctx context.Context, sig []byte) ([]byte, []byte, error) {
	out, err := o.Finish(ctx, sig)
	return out, nil, err
}

func (o *fakeOp) Finish(_ context.Context, sig []byte) ([]byte, error) {
	o.done = true
	switch o.fn {
	case client.FnSign:
		return fakeSig(o.key, o.data), nil
	case client.FnVerify:
		if !bytes.Equal(sig, fakeSig(o.key, o.data)) {
			return nil, refuse(ck.CKR_SIGNATURE_INVALID)
		}
		return nil, nil
	case client.FnDigest:
		h := sha256.Sum256(o.data)
		return h[:], nil
	}
	return []byte{}, nil
}

func (o *fakeOp) Abort(context.Context) error {
	o.done = true
	return nil
}

var errDialFailed = errors.New("fake: dial failed")

func (s *fakeSession) CopyObject(_ context.Context, src client.ObjectID, tmpl []client.Attribute, _ ...client.CreateOption) (client.ObjectID, error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	orig, ok := c.objects[src]
	if !ok {
		return 0, &client.Error{RV: ck.CKR_OBJECT_HANDLE_INVALID}
	}
	attrs := make(map[ck.AttributeType][]byte, len(orig))
	for t, v := range orig {
		attrs[t] = v
	}
	for _, a := range tmpl {
		attrs[a.Type] = bytes.Clone(a.Value)
	}
	c.nextID++
	c.objects[c.nextID] = attrs
	return c.nextID, nil
}
