package hsm

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Client mutual TLS (CloudHSM's "cluster mtls"): the cluster keeps up to
// MaxTrustAnchors CA certificates whose client certificates its HSMs accept,
// and an enforcement level. At MTLSCluster every client connection must
// present a certificate that chains to one of them. Both are one
// RecordSetting record, mtlsSettingsID, shared by every HSM like the other
// cluster settings; changing them takes an admin (and the quorum-management
// quorum when its value is above 1).

// MTLSLevel is the cluster's client mTLS enforcement level. Values are
// persisted.
type MTLSLevel uint8

const (
	// MTLSNone: a client certificate is optional.
	MTLSNone MTLSLevel = 1
	// MTLSCluster: every client connection must present a certificate
	// issued by a registered trust anchor.
	MTLSCluster MTLSLevel = 2
)

func (l MTLSLevel) String() string {
	switch l {
	case MTLSNone:
		return "none"
	case MTLSCluster:
		return "cluster"
	}
	return "invalid-mtls-level"
}

func (l MTLSLevel) valid() bool { return l == MTLSNone || l == MTLSCluster }

// ParseMTLSLevel reads "none" or "cluster".
func ParseMTLSLevel(s string) (MTLSLevel, error) {
	switch s {
	case "none":
		return MTLSNone, nil
	case "cluster":
		return MTLSCluster, nil
	}
	return 0, &Error{Op: "parse mtls level", Err: fmt.Errorf("%w: mTLS enforcement level %q: want none or cluster", ErrArgumentsBad, s)}
}

// MaxTrustAnchors is how many trust anchors a cluster holds at most, as on
// CloudHSM.
const MaxTrustAnchors = 2

// Bounds of what a client presents and the cluster stores.
const (
	maxAnchorLen   = 16 << 10 // DER bytes of one trust anchor
	maxClientChain = 8        // certificates a client's chain may have
	maxAnchorRef   = 1<<32 - 1
	mtlsSettingsID = "mtls"
	mtlsFormat     = 1
)

// The operations, as the audit log and errors name them.
const (
	opRegisterTA   = "mtls.register-trust-anchor"
	opDeregisterTA = "mtls.deregister-trust-anchor"
	opSetEnforce   = "mtls.set-enforcement"
	opGetEnforce   = "mtls.get-enforcement"
	opVerifyClient = "mtls.verify-client"
)

// TrustAnchor is a registered CA certificate. Ref names it (the CLI shows
// it as 0x01, 0x02, ...); references are never reused.
type TrustAnchor struct {
	Ref         uint32
	Certificate *x509.Certificate // do not modify
}

// ClientTLSPolicy is the cluster's client mTLS settings as one immutable
// snapshot: the enforcement level and the trust anchors. A network server
// reads it at every handshake and, under enforcement, at every request; a
// change replaces the snapshot, so it applies from the next read on.
type ClientTLSPolicy struct {
	level   MTLSLevel
	anchors []TrustAnchor // sorted by Ref
	next    uint32        // the reference of the next anchor registered
	roots   *x509.CertPool
}

func defaultClientTLSPolicy() *ClientTLSPolicy {
	return &ClientTLSPolicy{level: MTLSNone, next: 1, roots: x509.NewCertPool()}
}

// newPolicy builds a snapshot; anchors must be parsed already.
func newPolicy(level MTLSLevel, anchors []TrustAnchor, next uint32) *ClientTLSPolicy {
	p := &ClientTLSPolicy{level: level, anchors: slices.Clone(anchors), next: next, roots: x509.NewCertPool()}
	slices.SortFunc(p.anchors, func(a, b TrustAnchor) int { return cmp.Compare(a.Ref, b.Ref) })
	for _, a := range p.anchors {
		p.roots.AddCert(a.Certificate)
	}
	return p
}

// Level is the enforcement level.
func (p *ClientTLSPolicy) Level() MTLSLevel { return p.level }

// Anchors returns the trust anchors, by reference.
func (p *ClientTLSPolicy) Anchors() []TrustAnchor { return slices.Clone(p.anchors) }

// VerifyClient checks a client's certificate chain as TLS delivers it (leaf
// first; crypto/tls has already checked that the client holds the leaf's
// key): the leaf must chain to a registered trust anchor, be valid at now
// and allow client authentication (or name no extended key usage). A
// refusal wraps ErrClientCertificate.
func (p *ClientTLSPolicy) VerifyClient(chain []*x509.Certificate, now time.Time) error {
	switch {
	case len(chain) == 0:
		return &Error{Op: opVerifyClient, Err: fmt.Errorf("%w: the connection presented no client certificate", ErrClientCertificate)}
	case len(p.anchors) == 0:
		return &Error{Op: opVerifyClient, Err: fmt.Errorf("%w: no trust anchor is registered", ErrClientCertificate)}
	case len(chain) > maxClientChain:
		return &Error{Op: opVerifyClient, Err: fmt.Errorf("%w: a chain of %d certificates, at most %d", ErrClientCertificate, len(chain), maxClientChain)}
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		Roots: p.roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return &Error{Op: opVerifyClient, Err: fmt.Errorf("%w: certificate %q: %w", ErrClientCertificate, chain[0].Subject.String(), err)}
	}
	return nil
}

// marshal encodes the settings record. Format 1, in order:
//
//	1 | level u8 | next reference uvarint | anchor count uvarint |
//	per anchor: reference uvarint | certificate DER (uvarint length, bytes)
func (p *ClientTLSPolicy) marshal() []byte {
	w := fieldWriter{b: []byte{mtlsFormat, byte(p.level)}}
	w.uvarint(uint64(p.next))
	w.uvarint(uint64(len(p.anchors)))
	for _, a := range p.anchors {
		w.uvarint(uint64(a.Ref))
		w.bytes(a.Certificate.Raw)
	}
	return w.b
}

var errMTLSRecord = errors.New("malformed mTLS settings record")

// unmarshalPolicy decodes a settings record. It checks the record's shape,
// not the anchors' key types: those were checked when they were
// registered, and a record must load on every HSM of the cluster.
func unmarshalPolicy(b []byte) (*ClientTLSPolicy, error) {
	if len(b) == 0 || b[0] != mtlsFormat {
		return nil, fmt.Errorf("%w: unknown format", errMTLSRecord)
	}
	r := fieldReader{b: b[1:]}
	level := MTLSLevel(r.byte())
	next := uint32(r.int(maxAnchorRef))
	n := r.int(MaxTrustAnchors)
	var anchors []TrustAnchor
	for range n {
		ref := uint32(r.int(maxAnchorRef))
		der := r.bytes(maxAnchorLen)
		if r.err != nil {
			break
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("%w: anchor %d: %w", errMTLSRecord, ref, err)
		}
		anchors = append(anchors, TrustAnchor{Ref: ref, Certificate: c})
	}
	if err := r.done(); err != nil {
		return nil, fmt.Errorf("%w: %w", errMTLSRecord, err)
	}
	if !level.valid() {
		return nil, fmt.Errorf("%w: level %d", errMTLSRecord, level)
	}
	seen := map[uint32]bool{}
	for _, a := range anchors {
		if a.Ref == 0 || a.Ref >= next || seen[a.Ref] {
			return nil, fmt.Errorf("%w: anchor reference %d (next %d)", errMTLSRecord, a.Ref, next)
		}
		seen[a.Ref] = true
	}
	return newPolicy(level, anchors, next), nil
}

// ClientTLSPolicy returns the current client mTLS settings. It needs no
// session: the network server consults it before any login.
func (d *Device) ClientTLSPolicy() *ClientTLSPolicy {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.mtls
}

// putPolicy persists p, then publishes it. The caller holds d.writes.lockAll.
func (d *Device) putPolicy(ctx context.Context, p *ClientTLSPolicy) error {
	if err := d.cfg.Store.Put(ctx, RecordSetting, mtlsSettingsID, p.marshal()); err != nil {
		return fmt.Errorf("%w: store mTLS settings: %w", ErrDevice, err)
	}
	d.mu.Lock()
	d.mtls = p
	d.mu.Unlock()
	return nil
}

// settingsAdmin is admin for the mTLS settings, saying so when it refuses
// another role.
func (d *Device) settingsAdmin(sid SessionID) (*principal, error) {
	p, err := d.admin(sid)
	if errors.Is(err, ErrRoleNotPermitted) {
		err = fmt.Errorf("%w: %s cannot change the cluster's mTLS settings; an admin can", ErrRoleNotPermitted, p.role)
	}
	return p, err
}

// TrustAnchors lists the registered trust anchors, to anyone (no session).
func (d *Device) TrustAnchors() []TrustAnchor { return d.ClientTLSPolicy().Anchors() }

// RegisterTrustAnchor registers a CA certificate (DER) whose client
// certificates the cluster accepts (admins only; guarded by the
// quorum-management quorum). The certificate must be a CA certificate valid
// now, with an EC P-256, P-384 or P-521 key or an RSA 2048, 3072 or 4096
// key; at most MaxTrustAnchors are registered, each once.
func (d *Device) RegisterTrustAnchor(ctx context.Context, sid SessionID, der []byte, ap Approvals) (TrustAnchor, error) {
	a, p, target, err := d.registerTrustAnchor(ctx, sid, der, ap)
	if err = d.finish(ctx, sid, p, opRegisterTA, target, err); err != nil {
		return TrustAnchor{}, err
	}
	return a, nil
}

func (d *Device) registerTrustAnchor(ctx context.Context, sid SessionID, der []byte, ap Approvals) (TrustAnchor, *principal, string, error) {
	p, err := d.settingsAdmin(sid)
	if err != nil {
		return TrustAnchor{}, p, "", err
	}
	cert, err := d.checkAnchor(der)
	if err != nil {
		return TrustAnchor{}, p, "", err
	}
	target := cert.Subject.String()
	defer d.writes.lockAll()()
	cur := d.ClientTLSPolicy()
	for _, a := range cur.anchors {
		if bytes.Equal(a.Certificate.Raw, cert.Raw) {
			return TrustAnchor{}, p, target, fmt.Errorf("%w: as %s", ErrTrustAnchorExists, FormatAnchorRef(a.Ref))
		}
	}
	if len(cur.anchors) >= MaxTrustAnchors {
		return TrustAnchor{}, p, target, fmt.Errorf("%w (%d registered)", ErrTrustAnchorLimit, len(cur.anchors))
	}
	if cur.next == 0 || cur.next >= maxAnchorRef {
		return TrustAnchor{}, p, target, fmt.Errorf("%w: trust anchor references exhausted", ErrDevice)
	}
	spend, err := d.approve(ctx, QuorumQuorumManagement, p, ap)
	if err != nil {
		return TrustAnchor{}, p, target, err
	}
	a := TrustAnchor{Ref: cur.next, Certificate: cert}
	target = FormatAnchorRef(a.Ref) + " " + target
	if err := d.putPolicy(ctx, newPolicy(cur.level, append(cur.Anchors(), a), cur.next+1)); err != nil {
		return TrustAnchor{}, p, target, err
	}
	spend()
	return a, p, target, nil
}

// checkAnchor parses a candidate trust anchor and checks it is one the
// cluster accepts.
func (d *Device) checkAnchor(der []byte) (*x509.Certificate, error) {
	if len(der) == 0 || len(der) > maxAnchorLen {
		return nil, fmt.Errorf("%w: a certificate of %d bytes (1 to %d)", ErrTrustAnchorInvalid, len(der), maxAnchorLen)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTrustAnchorInvalid, err)
	}
	switch k := c.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() && k.Curve != elliptic.P521() {
			return nil, fmt.Errorf("%w: EC key on %s; need P-256, P-384 or P-521", ErrTrustAnchorInvalid, k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n != 2048 && n != 3072 && n != 4096 {
			return nil, fmt.Errorf("%w: RSA-%d key; need RSA 2048, 3072 or 4096", ErrTrustAnchorInvalid, n)
		}
	default:
		return nil, fmt.Errorf("%w: %s key; need EC (P-256, P-384, P-521) or RSA (2048, 3072, 4096)", ErrTrustAnchorInvalid, c.PublicKeyAlgorithm)
	}
	now := d.cfg.Now()
	switch {
	case !c.BasicConstraintsValid || !c.IsCA:
		return nil, fmt.Errorf("%w: %q is not a CA certificate (it needs basicConstraints CA:TRUE)", ErrTrustAnchorInvalid, c.Subject.String())
	case c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0:
		return nil, fmt.Errorf("%w: %q may not sign certificates (keyUsage lacks keyCertSign)", ErrTrustAnchorInvalid, c.Subject.String())
	case now.Before(c.NotBefore):
		return nil, fmt.Errorf("%w: %q is not valid before %s", ErrTrustAnchorInvalid, c.Subject.String(), c.NotBefore.Format(time.RFC3339))
	case now.After(c.NotAfter):
		return nil, fmt.Errorf("%w: %q expired on %s", ErrTrustAnchorInvalid, c.Subject.String(), c.NotAfter.Format(time.RFC3339))
	}
	return c, nil
}

// DeregisterTrustAnchor removes the trust anchor ref, or every one with all
// (admins only; guarded by the quorum-management quorum), and returns what
// it removed. While enforcement is MTLSCluster it refuses to remove the last
// anchor: nobody could connect any more.
func (d *Device) DeregisterTrustAnchor(ctx context.Context, sid SessionID, ref uint32, all bool, ap Approvals) ([]TrustAnchor, error) {
	target := FormatAnchorRef(ref)
	if all {
		target = "all"
	}
	removed, p, err := d.deregisterTrustAnchor(ctx, sid, ref, all, ap)
	if err = d.finish(ctx, sid, p, opDeregisterTA, target, err); err != nil {
		return nil, err
	}
	return removed, nil
}

func (d *Device) deregisterTrustAnchor(ctx context.Context, sid SessionID, ref uint32, all bool, ap Approvals) ([]TrustAnchor, *principal, error) {
	p, err := d.settingsAdmin(sid)
	if err != nil {
		return nil, p, err
	}
	if all == (ref != 0) {
		return nil, p, fmt.Errorf("%w: name one trust anchor by its reference, or all", ErrArgumentsBad)
	}
	defer d.writes.lockAll()()
	cur := d.ClientTLSPolicy()
	var keep, removed []TrustAnchor
	for _, a := range cur.anchors {
		if all || a.Ref == ref {
			removed = append(removed, a)
		} else {
			keep = append(keep, a)
		}
	}
	switch {
	case !all && len(removed) == 0:
		return nil, p, fmt.Errorf("%w: %s", ErrTrustAnchorNotFound, FormatAnchorRef(ref))
	case len(removed) == 0:
		return []TrustAnchor{}, p, nil // nothing registered: nothing to do
	case len(keep) == 0 && cur.level == MTLSCluster:
		return nil, p, ErrMTLSEnforced
	}
	spend, err := d.approve(ctx, QuorumQuorumManagement, p, ap)
	if err != nil {
		return nil, p, err
	}
	if err := d.putPolicy(ctx, newPolicy(cur.level, keep, cur.next)); err != nil {
		return nil, p, err
	}
	spend()
	return removed, p, nil
}

// SetMTLSEnforcement sets the enforcement level (admins only; guarded by the
// quorum-management quorum). MTLSCluster needs a registered trust anchor
// and that the caller's own connection presented a certificate chaining to
// one (clientChain, as TLS delivered it), so that an admin cannot lock
// everyone out, itself included, by mistake.
func (d *Device) SetMTLSEnforcement(ctx context.Context, sid SessionID, level MTLSLevel, clientChain []*x509.Certificate, ap Approvals) error {
	p, err := d.setMTLSEnforcement(ctx, sid, level, clientChain, ap)
	return d.finish(ctx, sid, p, opSetEnforce, level.String(), err)
}

func (d *Device) setMTLSEnforcement(ctx context.Context, sid SessionID, level MTLSLevel, chain []*x509.Certificate, ap Approvals) (*principal, error) {
	p, err := d.settingsAdmin(sid)
	if err != nil {
		return p, err
	}
	if !level.valid() {
		return p, fmt.Errorf("%w: mTLS enforcement level %d", ErrArgumentsBad, level)
	}
	defer d.writes.lockAll()()
	cur := d.ClientTLSPolicy()
	if level == MTLSCluster {
		if len(cur.anchors) == 0 {
			return p, ErrNoTrustAnchor
		}
		if err := cur.VerifyClient(chain, d.cfg.Now()); err != nil {
			// errors.Unwrap: the *Error's cause, under this operation's name.
			return p, fmt.Errorf("%w; connect with a client certificate issued by a registered trust anchor "+
				"before enforcing, so that enforcement cannot lock you out", errors.Unwrap(err))
		}
	}
	if level == cur.level {
		return p, nil
	}
	spend, err := d.approve(ctx, QuorumQuorumManagement, p, ap)
	if err != nil {
		return p, err
	}
	if err := d.putPolicy(ctx, newPolicy(level, cur.anchors, cur.next)); err != nil {
		return p, err
	}
	spend()
	return p, nil
}

// MTLSEnforcement returns the enforcement level to a logged-in admin or
// crypto user.
func (d *Device) MTLSEnforcement(sid SessionID) (MTLSLevel, error) {
	_, p, err := d.whoami(sid)
	switch {
	case err != nil:
	case p == nil:
		err = ErrNotLoggedIn
	case p.role != RoleAdmin && p.role != rolePreAdmin && p.role != RoleCryptoUser:
		err = fmt.Errorf("%w: %s", ErrRoleNotPermitted, p.role)
	}
	if err != nil {
		return 0, &Error{Op: opGetEnforce, Err: err}
	}
	return d.ClientTLSPolicy().level, nil
}

// FormatAnchorRef is how a trust anchor's reference is shown: 0x01.
func FormatAnchorRef(ref uint32) string { return fmt.Sprintf("0x%02x", ref) }
