package node

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/coffer-hsm/coffer/internal/audit"
	"github.com/coffer-hsm/coffer/internal/ck"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// clones is a cluster A and a cluster B made from a copy of A's data (as a
// restore from a backup makes one): the same masking key, users and keys,
// another cluster id and certificates. B's clock can be moved.
type clones struct {
	a, b     hsmv1.HSMClient
	aNode    *running
	bNode    *running
	bClock   *atomic.Int64 // nanoseconds added to B's clock
	aID, bID string
}

func newClones(t *testing.T, prepare func(a hsmv1.HSMClient), configB ...func(*Config)) *clones {
	t.Helper()
	pkiA, pkiB := newTestPKI(t, "cluster-a"), newTestPKI(t, "cluster-b")
	cfgA := config(t, pkiA, 1, MasterKeyCreate)
	a := start(t, cfgA)
	eventually(t, "A ready", a.Ready)
	ca := hsmv1.NewHSMClient(dial(t, pkiA, a.Addr()))
	activate(t, ca)
	if prepare != nil {
		prepare(ca)
	}
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	cfgB := config(t, pkiB, 1, MasterKeyExisting)
	for _, f := range []string{NodeKeyFile, StoreFile, AuditFile} {
		copyFile(t, filepath.Join(cfgA.DataDir, f), filepath.Join(cfgB.DataDir, f))
	}
	cfgA.Listener, cfgA.MasterKey = listen(t), MasterKeyExisting
	a = start(t, cfgA)
	var offset atomic.Int64
	cfgB.Now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	cfgB.SessionIdleTimeout = time.Hour
	for _, f := range configB {
		f(&cfgB)
	}
	b := start(t, cfgB)
	eventually(t, "A and B ready", func() bool { return a.Ready() && b.Ready() })
	return &clones{a: hsmv1.NewHSMClient(dial(t, pkiA, a.Addr())), b: hsmv1.NewHSMClient(dial(t, pkiB, b.Addr())),
		aNode: a, bNode: b, bClock: &offset, aID: "cluster-a", bID: "cluster-b"}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func loginAs(t *testing.T, c hsmv1.HSMClient, role, user, pw string) uint64 {
	t.Helper()
	s := open(t, c)
	must(t)(c.Login(t.Context(), &hsmv1.LoginRequest{Session: s, Role: role, Username: user, Password: pw}))
	return s
}

func createUser(t *testing.T, c hsmv1.HSMClient, role, user, pw string) {
	t.Helper()
	s := loginAs(t, c, "admin", "admin", adminPW)
	defer c.CloseSession(t.Context(), &hsmv1.SessionRequest{Session: s})
	must(t)(c.CreateUser(t.Context(), &hsmv1.CreateUserRequest{Session: s, Username: user, Role: role, Password: pw}))
}

// wantRefused checks that err is a refusal whose message says why.
func wantRefused(t *testing.T, what string, err error, says string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), says) {
		t.Fatalf("%s: %v, want a refusal saying %q", what, err, says)
	}
}

func labelAttr(l string) *hsmv1.Attribute {
	return &hsmv1.Attribute{Type: uint64(ck.CKA_LABEL), Value: []byte(l)}
}

