package cryptoki

import (
	"context"
	"slices"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
)

// objectRef is what an object handle names.
type objectRef struct {
	slot    *slot
	id      client.ObjectID
	creator SessionHandle // the session that created this session object; 0 otherwise
	shape   *keyShape     // class and key type, once known (keycheck.go)
}

type objectKey struct {
	slot SlotID
	id   client.ObjectID
}

// handleFor returns the handle of object id of slot s, making one if the
// object is new to the Module. creator is set for session objects made here.
func (m *Module) handleFor(s *slot, id client.ObjectID, creator SessionHandle) ObjectHandle {
	k := objectKey{s.id, id}
	m.mu.RLock()
	oh, ok := m.byID[k]
	m.mu.RUnlock()
	if ok {
		return oh
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if oh, ok := m.byID[k]; ok {
		return oh
	}
	oh = ObjectHandle(m.cfg.Handles.next())
	m.byID[k] = oh
	m.objects[oh] = objectRef{slot: s, id: id, creator: creator}
	return oh
}

// forget drops a handle; it is never given out again.
func (m *Module) forget(oh ObjectHandle) (objectRef, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ref, ok := m.objects[oh]
	if ok {
		delete(m.objects, oh)
		delete(m.byID, objectKey{ref.slot.id, ref.id})
	}
	return ref, ok
}

// forgetSessionObjects drops the handles of the session objects of slot s
// (they went with its client session).
func (m *Module) forgetSessionObjects(s *slot) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for oh, ref := range m.objects {
		if ref.slot == s && ref.creator != 0 {
			delete(m.objects, oh)
			delete(m.byID, objectKey{s.id, ref.id})
		}
	}
}

// object resolves a handle used in session ss.
func (m *Module) object(ss *session, oh ObjectHandle, invalid ck.RV) (client.ObjectID, ck.RV) {
	m.mu.RLock()
	ref, ok := m.objects[oh]
	m.mu.RUnlock()
	if !ok || ref.slot != ss.slot {
		return 0, invalid
	}
	return ref.id, ck.CKR_OK
}

// isToken reports whether a template makes a token object (PKCS#11's
// default is a session object).
func isToken(tmpl []client.Attribute) bool {
	for _, a := range tmpl {
		if a.Type == ck.CKA_TOKEN {
			return len(a.Value) > 0 && a.Value[0] != 0
		}
	}
	return false
}

// creating checks that ss may create the objects of the templates and
// returns its client session.
func (m *Module) creating(h SessionHandle, tmpls ...[]client.Attribute) (*session, Session, ck.RV) {
	ss, rv := m.session(h)
	if rv != ck.CKR_OK {
		return nil, nil, rv
	}
	for _, t := range tmpls {
		if isToken(t) && !ss.rw {
			return nil, nil, ck.CKR_SESSION_READ_ONLY
		}
	}
	cs, rv := ss.client()
	if rv != ck.CKR_OK {
		return nil, nil, rv
	}
	return ss, cs, ck.CKR_OK
}

// created registers a new object of ss and returns its handle.
func (m *Module) created(ss *session, id client.ObjectID, tmpl []client.Attribute) ObjectHandle {
	if isToken(tmpl) {
		return m.handleFor(ss.slot, id, 0)
	}
	oh := m.handleFor(ss.slot, id, ss.h)
	ss.mu.Lock()
	ss.objects = append(ss.objects, oh)
	ss.mu.Unlock()
	return oh
}

// CreateObject answers C_CreateObject.
func (m *Module) CreateObject(ctx context.Context, h SessionHandle, tmpl []client.Attribute) (ObjectHandle, ck.RV) {
	ss, cs, rv := m.creating(h, tmpl)
	if rv != ck.CKR_OK {
		return 0, rv
	}
	id, err := cs.CreateObject(ctx, tmpl)
	if err != nil {
		return 0, m.code("create object", err)
	}
	return m.created(ss, id, tmpl), ck.CKR_OK
}

