package hsm

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Replication links between clones (clusters that hold the same masking
// key: one restored from a backup of the other). A link is set by an admin
// on both sides: the source cluster A holds an outbound link naming the
// clone B (its cluster id, an HSM address, the CA its node certificates
// chain to) and B holds an inbound link naming A the same way. The HSMs of
// A then keep B's token objects (and, if both links say so, users) level
// with theirs; B admits from A's nodes only the kinds its own link names.
// Both sides' links are one RecordSetting record each, linksSettingsID,
// shared by every HSM of the cluster like the other settings; changing them
// takes an admin (and the quorum-management quorum when its value is above
// 1). The device only keeps the settings: the network node runs the links.

// LinkDirection says which way a link replicates. Values are persisted.
type LinkDirection uint8

const (
	// LinkOutbound: this cluster replicates to the link's cluster.
	LinkOutbound LinkDirection = 1
	// LinkInbound: this cluster accepts replication from the link's cluster.
	LinkInbound LinkDirection = 2
)

func (l LinkDirection) String() string {
	switch l {
	case LinkOutbound:
		return "outbound"
	case LinkInbound:
		return "inbound"
	}
	return "invalid-link-direction"
}

func (l LinkDirection) valid() bool { return l == LinkOutbound || l == LinkInbound }

// ParseLinkDirection reads "outbound" or "inbound".
func ParseLinkDirection(s string) (LinkDirection, error) {
	for _, l := range []LinkDirection{LinkOutbound, LinkInbound} {
		if l.String() == s {
			return l, nil
		}
	}
	return 0, &Error{Op: "parse link direction", Err: fmt.Errorf("%w: link direction %q: want outbound or inbound", ErrArgumentsBad, s)}
}

// MaxReplicationLinks bounds the links of one cluster, both directions.
const MaxReplicationLinks = 8

// LinksSettingsID is the id of the setting record that holds a cluster's
// replication links. A restore leaves it out (node/restore.go): a cluster
// made from a backup starts with no links.
const LinksSettingsID = linksSettingsID

const (
	linksSettingsID = "replication-links"
	linksFormat     = 1
	maxLinkAddress  = 255
	maxClusterIDLen = 128

	opCreateLink = "cluster.replication-link-create"
	opDeleteLink = "cluster.replication-link-delete"
	opListLinks  = "cluster.replication-link-list"
)

// ReplicationLink is one side of a link.
type ReplicationLink struct {
	Direction LinkDirection
	ClusterID string // the other cluster
	// Address is host:port of an HSM of the other cluster (outbound only).
	Address string
	// Anchor is the CA the other cluster's node certificates chain to (its
	// customer CA): the only root its HSMs' certificates are checked against.
	Anchor *x509.Certificate // do not modify
	// Users: users replicate too (both sides must say so).
	Users   bool
	Created time.Time
}

// Key is what names a link in its cluster: a direction and a cluster id.
func (l ReplicationLink) Key() string { return l.Direction.String() + " " + l.ClusterID }

// checkClusterID accepts ids such as "cluster-1234abcd" (the rule of
// certificate URIs: 1 to 128 of [A-Za-z0-9._-], not starting with . or -).
func checkClusterID(id string) error {
	if id == "" || len(id) > maxClusterIDLen {
		return fmt.Errorf("%w: cluster id %q must be 1 to %d characters", ErrArgumentsBad, id, maxClusterIDLen)
	}
	for i, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			i > 0 && (r == '-' || r == '.' || r == '_')
		if !ok {
			return fmt.Errorf("%w: cluster id %q: character %q not allowed", ErrArgumentsBad, id, r)
		}
	}
	return nil
}