func genKey(t *testing.T, c hsmv1.HSMClient, s uint64, label string, token, extractable bool) uint64 {
	t.Helper()
	r, err := c.GenerateKey(t.Context(), &hsmv1.GenerateKeyRequest{
		Session: s, Mechanism: mechOf(ck.CKM_AES_KEY_GEN),
		Template: []*hsmv1.Attribute{ulongAttr(ck.CKA_VALUE_LEN, 32), boolAttr(ck.CKA_TOKEN, token),
			boolAttr(ck.CKA_EXTRACTABLE, extractable), labelAttr(label)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r.GetObject()
}

func gcm(iv []byte) *hsmv1.Mechanism {
	return &hsmv1.Mechanism{Type: uint64(ck.CKM_AES_GCM), Iv: iv, TagBits: 128}
}

// TestReplicateKey: a non-extractable key made on A after the clone
// replicates to B, masked, and decrypts there what A encrypted; its id,
// label and owner are kept; a second import says it was up to date.
func TestReplicateKey(t *testing.T) {
	c := newClones(t, nil)
	ctx := t.Context()
	sa, sb := cuSession(t, c.a), cuSession(t, c.b)
	k := genKey(t, c.a, sa, "later-key", true, false)
	ct, err := c.a.Encrypt(ctx, &hsmv1.CryptRequest{Session: sa, Key: k, Mechanism: gcm(make([]byte, 12)), Data: []byte("seed 000")})
	if err != nil {
		t.Fatal(err)
	}
	iv := ct.GetIv() // the HSM chose it, as FIPS 140-only mode needs
	if _, err := c.b.ObjectInfo(ctx, &hsmv1.ObjectRequest{Session: sb, Object: k}); err == nil {
		t.Fatal("B has the key before it was replicated")
	}
	env, err := c.a.ExportReplica(ctx, &hsmv1.ExportReplicaRequest{Session: sa, Object: k, DestinationClusterId: c.bID})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.b.ImportReplica(ctx, &hsmv1.ImportReplicaRequest{Session: sb, Envelope: env.GetEnvelope()})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetObject() != k || !got.GetApplied() || got.GetSourceClusterId() != c.aID {
		t.Fatalf("import = %v", got)
	}
	info, err := c.b.ObjectInfo(ctx, &hsmv1.ObjectRequest{Session: sb, Object: k})
	if err != nil || info.GetLabel() != "later-key" || info.GetOwner() != cuName {
		t.Fatalf("on B: %v, %v", info, err)
	}
	pt, err := c.b.Decrypt(ctx, &hsmv1.CryptRequest{Session: sb, Key: k, Mechanism: gcm(iv), Data: ct.GetData()})
	if err != nil || string(pt.GetData()) != "seed 000" {
		t.Fatalf("decrypt on B: %q, %v", pt.GetData(), err)
	}
	if _, err := c.b.ExportKey(ctx, &hsmv1.ObjectRequest{Session: sb, Object: k}); err == nil {
		t.Fatal("the replicated non-extractable key was exported in the clear")
	}
	again, err := c.b.ImportReplica(ctx, &hsmv1.ImportReplicaRequest{Session: sb, Envelope: env.GetEnvelope()})
	if err != nil || again.GetApplied() || again.GetObject() != k {
		t.Fatalf("second import = %v, %v; want not applied, no error", again, err)
	}
}

// TestReplicaEnvelopeRefused: a forged, edited, expired, misdirected or
// unrelated envelope is refused, saying why.
func TestReplicaEnvelopeRefused(t *testing.T) {
	c := newClones(t, nil)
	ctx := t.Context()
	sa, sb := cuSession(t, c.a), cuSession(t, c.b)
	k := genKey(t, c.a, sa, "k", true, false)
	export := func(dest string) []byte {
		t.Helper()
		env, err := c.a.ExportReplica(ctx, &hsmv1.ExportReplicaRequest{Session: sa, Object: k, DestinationClusterId: dest})
		if err != nil {
			t.Fatal(err)
		}
		return env.GetEnvelope()
	}
	imp := func(b []byte) error {
		_, err := c.b.ImportReplica(ctx, &hsmv1.ImportReplicaRequest{Session: sb, Envelope: b})
		return err
	}
	good := export(c.bID)

	wantRefused(t, "other destination", imp(export("cluster-c")), "the envelope is for cluster cluster-c")
	edited := append([]byte(nil), good...)
	edited[len(edited)-envelopeMACLen-5] ^= 1 // in the sealed record
	wantRefused(t, "edited record", imp(edited), "does not verify")
	forged := append([]byte(nil), good...)
	forged[len(forged)-1] ^= 1
	wantRefused(t, "forged MAC", imp(forged), "does not verify")
	wantRefused(t, "truncated", imp(good[:len(good)-1]), "not a replica envelope")
	wantRefused(t, "garbage", imp([]byte("not an envelope")), "not a replica envelope")
	wantRefused(t, "export to itself", func() error {
		_, err := c.a.ExportReplica(ctx, &hsmv1.ExportReplicaRequest{Session: sa, Object: k, DestinationClusterId: c.aID})
		return err
	}(), "the destination is this cluster")

	c.bClock.Store(int64(replicaTTL + time.Minute))
	wantRefused(t, "expired", imp(good), "the envelope expired")
	c.bClock.Store(-int64(replicaTTL))
	wantRefused(t, "from the future", imp(good), "later than this HSM's clock allows")
	c.bClock.Store(0)

	// An unrelated cluster (its own masking key) named cluster-b.
	pkiU := newTestPKI(t, c.bID)
	u := start(t, config(t, pkiU, 1, MasterKeyCreate))
	eventually(t, "unrelated ready", u.Ready)
	cu := hsmv1.NewHSMClient(dial(t, pkiU, u.Addr()))
	activate(t, cu)
	su := cuSession(t, cu)
	_, err := cu.ImportReplica(ctx, &hsmv1.ImportReplicaRequest{Session: su, Envelope: good})
	wantRefused(t, "unrelated cluster", err, errNoSharedMK)

	// Not logged in: refused before the envelope is looked at.
	anon := open(t, c.b)
	_, err = c.b.ImportReplica(ctx, &hsmv1.ImportReplicaRequest{Session: anon, Envelope: good})
	wantErr(t, err, codes.Unauthenticated, "CKR_USER_NOT_LOGGED_IN")

	if err := imp(good); err != nil {
		t.Fatalf("the good envelope after all that: %v", err)
	}
}

const bobPW = "bob-password-1"

// TestReplicaPolicy: what a hostile crypto user might try with replicas,
// and each rule that stops it.
func TestReplicaPolicy(t *testing.T) {
	var before, beforeExtractable uint64
	c := newClones(t, func(a hsmv1.HSMClient) {
		createUser(t, a, "crypto-user", "bob", bobPW)
		s := cuSession(t, a)
		before = genKey(t, a, s, "before", true, false)
		beforeExtractable = genKey(t, a, s, "before-extractable", true, true)
		must(t)(a.ShareKey(t.Context(), &hsmv1.ShareKeyRequest{Session: s, Object: before, Username: "bob"}))
	})
	ctx := t.Context()
	sa, sb := cuSession(t, c.a), cuSession(t, c.b)
	export := func(s, k uint64) ([]byte, error) {
		env, err := c.a.ExportReplica(ctx, &hsmv1.ExportReplicaRequest{Session: s, Object: k, DestinationClusterId: c.bID})
		return env.GetEnvelope(), err
	}
	mustExport := func(s, k uint64) []byte {
		t.Helper()
		b, err := export(s, k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	imp := func(s uint64, b []byte) (*hsmv1.ImportReplicaResponse, error) {
		return c.b.ImportReplica(ctx, &hsmv1.ImportReplicaRequest{Session: s, Envelope: b})
	}

	t.Run("a user the key is shared with does not export it", func(t *testing.T) {
		sbob := loginAs(t, c.a, "crypto-user", "bob", bobPW)
		_, err := export(sbob, before)
		wantRefused(t, "bob's export", err, "bob does not own the key")
	})
	t.Run("a crypto user does not import another's key", func(t *testing.T) {
		env := mustExport(sa, before)
		sbob := loginAs(t, c.b, "crypto-user", "bob", bobPW)
		_, err := imp(sbob, env)
		wantRefused(t, "bob's import", err, "the key belongs to alice")
	})
	t.Run("an admin neither exports nor imports a key", func(t *testing.T) {
		adm := loginAs(t, c.a, "admin", "admin", adminPW)
		_, err := export(adm, before)
		wantRefused(t, "admin's export", err, "admins manage users but cannot use keys")
		env := mustExport(sa, before)
		admB := loginAs(t, c.b, "admin", "admin", adminPW)
		_, err = imp(admB, env)
		wantRefused(t, "admin's import", err, "admins manage users but cannot use keys")
	})
	t.Run("a session object is not replicated", func(t *testing.T) {
		k := genKey(t, c.a, sa, "session", false, false)
		_, err := export(sa, k)
		wantRefused(t, "session key", err, "a session object is not replicated")
	})
	t.Run("an owner missing on the destination", func(t *testing.T) {
		createUser(t, c.a, "crypto-user", "carol", "carol-password-1")
		scarol := loginAs(t, c.a, "crypto-user", "carol", "carol-password-1")
		env := mustExport(scarol, genKey(t, c.a, scarol, "carols", true, false))
		sbob := loginAs(t, c.b, "crypto-user", "bob", bobPW)
		_, err := imp(sbob, env)
		wantRefused(t, "carol's key", err, "crypto user carol, who owns the key or shares it, does not exist on the destination cluster")
	})
	t.Run("a shared user missing on the destination", func(t *testing.T) {
		createUser(t, c.a, "crypto-user", "dave", "dave-password-1")
		k := genKey(t, c.a, sa, "shared-with-dave", true, false)
		must(t)(c.a.ShareKey(ctx, &hsmv1.ShareKeyRequest{Session: sa, Object: k, Username: "dave"}))
		_, err := imp(sb, mustExport(sa, k))
		wantRefused(t, "share with dave", err, "crypto user dave, who owns the key or shares it, does not exist on the destination cluster")
	})
	t.Run("a one-way attribute does not go back", func(t *testing.T) {
		// The owner makes the key non-extractable on B; a newer change on A
		// (its label) must not bring back an extractable copy.
		must(t)(c.b.SetAttributes(ctx, &hsmv1.SetAttributesRequest{Session: sb, Object: beforeExtractable,
			Template: []*hsmv1.Attribute{boolAttr(ck.CKA_EXTRACTABLE, false)}}))
		must(t)(c.a.SetAttributes(ctx, &hsmv1.SetAttributesRequest{Session: sa, Object: beforeExtractable,
			Template: []*hsmv1.Attribute{labelAttr("renamed-on-a")}}))
		_, err := imp(sb, mustExport(sa, beforeExtractable))
		wantRefused(t, "extractable again", err, "CKA_EXTRACTABLE is false there")
		if _, err := c.b.ExportKey(ctx, &hsmv1.ObjectRequest{Session: sb, Object: beforeExtractable}); err == nil {
			t.Fatal("the key became extractable on B")
		}
	})
	t.Run("a key trusted on the source is not trusted on the destination by a replica", func(t *testing.T) {
		pair, err := ecPair(t, c.a, sa, true, 0)
		if err != nil {
			t.Fatal(err)
		}
		adm := loginAs(t, c.a, "admin", "admin", adminPW)
		must(t)(c.a.SetAttributes(ctx, &hsmv1.SetAttributesRequest{Session: adm, Object: pair.GetPublicKey(),
			Template: []*hsmv1.Attribute{boolAttr(ck.CKA_TRUSTED, true)}}))
		_, err = imp(sb, mustExport(sa, pair.GetPublicKey()))
		wantRefused(t, "trusted key", err, "only an admin of the destination marks a key trusted")
		if _, err := imp(sb, mustExport(sa, pair.GetPrivateKey())); err != nil {
			t.Fatalf("the untrusted private key: %v", err)
		}
	})
	t.Run("a newer change on the destination wins", func(t *testing.T) {
		must(t)(c.b.SetAttributes(ctx, &hsmv1.SetAttributesRequest{Session: sb, Object: before,
			Template: []*hsmv1.Attribute{labelAttr("renamed-on-b")}}))
		got, err := imp(sb, mustExport(sa, before))
		if err != nil || got.GetApplied() {
			t.Fatalf("older replica: %v, %v; want not applied", got, err)
		}
		info, err := c.b.ObjectInfo(ctx, &hsmv1.ObjectRequest{Session: sb, Object: before})
		if err != nil || info.GetLabel() != "renamed-on-b" {
			t.Fatalf("on B: %v, %v", info, err)
		}
	})
	t.Run("a key deleted on the destination stays deleted", func(t *testing.T) {
		env := mustExport(sa, before)
		must(t)(c.b.DestroyObject(ctx, &hsmv1.ObjectRequest{Session: sb, Object: before}))
		_, err := imp(sb, env)
		wantRefused(t, "deleted key", err, "was deleted on this cluster")
	})
}

// TestReplicateUser: admins replicate users; the role of a user the
// destination has is not changed by a replica.
func TestReplicateUser(t *testing.T) {
	c := newClones(t, nil)
	ctx := t.Context()
	adm, admB := loginAs(t, c.a, "admin", "admin", adminPW), loginAs(t, c.b, "admin", "admin", adminPW)
	exportUser := func(s uint64, u string) ([]byte, error) {
		env, err := c.a.ExportUserReplica(ctx, &hsmv1.ExportUserReplicaRequest{Session: s, Username: u, DestinationClusterId: c.bID})
		return env.GetEnvelope(), err
	}
	createUser(t, c.a, "crypto-user", "dave", "dave-password-1")
	env, err := exportUser(adm, "dave")
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.b.ImportUserReplica(ctx, &hsmv1.ImportUserReplicaRequest{Session: admB, Envelope: env})
	if err != nil || !got.GetApplied() {
		t.Fatalf("import dave: %v, %v", got, err)
	}
	loginAs(t, c.b, "crypto-user", "dave", "dave-password-1")

	sa := cuSession(t, c.a)
	_, err = exportUser(sa, "dave")
	wantRefused(t, "a crypto user's export", err, "the logged-in role may not do this")
	sb := cuSession(t, c.b)
	_, err = c.b.ImportUserReplica(ctx, &hsmv1.ImportUserReplicaRequest{Session: sb, Envelope: env})
	wantRefused(t, "a crypto user's import", err, "the logged-in role may not do this")

	createUser(t, c.a, "crypto-user", "erin", "erin-password-1")
	createUser(t, c.b, "admin", "erin", "erin-password-2")
	env, err = exportUser(adm, "erin")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.b.ImportUserReplica(ctx, &hsmv1.ImportUserReplicaRequest{Session: admB, Envelope: env})
	wantRefused(t, "role change", err, "erin has role admin on the destination cluster and crypto-user on the source")
	loginAs(t, c.b, "admin", "erin", "erin-password-2")

	_, err = c.b.ImportReplica(ctx, &hsmv1.ImportReplicaRequest{Session: sb, Envelope: env})
	wantRefused(t, "a user's envelope as a key's", err, "holds a user record")
}

// TestReplicaObjectCap: the destination's cap on objects holds for
// replicas as for keys made there.
func TestReplicaObjectCap(t *testing.T) {
	c := newClones(t, nil, func(cfg *Config) { cfg.Device.MaxObjects = 1 })
	ctx := t.Context()
	sa, sb := cuSession(t, c.a), cuSession(t, c.b)
	imp := func(k uint64) error {
		env, err := c.a.ExportReplica(ctx, &hsmv1.ExportReplicaRequest{Session: sa, Object: k, DestinationClusterId: c.bID})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.b.ImportReplica(ctx, &hsmv1.ImportReplicaRequest{Session: sb, Envelope: env.GetEnvelope()})
		return err
	}
	first := genKey(t, c.a, sa, "first", true, false)
	if err := imp(first); err != nil {
		t.Fatal(err)
	}
	err := imp(genKey(t, c.a, sa, "second", true, false))
	wantErr(t, err, codes.Internal, "CKR_DEVICE_MEMORY")
	if err := imp(first); err != nil { // a key it holds is no new object
		t.Fatalf("the first key again: %v", err)
	}
}

// auditOps lists "op result target" of the records of n's audit log whose
// op starts with prefix.
func auditOps(t *testing.T, n *running, prefix string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(n.cfg.DataDir, AuditFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd := audit.NewReader(f)
	var out []string
	for {
		r, err := rd.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(r.Op, prefix) {
			out = append(out, strings.TrimSpace(r.Op+" "+r.User+" "+r.Result+" "+r.Target))
		}
	}
}

// TestReplicaAudited: both ends audit a replication, and a refused
// envelope is audited where it was refused.
func TestReplicaAudited(t *testing.T) {
	c := newClones(t, nil)
	ctx := t.Context()
	sa, sb := cuSession(t, c.a), cuSession(t, c.b)
	k := genKey(t, c.a, sa, "audited", true, false)
	env, err := c.a.ExportReplica(ctx, &hsmv1.ExportReplicaRequest{Session: sa, Object: k, DestinationClusterId: c.bID})
	if err != nil {
		t.Fatal(err)
	}
	forged := append([]byte(nil), env.GetEnvelope()...)
	forged[len(forged)-1] ^= 1
	if _, err := c.b.ImportReplica(ctx, &hsmv1.ImportReplicaRequest{Session: sb, Envelope: forged}); err == nil {
		t.Fatal("forged envelope taken")
	}
	if _, err := c.b.ImportReplica(ctx, &hsmv1.ImportReplicaRequest{Session: sb, Envelope: env.GetEnvelope()}); err != nil {
		t.Fatal(err)
	}
	// A durable record on A makes its earlier ones durable too.
	adm := loginAs(t, c.a, "admin", "admin", adminPW)
	must(t)(c.a.ExportUserReplica(ctx, &hsmv1.ExportUserReplicaRequest{Session: adm, Username: cuName, DestinationClusterId: c.bID}))

	if got, want := auditOps(t, c.aNode, "object.replicate"), []string{"object.replicate-out alice ok"}; !slices.Equal(got, want) {
		t.Errorf("A's audit: %q, want %q", got, want)
	}
	if got, want := auditOps(t, c.aNode, "user.replicate"), []string{"user.replicate-out admin ok alice"}; !slices.Equal(got, want) {
		t.Errorf("A's audit: %q, want %q", got, want)
	}
	want := []string{"object.replicate-in alice CKR_FUNCTION_FAILED cluster-a", "object.replicate-in alice ok alice"}
	if got := auditOps(t, c.bNode, "object.replicate"); !slices.Equal(got, want) {
		t.Errorf("B's audit: %q, want %q", got, want)
	}
}