// CopyObject answers C_CopyObject. The copy is a token object if the
// template says CKA_TOKEN true, or says nothing and the original is one;
// a read-only session makes none (CKR_SESSION_READ_ONLY). What the template
// may change, and who may copy, the HSM decides.
func (m *Module) CopyObject(ctx context.Context, h SessionHandle, oh ObjectHandle, tmpl []client.Attribute) (ObjectHandle, ck.RV) {
	ss, rv := m.session(h)
	if rv != ck.CKR_OK {
		return 0, rv
	}
	cs, rv := ss.client()
	if rv != ck.CKR_OK {
		return 0, rv
	}
	id, rv := m.object(ss, oh, ck.CKR_OBJECT_HANDLE_INVALID)
	if rv != ck.CKR_OK {
		return 0, rv
	}
	if !slices.ContainsFunc(tmpl, func(a client.Attribute) bool { return a.Type == ck.CKA_TOKEN }) {
		v, err := cs.GetAttributes(ctx, id, []ck.AttributeType{ck.CKA_TOKEN})
		if err != nil {
			return 0, m.code("get attributes", err)
		}
		if len(v) != 1 || len(v[0].Value) != 1 {
			m.log.Error("copy object: the HSM did not answer CKA_TOKEN of the original")
			return 0, ck.CKR_DEVICE_ERROR
		}
		tmpl = append(slices.Clone(tmpl), client.Bool(ck.CKA_TOKEN, v[0].Value[0] != 0))
	}
	if isToken(tmpl) && !ss.rw {
		return 0, ck.CKR_SESSION_READ_ONLY
	}
	nid, err := cs.CopyObject(ctx, id, tmpl)
	if err != nil {
		return 0, m.code("copy object", err)
	}
	return m.created(ss, nid, tmpl), ck.CKR_OK
}

// writable checks that ss may change or destroy object id: a token object
// needs a read/write session.
func (m *Module) writable(ctx context.Context, ss *session, cs Session, id client.ObjectID) ck.RV {
	if ss.rw {
		return ck.CKR_OK
	}
	v, err := cs.GetAttributes(ctx, id, []ck.AttributeType{ck.CKA_TOKEN})
	if err != nil {
		return m.code("get attributes", err)
	}
	if len(v) == 1 && len(v[0].Value) > 0 && v[0].Value[0] != 0 {
		return ck.CKR_SESSION_READ_ONLY
	}
	return ck.CKR_OK
}

// DestroyObject answers C_DestroyObject.
func (m *Module) DestroyObject(ctx context.Context, h SessionHandle, oh ObjectHandle) ck.RV {
	ss, rv := m.session(h)
	if rv != ck.CKR_OK {
		return rv
	}
	cs, rv := ss.client()
	if rv != ck.CKR_OK {
		return rv
	}
	id, rv := m.object(ss, oh, ck.CKR_OBJECT_HANDLE_INVALID)
	if rv != ck.CKR_OK {
		return rv
	}
	if rv := m.writable(ctx, ss, cs, id); rv != ck.CKR_OK {
		return rv
	}
	if err := cs.DestroyObject(ctx, id); err != nil {
		return m.code("destroy object", err)
	}
	m.forget(oh)
	return ck.CKR_OK
}

// AttributeRequest is one CK_ATTRIBUTE of C_GetAttributeValue: Query when
// pValue is NULL, else Buf is the caller's buffer. Len is set to the value's
// length, or to Unavailable.
type AttributeRequest struct {
	Type  ck.AttributeType
	Query bool
	Buf   []byte
	Len   uint
}

// GetAttributeValue answers C_GetAttributeValue with PKCS#11's rules: every
// attribute is answered; a sensitive or unextractable one, an unknown type
// and a too-small buffer get Len Unavailable and make the call return
// CKR_ATTRIBUTE_SENSITIVE, CKR_ATTRIBUTE_TYPE_INVALID or
// CKR_BUFFER_TOO_SMALL (the first met).
func (m *Module) GetAttributeValue(ctx context.Context, h SessionHandle, oh ObjectHandle, reqs []AttributeRequest) ck.RV {
	ss, rv := m.session(h)
	if rv != ck.CKR_OK {
		return rv
	}
	cs, rv := ss.client()
	if rv != ck.CKR_OK {
		return rv
	}
	id, rv := m.object(ss, oh, ck.CKR_OBJECT_HANDLE_INVALID)
	if rv != ck.CKR_OK {
		return rv
	}
	types := make([]ck.AttributeType, len(reqs))
	for i, r := range reqs {
		types[i] = r.Type
	}
	vals, err := cs.GetAttributes(ctx, id, types)
	if err != nil {
		return m.code("get attributes", err)
	}
	if len(vals) != len(reqs) {
		m.log.Error("get attributes: the HSM answered a different number of attributes", "asked", len(reqs), "got", len(vals))
		return ck.CKR_DEVICE_ERROR
	}
	rv = ck.CKR_OK
	fail := func(r ck.RV) {
		if rv == ck.CKR_OK {
			rv = r
		}
	}
	for i := range reqs {
		r, v := &reqs[i], vals[i]
		switch {
		case v.RV != ck.CKR_OK:
			r.Len = Unavailable
			fail(v.RV)
		case r.Query:
			r.Len = uint(len(v.Value))
		case len(r.Buf) < len(v.Value):
			r.Len = Unavailable
			fail(ck.CKR_BUFFER_TOO_SMALL)
		default:
			r.Len = uint(copy(r.Buf, v.Value))
		}
	}
	return rv
}