// checkLinkAddress accepts host:port or [IPv6]:port (the device imports no
// net package; the node dials it).
func checkLinkAddress(addr string) error {
	i := strings.LastIndexByte(addr, ':')
	host, port := addr[:max(i, 0)], addr[i+1:]
	if h, ok := strings.CutPrefix(host, "["); ok {
		host, ok = strings.CutSuffix(h, "]")
		if !ok {
			host = ""
		}
	}
	if i < 0 || host == "" || strings.ContainsAny(host, "[]/ ") || len(addr) > maxLinkAddress {
		return fmt.Errorf("%w: address %q: want host:port of an HSM of the other cluster", ErrArgumentsBad, addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%w: address %q: port out of range", ErrArgumentsBad, addr)
	}
	return nil
}

// marshalLinks encodes the settings record. Format 1, in order:
//
//	1 | count uvarint | per link: direction u8 | cluster id bytes |
//	address bytes | anchor DER bytes | users bool | created unix nanos uvarint
//
// (bytes: uvarint length, then the bytes).
func marshalLinks(links []ReplicationLink) []byte {
	w := fieldWriter{b: []byte{linksFormat}}
	w.uvarint(uint64(len(links)))
	for _, l := range links {
		w.b = append(w.b, byte(l.Direction))
		w.bytes([]byte(l.ClusterID))
		w.bytes([]byte(l.Address))
		w.bytes(l.Anchor.Raw)
		w.bool(l.Users)
		w.uvarint(uint64(max(l.Created.UnixNano(), 0)))
	}
	return w.b
}

var errLinksRecord = errors.New("malformed replication links record")

// unmarshalLinks decodes a settings record, checking its shape.
func unmarshalLinks(b []byte) ([]ReplicationLink, error) {
	if len(b) == 0 || b[0] != linksFormat {
		return nil, fmt.Errorf("%w: unknown format", errLinksRecord)
	}
	r := fieldReader{b: b[1:]}
	n := r.int(MaxReplicationLinks)
	var links []ReplicationLink
	seen := map[string]bool{}
	for range n {
		var l ReplicationLink
		l.Direction = LinkDirection(r.byte())
		l.ClusterID = string(r.bytes(maxClusterIDLen))
		l.Address = string(r.bytes(maxLinkAddress))
		der := r.bytes(maxAnchorLen)
		l.Users = r.bool()
		created := r.uvarint()
		if r.err != nil {
			break
		}
		if created > 1<<62 {
			return nil, fmt.Errorf("%w: creation time out of range", errLinksRecord)
		}
		l.Created = time.Unix(0, int64(created))
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("%w: anchor of %s: %w", errLinksRecord, l.ClusterID, err)
		}
		l.Anchor = c
		if !l.Direction.valid() || checkClusterID(l.ClusterID) != nil || seen[l.Key()] ||
			(l.Direction == LinkOutbound) == (l.Address == "") {
			return nil, fmt.Errorf("%w: link %d", errLinksRecord, len(links))
		}
		seen[l.Key()] = true
		links = append(links, l)
	}
	if err := r.done(); err != nil {
		return nil, fmt.Errorf("%w: %w", errLinksRecord, err)
	}
	return links, nil
}

// ReplicationLinks returns the cluster's links, sorted by direction and
// cluster id. It needs no session: the network node runs them and checks
// the certificates of linked clusters' HSMs before any login.
func (d *Device) ReplicationLinks() []ReplicationLink {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return slices.Clone(d.links)
}

// putLinks persists links, then publishes them. The caller holds d.writes.lockAll.
func (d *Device) putLinks(ctx context.Context, links []ReplicationLink) error {
	slices.SortFunc(links, func(a, b ReplicationLink) int {
		return cmp.Or(cmp.Compare(a.Direction, b.Direction), cmp.Compare(a.ClusterID, b.ClusterID))
	})
	if err := d.cfg.Store.Put(ctx, RecordSetting, linksSettingsID, marshalLinks(links)); err != nil {
		return fmt.Errorf("%w: store replication links: %w", ErrDevice, err)
	}
	d.mu.Lock()
	d.links = links
	d.mu.Unlock()
	return nil
}

// linkAdmin is admin for the links, saying so when it refuses another role.
func (d *Device) linkAdmin(sid SessionID) (*principal, error) {
	p, err := d.admin(sid)
	if errors.Is(err, ErrRoleNotPermitted) {
		err = fmt.Errorf("%w: %s cannot change the cluster's replication links; an admin can", ErrRoleNotPermitted, p.role)
	}
	return p, err
}

// CreateReplicationLink adds a link (admins only; guarded by the
// quorum-management quorum). l.Anchor (DER in anchorDER) must be a CA
// certificate valid now, as a client mTLS trust anchor; an outbound link
// needs an address, an inbound one takes none. One link per direction and
// cluster; at most MaxReplicationLinks.
func (d *Device) CreateReplicationLink(ctx context.Context, sid SessionID, l ReplicationLink, anchorDER []byte, ap Approvals) error {
	p, err := d.createReplicationLink(ctx, sid, l, anchorDER, ap)
	return d.finish(ctx, sid, p, opCreateLink, l.Key(), err)
}

