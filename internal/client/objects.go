package client

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"slices"
	"sync"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/proto/hsmv1"
)

// CreateOption adjusts one creation call.
type CreateOption func(*createOptions)

type createOptions struct{ minNodes int }

// MinNodes asks that the new object be held by at least n HSMs before the
// call succeeds. The larger of n and Config.CreateObjectMinimumNodes wins
// (seed 002).
func MinNodes(n int) CreateOption { return func(o *createOptions) { o.minNodes = n } }

func (s *Session) minNodes(opts []CreateOption) uint32 {
	o := createOptions{minNodes: s.c.cfg.CreateObjectMinimumNodes}
	for _, f := range opts {
		f(&o)
	}
	return uint32(max(o.minNodes, s.c.cfg.CreateObjectMinimumNodes, 1))
}

// created is what a creation request answered.
type created struct {
	ids      []ObjectID
	storedOn []uint32
}

// maxCreationSends bounds the sends of one creation; the HSMs refuse more
// (hsm.MaxCreationAttempts).
const maxCreationSends = 8

// create sends a creation request and records where the new objects live:
// token objects in the fresh-object table, session objects in the Session.
// tokens says, per object created, whether it is a token object; uses are
// the existing objects the request uses (routed to as usual).
//
// A creation of token objects only carries an idempotency token (random,
// one per call) and its attempt number, and is resent to another HSM after
// a transport failure: of the objects several sends made, the latest send's
// win on every HSM and the others are destroyed, so a resend never leaves a
// second key (docs/design.md). Only the answer of the latest send is taken,
// and none is sent after it. If the call fails after a send reached an HSM,
// its outcome is unknown (an *UnknownOutcomeError). A creation with a session object is never resent
// once it may have reached an HSM: its object would live in a node session
// that is gone.
func (s *Session) create(ctx context.Context, op string, tokens []bool, uses []ObjectID, opts []CreateOption,
	send func(ctx context.Context, m *member, sid uint64, minNodes uint32, idem *hsmv1.Idempotency) (created, error)) ([]ObjectID, error) {
	if n := len(tokens) - countTrue(tokens); n > 0 {
		if err := s.reserveSessionObject(n); err != nil {
			return nil, fmt.Errorf("client: %s: %w", op, err)
		}
		// Session objects of one session live together, where the first was made.
		if _, pinned, _ := s.sessionObjectHSM(uses); !pinned {
			if id, ok := s.liveSessionObject(); ok {
				uses = append(slices.Clone(uses), id)
			}
		}
	}
	minNodes := s.minNodes(opts)
	cl := call{op: op, objs: uses}
	var token []byte
	if countTrue(tokens) == len(tokens) {
		cl.resend, cl.maxSends = true, maxCreationSends
		token = []byte(crand.Text())
	}
	var out created
	var sid, epoch uint64
	var attempt uint32
	m, err := s.c.invoke(ctx, s, cl, func(ctx context.Context, m *member, id uint64) (err error) {
		sid, epoch = id, m.epoch.Load()
		if cur := s.node(m.idx).cur.Load(); cur != nil && cur.id == id {
			epoch = cur.epoch
		}
		var idem *hsmv1.Idempotency
		if token != nil {
			attempt++
			idem = &hsmv1.Idempotency{Token: token, Attempt: attempt}
		}
		out, err = send(ctx, m, id, minNodes, idem)
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(out.ids) != len(tokens) {
		return nil, fmt.Errorf("client: %s: HSM %s answered %d objects, want %d", op, m.addr, len(out.ids), len(tokens))
	}
	holders := s.c.maskOf(out.storedOn) | m.bit()
	for i, id := range out.ids {
		if tokens[i] {
			s.c.fresh.add(id, holders, s.c.all.Load())
		} else {
			s.addSessionObject(id, m, sid, epoch)
		}
	}
	return out.ids, nil
}

func countTrue(b []bool) int {
	n := 0
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}

func createResponse(r *hsmv1.CreateResponse, err error) (created, error) {
	if err != nil {
		return created{}, err
	}
	return created{ids: []ObjectID{ObjectID(r.GetObject())}, storedOn: r.GetStoredOn()}, nil
}

// GenerateKey generates a secret key.
func (s *Session) GenerateKey(ctx context.Context, mech Mechanism, tmpl []Attribute, opts ...CreateOption) (ObjectID, error) {
	ids, err := s.create(ctx, "generate key", []bool{isToken(tmpl)}, nil, opts,
		func(ctx context.Context, m *member, sid uint64, n uint32, idem *hsmv1.Idempotency) (created, error) {
			return createResponse(m.rpc.GenerateKey(ctx, &hsmv1.GenerateKeyRequest{
				Session: sid, Mechanism: mech.wire(), Template: wireTemplate(tmpl), MinNodes: n, Idempotency: idem}))
		})
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

// GenerateKeyPair generates a key pair and returns its public and private
// key.
func (s *Session) GenerateKeyPair(ctx context.Context, mech Mechanism, public, private []Attribute, opts ...CreateOption) (pub, priv ObjectID, err error) {
	ids, err := s.create(ctx, "generate key pair", []bool{isToken(public), isToken(private)}, nil, opts,
		func(ctx context.Context, m *member, sid uint64, n uint32, idem *hsmv1.Idempotency) (created, error) {
			r, err := m.rpc.GenerateKeyPair(ctx, &hsmv1.GenerateKeyPairRequest{
				Session: sid, Mechanism: mech.wire(), PublicTemplate: wireTemplate(public),
				PrivateTemplate: wireTemplate(private), MinNodes: n, Idempotency: idem})
			if err != nil {
				return created{}, err
			}
			return created{ids: []ObjectID{ObjectID(r.GetPublicKey()), ObjectID(r.GetPrivateKey())}, storedOn: r.GetStoredOn()}, nil
		})
	if err != nil {
		return 0, 0, err
	}
	return ids[0], ids[1], nil
}

// CreateObject creates an object from a template (C_CreateObject).
func (s *Session) CreateObject(ctx context.Context, tmpl []Attribute, opts ...CreateOption) (ObjectID, error) {
	ids, err := s.create(ctx, "create object", []bool{isToken(tmpl)}, nil, opts,
		func(ctx context.Context, m *member, sid uint64, n uint32, idem *hsmv1.Idempotency) (created, error) {
			return createResponse(m.rpc.CreateObject(ctx, &hsmv1.CreateObjectRequest{
				Session: sid, Template: wireTemplate(tmpl), MinNodes: n, Idempotency: idem}))
		})
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

// CopyObject copies object src (C_CopyObject): the new object has the
// original's attributes and key material, changed as tmpl says where the
// HSM allows it. It is a token object if tmpl says CKA_TOKEN true, or says
// nothing and src is one; then it is made, synchronized and resent like any
// new token object. A session object src is copied on the HSM that holds it.
func (s *Session) CopyObject(ctx context.Context, src ObjectID, tmpl []Attribute, opts ...CreateOption) (ObjectID, error) {
	if !hasAttr(tmpl, ck.CKA_TOKEN) {
		v, err := s.GetAttributes(ctx, src, []ck.AttributeType{ck.CKA_TOKEN})
		if err != nil {
			return 0, err
		}
		if len(v) != 1 || v[0].RV != ck.CKR_OK || len(v[0].Value) != 1 {
			return 0, &Error{RV: ck.CKR_DEVICE_ERROR, Msg: "copy object: the HSM did not answer CKA_TOKEN of the original"}
		}
		// Said explicitly, so that HSM and client agree on what is made.
		tmpl = append(slices.Clone(tmpl), Bool(ck.CKA_TOKEN, v[0].Value[0] != 0))
	}
	ids, err := s.create(ctx, "copy object", []bool{isToken(tmpl)}, []ObjectID{src}, opts,
		func(ctx context.Context, m *member, sid uint64, n uint32, idem *hsmv1.Idempotency) (created, error) {
			return createResponse(m.rpc.CopyObject(ctx, &hsmv1.CopyObjectRequest{
				Session: sid, Object: uint64(src), Template: wireTemplate(tmpl), MinNodes: n, Idempotency: idem}))
		})
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

func hasAttr(tmpl []Attribute, t ck.AttributeType) bool {
	return slices.ContainsFunc(tmpl, func(a Attribute) bool { return a.Type == t })
}

// ImportKey imports a key given in the clear (PKCS8 for a private key, SPKI
// for a public key).
func (s *Session) ImportKey(ctx context.Context, format KeyFormat, der []byte, tmpl []Attribute, opts ...CreateOption) (ObjectID, error) {
	req := &hsmv1.ImportKeyRequest{Template: wireTemplate(tmpl)}
	switch format {
	case PKCS8:
		req.Key = &hsmv1.ImportKeyRequest_Pkcs8{Pkcs8: der}
	case SPKI:
		req.Key = &hsmv1.ImportKeyRequest_Spki{Spki: der}
	default:
		return 0, &Error{RV: ck.CKR_ARGUMENTS_BAD, Msg: fmt.Sprintf("key format %d", format)}
	}
	ids, err := s.create(ctx, "import key", []bool{isToken(tmpl)}, nil, opts,
		func(ctx context.Context, m *member, sid uint64, n uint32, idem *hsmv1.Idempotency) (created, error) {
			r := &hsmv1.ImportKeyRequest{Session: sid, Key: req.Key, Template: req.Template, MinNodes: n, Idempotency: idem}
			return createResponse(m.rpc.ImportKey(ctx, r))
		})
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

// UnwrapKey unwraps a key with unwrappingKey.
func (s *Session) UnwrapKey(ctx context.Context, unwrappingKey ObjectID, mech Mechanism, wrapped []byte, tmpl []Attribute, opts ...CreateOption) (ObjectID, error) {
	ids, err := s.create(ctx, "unwrap key", []bool{isToken(tmpl)}, []ObjectID{unwrappingKey}, opts,
		func(ctx context.Context, m *member, sid uint64, n uint32, idem *hsmv1.Idempotency) (created, error) {
			return createResponse(m.rpc.UnwrapKey(ctx, &hsmv1.UnwrapKeyRequest{
				Session: sid, UnwrappingKey: uint64(unwrappingKey), Mechanism: mech.wire(), Wrapped: wrapped,
				Template: wireTemplate(tmpl), MinNodes: n, Idempotency: idem}))
		})
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

// DeriveKey derives a key from baseKey.
func (s *Session) DeriveKey(ctx context.Context, baseKey ObjectID, mech Mechanism, tmpl []Attribute, opts ...CreateOption) (ObjectID, error) {
	ids, err := s.create(ctx, "derive key", []bool{isToken(tmpl)}, []ObjectID{baseKey}, opts,
		func(ctx context.Context, m *member, sid uint64, n uint32, idem *hsmv1.Idempotency) (created, error) {
			return createResponse(m.rpc.DeriveKey(ctx, &hsmv1.DeriveKeyRequest{
				Session: sid, BaseKey: uint64(baseKey), Mechanism: mech.wire(), Template: wireTemplate(tmpl), MinNodes: n, Idempotency: idem}))
		})
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

// FindObjects lists the objects matching tmpl that the user may see. It asks
// one HSM, and also the HSMs holding this client's fresh objects or this
// Session's session objects that the first may not have yet, so a new object
// is found at once.
func (s *Session) FindObjects(ctx context.Context, tmpl []Attribute) ([]ObjectID, error) {
	wire := wireTemplate(tmpl)
	find := func(out *[]ObjectID) requestFunc {
		return func(ctx context.Context, m *member, sid uint64) error {
			r, err := m.rpc.FindObjects(ctx, &hsmv1.FindObjectsRequest{Session: sid, Template: wire})
			if err != nil {
				return err
			}
			*out = make([]ObjectID, len(r.GetObjects()))
			for i, id := range r.GetObjects() {
				(*out)[i] = ObjectID(id)
			}
			return nil
		}
	}
	var ids []ObjectID
	m, err := s.c.invoke(ctx, s, call{op: "find objects", retry: true}, find(&ids))
	if err != nil {
		return nil, err
	}
	s.c.fresh.seen(ids, m.bit(), s.c.all.Load())

	others := (s.c.fresh.elsewhere(m.bit()) | s.sessionObjectsElsewhere(m)) &^ m.bit()
	if others == 0 {
		return ids, nil
	}
	results := make([][]ObjectID, s.c.nslots())
	var wg sync.WaitGroup
	for _, o := range s.c.live() {
		if others&o.bit() == 0 || !o.up.Load() {
			continue
		}
		wg.Go(func() {
			// Best effort: the first answer stands if another HSM fails.
			if _, err := s.c.invoke(ctx, s, call{op: "find objects", only: o, onlyWhat: "fresh objects"}, find(&results[o.idx])); err == nil {
				s.c.fresh.seen(results[o.idx], o.bit(), s.c.all.Load())
			}
		})
	}
	wg.Wait()
	seen := make(map[ObjectID]bool, len(ids))
	for _, id := range ids {
		seen[id] = true
	}
	for _, r := range results {
		for _, id := range r {
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	return ids, nil
}

// sessionObjectsElsewhere is the mask of the HSMs other than m that hold
// session objects of s.
func (s *Session) sessionObjectsElsewhere(m *member) uint64 {
	s.objMu.Lock()
	defer s.objMu.Unlock()
	var mask uint64
	for _, o := range s.objects {
		if o.m != m {
			mask |= o.m.bit()
		}
	}
	return mask
}

// ObjectInfo describes an object.
func (s *Session) ObjectInfo(ctx context.Context, id ObjectID) (ObjectInfo, error) {
	var r *hsmv1.ObjectInfoResponse
	_, err := s.c.invoke(ctx, s, call{op: "object info", retry: true, objs: []ObjectID{id}}, func(ctx context.Context, m *member, sid uint64) (err error) {
		r, err = m.rpc.ObjectInfo(ctx, &hsmv1.ObjectRequest{Session: sid, Object: uint64(id)})
		return err
	})
	if err != nil {
		return ObjectInfo{}, err
	}
	return ObjectInfo{
		ID: ObjectID(r.GetObject()), Class: ck.ObjectClass(r.GetClass()), KeyType: ck.KeyType(r.GetKeyType()),
		Label: r.GetLabel(), Token: r.GetToken(), Owner: r.GetOwner(), SharedWith: r.GetSharedWith(),
	}, nil
}

// GetAttributes reads attributes of an object; each value carries the
// return value that says why it is missing, if it is.
func (s *Session) GetAttributes(ctx context.Context, id ObjectID, types []ck.AttributeType) ([]AttributeValue, error) {
	wt := make([]uint64, len(types))
	for i, t := range types {
		wt[i] = uint64(t)
	}
	var r *hsmv1.GetAttributesResponse
	_, err := s.c.invoke(ctx, s, call{op: "get attributes", retry: true, objs: []ObjectID{id}}, func(ctx context.Context, m *member, sid uint64) (err error) {
		r, err = m.rpc.GetAttributes(ctx, &hsmv1.GetAttributesRequest{Session: sid, Object: uint64(id), Types: wt})
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]AttributeValue, len(r.GetValues()))
	for i, v := range r.GetValues() {
		out[i] = AttributeValue{Type: ck.AttributeType(v.GetType()), Value: v.GetValue(), RV: ck.RV(v.GetRv())}
	}
	return out, nil
}

// change sends a request that modifies object id and, on success, routes
// later operations on it to the HSM that made the change until replication
// has carried it (read your writes).
func (s *Session) change(ctx context.Context, op string, id ObjectID, fn requestFunc) error {
	m, err := s.c.invoke(ctx, s, call{op: op, objs: []ObjectID{id}}, fn)
	if err != nil {
		return err
	}
	if _, isSession, _ := s.sessionObjectHSM([]ObjectID{id}); !isSession {
		s.c.fresh.add(id, m.bit(), s.c.all.Load())
	}
	return nil
}

// SetAttributes changes attributes of an object.
func (s *Session) SetAttributes(ctx context.Context, id ObjectID, tmpl []Attribute) error {
	return s.change(ctx, "set attributes", id, func(ctx context.Context, m *member, sid uint64) error {
		_, err := m.rpc.SetAttributes(ctx, &hsmv1.SetAttributesRequest{Session: sid, Object: uint64(id), Template: wireTemplate(tmpl)})
		return err
	})
}

// ShareKey shares a key the user owns with another crypto user.
func (s *Session) ShareKey(ctx context.Context, id ObjectID, username string) error {
	return s.change(ctx, "share key", id, func(ctx context.Context, m *member, sid uint64) error {
		_, err := m.rpc.ShareKey(ctx, &hsmv1.ShareKeyRequest{Session: sid, Object: uint64(id), Username: username})
		return err
	})
}

// UnshareKey stops sharing a key with a user.
func (s *Session) UnshareKey(ctx context.Context, id ObjectID, username string) error {
	return s.change(ctx, "unshare key", id, func(ctx context.Context, m *member, sid uint64) error {
		_, err := m.rpc.UnshareKey(ctx, &hsmv1.ShareKeyRequest{Session: sid, Object: uint64(id), Username: username})
		return err
	})
}

// DestroyObject destroys an object.
func (s *Session) DestroyObject(ctx context.Context, id ObjectID) error {
	_, err := s.c.invoke(ctx, s, call{op: "destroy object", objs: []ObjectID{id}}, func(ctx context.Context, m *member, sid uint64) error {
		_, err := m.rpc.DestroyObject(ctx, &hsmv1.ObjectRequest{Session: sid, Object: uint64(id)})
		return err
	})
	if err != nil {
		return err
	}
	s.c.fresh.forget(id)
	s.dropSessionObject(id)
	return nil
}

// ExportKey exports a key in the clear, if its attributes allow. It is not
// resent after a transport failure (an audited, sensitive operation).
func (s *Session) ExportKey(ctx context.Context, id ObjectID) ([]byte, error) {
	return s.bytes(ctx, call{op: "export key", objs: []ObjectID{id}}, func(ctx context.Context, m *member, sid uint64) (*hsmv1.BytesResponse, error) {
		return m.rpc.ExportKey(ctx, &hsmv1.ObjectRequest{Session: sid, Object: uint64(id)})
	})
}

// ExportPublicKey exports a public key (or a private key's public part) as
// SubjectPublicKeyInfo DER.
func (s *Session) ExportPublicKey(ctx context.Context, id ObjectID) ([]byte, error) {
	return s.bytes(ctx, call{op: "export public key", retry: true, objs: []ObjectID{id}}, func(ctx context.Context, m *member, sid uint64) (*hsmv1.BytesResponse, error) {
		return m.rpc.ExportPublicKey(ctx, &hsmv1.ObjectRequest{Session: sid, Object: uint64(id)})
	})
}

// bytes invokes a request answered with a BytesResponse.
func (s *Session) bytes(ctx context.Context, cl call, send func(context.Context, *member, uint64) (*hsmv1.BytesResponse, error)) ([]byte, error) {
	var out []byte
	_, err := s.c.invoke(ctx, s, cl, func(ctx context.Context, m *member, sid uint64) error {
		r, err := send(ctx, m, sid)
		out = r.GetData()
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
