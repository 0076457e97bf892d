package hsm

import (
	"crypto/elliptic"
	"errors"
	"testing"
)

func TestReplicationLinks(t *testing.T) {
	td, admin := activated(t)
	cu := withCU(t, td, admin, "alice")
	ctx := t.Context()
	ca := makeCert(t, "clone CA", ecKey(t, elliptic.P256()), nil, certOpts{})
	leaf := makeCert(t, "not a CA", ecKey(t, elliptic.P256()), ca, certOpts{leaf: true})
	out := ReplicationLink{Direction: LinkOutbound, ClusterID: "cluster-b", Address: "127.0.0.12:2223", Users: true}

	for _, tc := range []struct {
		name string
		sid  SessionID
		l    ReplicationLink
		der  []byte
		want *Kind
	}{
		{"crypto user", cu, out, ca.cert.Raw, ErrRoleNotPermitted},
		{"not a CA", admin, out, leaf.cert.Raw, ErrTrustAnchorInvalid},
		{"outbound without address", admin, ReplicationLink{Direction: LinkOutbound, ClusterID: "cluster-b"}, ca.cert.Raw, ErrArgumentsBad},
		{"inbound with address", admin, ReplicationLink{Direction: LinkInbound, ClusterID: "cluster-b", Address: "127.0.0.1:1"}, ca.cert.Raw, ErrArgumentsBad},
		{"bad cluster id", admin, ReplicationLink{Direction: LinkInbound, ClusterID: "-x/y"}, ca.cert.Raw, ErrArgumentsBad},
		{"no direction", admin, ReplicationLink{ClusterID: "cluster-b"}, ca.cert.Raw, ErrArgumentsBad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := td.CreateReplicationLink(ctx, tc.sid, tc.l, tc.der, Approvals{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if got := td.ReplicationLinks(); len(got) != 0 {
		t.Fatalf("refused creations left links: %v", got)
	}

	if err := td.CreateReplicationLink(ctx, admin, out, ca.cert.Raw, Approvals{}); err != nil {
		t.Fatal(err)
	}
	in := ReplicationLink{Direction: LinkInbound, ClusterID: "cluster-c"}
	if err := td.CreateReplicationLink(ctx, admin, in, ca.cert.Raw, Approvals{}); err != nil {
		t.Fatal(err)
	}
	if err := td.CreateReplicationLink(ctx, admin, out, ca.cert.Raw, Approvals{}); !errors.Is(err, ErrArgumentsBad) {
		t.Fatalf("second link with the same cluster: %v", err)
	}

	// The record survives a restart, as any other setting.
	re := td.reopen(t)
	got := re.ReplicationLinks()
	if len(got) != 2 || got[0].Key() != "outbound cluster-b" || got[0].Address != out.Address || !got[0].Users ||
		got[1].Key() != "inbound cluster-c" || got[1].Users || !got[1].Anchor.Equal(ca.cert) || got[0].Created.IsZero() {
		t.Fatalf("after reopen: %+v", got)
	}

	if err := td.DeleteReplicationLink(ctx, cu, LinkOutbound, "cluster-b", Approvals{}); !errors.Is(err, ErrRoleNotPermitted) {
		t.Fatalf("crypto user deleted a link: %v", err)
	}
	if err := td.DeleteReplicationLink(ctx, admin, LinkOutbound, "cluster-b", Approvals{}); err != nil {
		t.Fatal(err)
	}
	if err := td.DeleteReplicationLink(ctx, admin, LinkOutbound, "cluster-b", Approvals{}); !errors.Is(err, ErrArgumentsBad) {
		t.Fatalf("deleting a missing link: %v", err)
	}
	if got := td.ReplicationLinks(); len(got) != 1 || got[0].Key() != "inbound cluster-c" {
		t.Fatalf("after delete: %+v", got)
	}
}

func FuzzUnmarshalLinks(f *testing.F) {
	f.Add(marshalLinks(nil))
	f.Add([]byte{linksFormat, 1, 1, 1, 'a', 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		links, err := unmarshalLinks(b)
		if err != nil {
			return
		}
		again, err := unmarshalLinks(marshalLinks(links))
		if err != nil || len(again) != len(links) {
			t.Fatalf("round trip: %v, %d links of %d", err, len(again), len(links))
		}
	})
}

func TestAdmitReplicated(t *testing.T) {
	td, admin := activated(t)
	withCU(t, td, admin, "alice")
	u, err := td.user("alice").marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		kind RecordKind
		id   string
		data []byte
		ok   bool
	}{
		{"user under its name", RecordUser, "alice", u, true},
		{"user under another name", RecordUser, "admin", u, false},
		{"user deleted", RecordUser, "alice", nil, true},
		{"setting", RecordSetting, clusterSettingsID, defaultClusterSettings().marshal(), false},
		{"setting deleted", RecordSetting, linksSettingsID, nil, false},
		{"object with a bad id", RecordObject, "not-an-id", nil, false},
		{"object deleted", RecordObject, ObjectID(7).String(), nil, true},
		{"object that does not parse", RecordObject, ObjectID(7).String(), []byte{1, 2, 3}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := td.AdmitReplicated(tc.kind, tc.id, tc.data)
			if (err == nil) != tc.ok {
				t.Fatalf("got %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