// SetAttributeValue answers C_SetAttributeValue.
func (m *Module) SetAttributeValue(ctx context.Context, h SessionHandle, oh ObjectHandle, tmpl []client.Attribute) ck.RV {
	ss, rv := m.session(h)
	if rv != ck.CKR_OK {
		return rv
	}
	cs, rv := ss.client()
	if rv != ck.CKR_OK {
		return rv
	}
	id, rv := m.object(ss, oh, ck.CKR_OBJECT_HANDLE_INVALID)
	if rv != ck.CKR_OK {
		return rv
	}
	if rv := m.writable(ctx, ss, cs, id); rv != ck.CKR_OK {
		return rv
	}
	if isToken(tmpl) && !ss.rw {
		return ck.CKR_SESSION_READ_ONLY
	}
	if err := cs.SetAttributes(ctx, id, tmpl); err != nil {
		return m.code("set attributes", err)
	}
	return ck.CKR_OK
}

// findState is an active search: the handles found and how many were given.
type findState struct {
	found []ObjectHandle
	next  int
}

// FindObjectsInit answers C_FindObjectsInit. The search is done here; a
// session that is not logged in finds nothing (every Coffer object needs a
// login to be seen).
func (m *Module) FindObjectsInit(ctx context.Context, h SessionHandle, tmpl []client.Attribute) ck.RV {
	ss, rv := m.session(h)
	if rv != ck.CKR_OK {
		return rv
	}
	ss.mu.Lock()
	active := ss.find != nil
	ss.mu.Unlock()
	if active {
		return ck.CKR_OPERATION_ACTIVE
	}
	st := &findState{}
	if cs, _, _ := ss.slot.login(); cs != nil {
		ids, err := cs.FindObjects(ctx, tmpl)
		if err != nil {
			return m.code("find objects", err)
		}
		st.found = make([]ObjectHandle, len(ids))
		for i, id := range ids {
			st.found[i] = m.handleFor(ss.slot, id, 0)
		}
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.find != nil {
		return ck.CKR_OPERATION_ACTIVE
	}
	ss.find = st
	return ck.CKR_OK
}

// FindObjects answers C_FindObjects: it fills out with the next handles.
func (m *Module) FindObjects(h SessionHandle, out []ObjectHandle) (int, ck.RV) {
	ss, rv := m.session(h)
	if rv != ck.CKR_OK {
		return 0, rv
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.find == nil {
		return 0, ck.CKR_OPERATION_NOT_INITIALIZED
	}
	n := copy(out, ss.find.found[ss.find.next:])
	ss.find.next += n
	return n, ck.CKR_OK
}

// FindObjectsFinal answers C_FindObjectsFinal.
func (m *Module) FindObjectsFinal(h SessionHandle) ck.RV {
	ss, rv := m.session(h)
	if rv != ck.CKR_OK {
		return rv
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.find == nil {
		return ck.CKR_OPERATION_NOT_INITIALIZED
	}
	ss.find = nil
	return ck.CKR_OK
}

// code logs a failed request and returns its PKCS#11 code.
func (m *Module) code(op string, err error) ck.RV {
	rv := client.Code(err)
	switch rv {
	case ck.CKR_GENERAL_ERROR, ck.CKR_DEVICE_ERROR, ck.CKR_FUNCTION_CANCELED:
		m.log.Error(op, "rv", rv, "err", err)
	default:
		m.log.Debug(op, "rv", rv, "err", err)
	}
	return rv
}