func (d *Device) createReplicationLink(ctx context.Context, sid SessionID, l ReplicationLink, der []byte, ap Approvals) (*principal, error) {
	p, err := d.linkAdmin(sid)
	if err != nil {
		return p, err
	}
	switch {
	case !l.Direction.valid():
		return p, fmt.Errorf("%w: link direction %d", ErrArgumentsBad, l.Direction)
	case l.Direction == LinkInbound && l.Address != "":
		return p, fmt.Errorf("%w: an inbound link takes no address (the other cluster dials this one)", ErrArgumentsBad)
	}
	if err := checkClusterID(l.ClusterID); err != nil {
		return p, err
	}
	if l.Direction == LinkOutbound {
		if err := checkLinkAddress(l.Address); err != nil {
			return p, err
		}
	}
	cert, err := d.checkAnchor(der)
	if err != nil {
		return p, err
	}
	l.Anchor, l.Created = cert, d.cfg.Now()
	defer d.writes.lockAll()()
	cur := d.ReplicationLinks()
	for _, o := range cur {
		if o.Key() == l.Key() {
			return p, fmt.Errorf("%w: an %s link with %s exists already: delete it first", ErrArgumentsBad, l.Direction, l.ClusterID)
		}
	}
	if len(cur) >= MaxReplicationLinks {
		return p, fmt.Errorf("%w: the cluster holds at most %d replication links", ErrArgumentsBad, MaxReplicationLinks)
	}
	spend, err := d.approve(ctx, QuorumQuorumManagement, p, ap)
	if err != nil {
		return p, err
	}
	if err := d.putLinks(ctx, append(cur, l)); err != nil {
		return p, err
	}
	spend()
	return p, nil
}

// DeleteReplicationLink removes a link (admins only; guarded by the
// quorum-management quorum). Deleting an inbound link stops admitting the
// other cluster at once; what it replicated stays.
func (d *Device) DeleteReplicationLink(ctx context.Context, sid SessionID, dir LinkDirection, clusterID string, ap Approvals) error {
	key := ReplicationLink{Direction: dir, ClusterID: clusterID}.Key()
	p, err := d.deleteReplicationLink(ctx, sid, key, ap)
	return d.finish(ctx, sid, p, opDeleteLink, key, err)
}

func (d *Device) deleteReplicationLink(ctx context.Context, sid SessionID, key string, ap Approvals) (*principal, error) {
	p, err := d.linkAdmin(sid)
	if err != nil {
		return p, err
	}
	defer d.writes.lockAll()()
	cur := d.ReplicationLinks()
	keep := slices.DeleteFunc(slices.Clone(cur), func(l ReplicationLink) bool { return l.Key() == key })
	if len(keep) == len(cur) {
		return p, fmt.Errorf("%w: no %s link", ErrArgumentsBad, key)
	}
	spend, err := d.approve(ctx, QuorumQuorumManagement, p, ap)
	if err != nil {
		return p, err
	}
	if err := d.putLinks(ctx, keep); err != nil {
		return p, err
	}
	spend()
	return p, nil
}

// AdmitLinked takes one record the inbound link l pushed: kind and id name
// it, data is its payload in clear (nil for a deletion); apply stores the
// sealed record (last writer wins) and reports whether it was newer than
// what the store holds. The record meets the rule every record from a
// clone meets (admitClone), as a link's route: nobody of this cluster
// brings it, deletions cross, users only if l replicates users. The check
// and the store write run under d.writes.lockAll, as local changes of more than one record do, so no local
// change lands between them; the node reloads the record into the device
// afterwards (Reload).
func (d *Device) AdmitLinked(ctx context.Context, l ReplicationLink, kind RecordKind, id string, data []byte, apply func(context.Context) (bool, error)) (bool, error) {
	const op = "cluster.replication-link-admit"
	if l.Direction != LinkInbound {
		return false, &Error{Op: op, Err: fmt.Errorf("%w: %s is not an inbound link", ErrReplicaRefused, l.Key())}
	}
	defer d.writes.lockAll()()
	if _, err := d.admitClone(ctx, cloneRoute{deletions: true, users: l.Users}, kind, id, data); err != nil {
		return false, &Error{Op: op, Err: err}
	}
	applied, err := apply(ctx)
	if err != nil {
		return false, &Error{Op: op, Err: fmt.Errorf("%w: store: %w", ErrDevice, err)}
	}
	return applied, nil
}
