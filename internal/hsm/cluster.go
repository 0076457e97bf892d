package hsm

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
)

// clusterSettings are the settings every HSM of a cluster shares: whether the
// pre-admin has activated it, and the quorum value M of each service. They
// are one RecordSetting record, clusterSettingsID.
type clusterSettings struct {
	Activated        bool
	QuorumUserMgmt   int // M for QuorumUserManagement, 1..maxQuorum
	QuorumQuorumMgmt int // M for QuorumQuorumManagement, 1..maxQuorum
}

const clusterSettingsID = "cluster"

// clusterFormat is the first byte of the settings record. Format 1:
//
//	1 | activated u8 (0 or 1) | M user-management uvarint | M quorum-management uvarint
const clusterFormat = 1

var errSettingsRecord = errors.New("malformed cluster settings record")

func defaultClusterSettings() clusterSettings {
	return clusterSettings{QuorumUserMgmt: 1, QuorumQuorumMgmt: 1}
}

func (c clusterSettings) marshal() []byte {
	w := fieldWriter{b: []byte{clusterFormat}}
	w.bool(c.Activated)
	w.uvarint(uint64(c.QuorumUserMgmt))
	w.uvarint(uint64(c.QuorumQuorumMgmt))
	return w.b
}

// unmarshal replaces c with the settings in b; on error c is unchanged.
func (c *clusterSettings) unmarshal(b []byte) error {
	if len(b) == 0 || b[0] != clusterFormat {
		return fmt.Errorf("%w: unknown format", errSettingsRecord)
	}
	r := fieldReader{b: b[1:]}
	var n clusterSettings
	n.Activated = r.bool()
	n.QuorumUserMgmt = r.int(maxQuorum)
	n.QuorumQuorumMgmt = r.int(maxQuorum)
	if err := r.done(); err != nil {
		return fmt.Errorf("%w: %w", errSettingsRecord, err)
	}
	if n.QuorumUserMgmt < 1 || n.QuorumQuorumMgmt < 1 {
		return fmt.Errorf("%w: quorum value 0", errSettingsRecord)
	}
	*c = n
	return nil
}

// quorum returns M for service (0 for an invalid service).
func (c clusterSettings) quorum(s QuorumService) int {
	switch s {
	case QuorumUserManagement:
		return c.QuorumUserMgmt
	case QuorumQuorumManagement:
		return c.QuorumQuorumMgmt
	}
	return 0
}

func (c *clusterSettings) setQuorum(s QuorumService, m int) {
	switch s {
	case QuorumUserManagement:
		c.QuorumUserMgmt = m
	case QuorumQuorumManagement:
		c.QuorumQuorumMgmt = m
	}
}

// Activated reports whether the pre-admin has activated the cluster.
func (d *Device) Activated() bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.cluster.Activated
}

func (d *Device) settings() clusterSettings {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.cluster
}

// putSettings persists c, then publishes it. The caller holds d.writes.lockAll.
func (d *Device) putSettings(ctx context.Context, c clusterSettings) error {
	if err := d.cfg.Store.Put(ctx, RecordSetting, clusterSettingsID, c.marshal()); err != nil {
		return fmt.Errorf("%w: store settings: %w", ErrDevice, err)
	}
	d.mu.Lock()
	d.cluster = c
	d.mu.Unlock()
	return nil
}

// Activate ends the cluster's pre-admin state: the session, logged in as the
// pre-admin with the default password, sets its own password and becomes an
// ordinary admin. Until then no other user may log in or be created.
func (d *Device) Activate(ctx context.Context, sid SessionID, newPassword string) error {
	p, err := d.activate(ctx, sid, newPassword)
	return d.finish(ctx, sid, p, "activate", DefaultAdminName, err)
}

func (d *Device) activate(ctx context.Context, sid SessionID, pw string) (*principal, error) {
	_, p, err := d.whoami(sid)
	switch {
	case err != nil:
		return nil, err
	case p == nil:
		return nil, ErrNotLoggedIn
	case p.role != rolePreAdmin:
		return p, fmt.Errorf("%w: only the pre-admin activates the cluster", ErrRoleNotPermitted)
	}
	if err := checkPassword(pw); err != nil {
		return p, err
	}
	if pw == DefaultPreAdminPIN {
		return p, fmt.Errorf("%w: the new password must differ from the default", ErrPinInvalid)
	}
	h, err := d.newPasswordHash(ctx, pw)
	if err != nil {
		return p, err
	}

	defer d.lockUserWrites()()
	u := d.user(p.name)
	if u == nil || u.Role != rolePreAdmin {
		return p, fmt.Errorf("%w: already activated", ErrRoleNotPermitted)
	}
	// Settings first: a crash between the two writes leaves an activated
	// cluster whose pre-admin can still log in and activate again, never a
	// cluster nobody can log in to.
	c := d.settings()
	c.Activated = true
	if err := d.putSettings(ctx, c); err != nil {
		return p, err
	}
	n := u.clone()
	now := d.cfg.Now().UnixNano()
	n.Role, n.hash, n.passwordSet = RoleAdmin, h, later(now, u.passwordSet)
	n.clearFailures(now)
	if err := d.putUser(ctx, n); err != nil {
		return p, err
	}
	admin := &principal{name: p.name, role: RoleAdmin}
	for _, s := range d.allSessions() {
		s.mu.Lock()
		if s.who != nil && s.who.name == p.name && s.who.role == rolePreAdmin {
			s.who = admin
		}
		s.mu.Unlock()
	}
	return admin, nil
}

// allSessions returns the open sessions, for changes to their logins.
func (d *Device) allSessions() []*session {
	d.sessMu.RLock()
	defer d.sessMu.RUnlock()
	out := make([]*session, 0, len(d.sessions))
	for _, s := range d.sessions {
		out = append(out, s)
	}
	return out
}

// fieldWriter and fieldReader encode the fields of the device's small
// versioned records (users, settings).
type fieldWriter struct{ b []byte }

func (w *fieldWriter) uvarint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *fieldWriter) bytes(v []byte)   { w.uvarint(uint64(len(v))); w.b = append(w.b, v...) }
func (w *fieldWriter) bool(v bool) {
	if v {
		w.b = append(w.b, 1)
	} else {
		w.b = append(w.b, 0)
	}
}

// fieldReader reads strictly: canonical varints, lengths within bounds, bools
// 0 or 1, nothing left over. The first error sticks; done reports it.
type fieldReader struct {
	b   []byte
	err error
}

func (r *fieldReader) fail(msg string) {
	if r.err == nil {
		r.err = errors.New(msg)
	}
}

func (r *fieldReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || n != len(binary.AppendUvarint(nil, v)) {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// int reads a uvarint no greater than limit.
func (r *fieldReader) int(limit int) int {
	v := r.uvarint()
	if v > uint64(limit) {
		r.fail("value out of range")
		return 0
	}
	return int(v)
}

func (r *fieldReader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.fail("truncated")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *fieldReader) bool() bool {
	switch r.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	r.fail("bad bool")
	return false
}

// bytes reads a length-prefixed field of at most limit bytes; empty is nil.
func (r *fieldReader) bytes(limit int) []byte {
	n := r.int(limit)
	if r.err != nil || n == 0 {
		return nil
	}
	if n > len(r.b) {
		r.fail("truncated")
		return nil
	}
	v := bytes.Clone(r.b[:n])
	r.b = r.b[n:]
	return v
}

func (r *fieldReader) done() error {
	if r.err == nil && len(r.b) > 0 {
		r.fail("trailing bytes")
	}
	return r.err
}
