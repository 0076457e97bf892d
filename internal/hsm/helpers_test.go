package hsm

import (
	"context"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/coffer-hsm/coffer/internal/audit"
	"github.com/coffer-hsm/coffer/internal/ck"
)

// memStore is an in-memory Store for unit tests; store_test.go runs the
// device over the real sealed store.
type memStore struct {
	mu   sync.Mutex
	recs map[RecordKind]map[string][]byte
	// beforeDelete, if set, runs at the start of each Delete (tests hold a
	// deletion there).
	beforeDelete func(k RecordKind, id string)
	beforePut    func(k RecordKind, id string) // likewise, for Put
}

func newMemStore() *memStore { return &memStore{recs: map[RecordKind]map[string][]byte{}} }

func (m *memStore) Put(_ context.Context, k RecordKind, id string, data []byte) error {
	if m.beforePut != nil {
		m.beforePut(k, id)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.recs[k] == nil {
		m.recs[k] = map[string][]byte{}
	}
	m.recs[k][id] = slices.Clone(data)
	return nil
}

func (m *memStore) Delete(_ context.Context, k RecordKind, id string) error {
	if m.beforeDelete != nil {
		m.beforeDelete(k, id)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.recs[k], id)
	return nil
}

func (m *memStore) Scan(_ context.Context, k RecordKind, fn func(string, []byte) error) error {
	m.mu.Lock()
	recs := maps.Clone(m.recs[k])
	m.mu.Unlock()
	for _, id := range slices.Sorted(maps.Keys(recs)) {
		if err := fn(id, recs[id]); err != nil {
			return err
		}
	}
	return nil
}

// memAudit keeps events in memory.
type memAudit struct {
	mu     sync.Mutex
	events []audit.Event
}

func (a *memAudit) Append(ev audit.Event) {
	a.mu.Lock()
	a.events = append(a.events, ev)
	a.mu.Unlock()
}

func (a *memAudit) AppendSync(_ context.Context, ev audit.Event) error {
	a.Append(ev)
	return nil
}

func (a *memAudit) ops() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, e := range a.events {
		out = append(out, e.Op+":"+e.Result)
	}
	return out
}

// testCost makes password hashing cheap in tests; production uses
// DefaultPasswordCost.
var testCost = PasswordCost{Argon2Time: 1, Argon2MemoryKiB: 64, Argon2Threads: 1, PBKDF2Iterations: 1000}

type testDevice struct {
	*Device
	store *memStore
	audit *memAudit
}

func newTestDevice(t testing.TB) *testDevice {
	t.Helper()
	return newDeviceWith(t, Config{})
}

// newDeviceWith is newTestDevice with a config of the test's own: a memory
// store always, a memory auditor unless cfg names one.
func newDeviceWith(t testing.TB, cfg Config) *testDevice {
	t.Helper()
	st, mem := newMemStore(), &memAudit{}
	cfg.Store = st
	if cfg.Audit == nil {
		cfg.Audit = mem
	}
	if cfg.Password == (PasswordCost{}) {
		cfg.Password = testCost
	}
	d, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &testDevice{d, st, mem}
}

// reopen builds a new device over the same store, as after a restart.
func (td *testDevice) reopen(t testing.TB) *testDevice {
	t.Helper()
	d, err := New(t.Context(), Config{Store: td.store, Audit: td.audit, Password: testCost})
	if err != nil {
		t.Fatal(err)
	}
	return &testDevice{d, td.store, td.audit}
}

const (
	adminPW = "admin-password-1"
	cuPW    = "crypto-password-1"
)

// activated returns a device whose pre-admin has activated the cluster, and
// an admin session logged in.
func activated(t testing.TB) (*testDevice, SessionID) {
	t.Helper()
	return activate(t, newTestDevice(t))
}

// activate has the pre-admin activate td and returns an admin session.
func activate(t testing.TB, td *testDevice) (*testDevice, SessionID) {
	t.Helper()
	ctx := t.Context()
	s := td.OpenSession()
	if err := td.Login(ctx, s, RoleAdmin, DefaultAdminName, DefaultPreAdminPIN); err != nil {
		t.Fatalf("pre-admin login: %v", err)
	}
	if err := td.Activate(ctx, s, adminPW); err != nil {
		t.Fatalf("activate: %v", err)
	}
	return td, s
}

// withCU creates crypto user name and returns a session logged in as it.
func withCU(t testing.TB, td *testDevice, admin SessionID, name string) SessionID {
	t.Helper()
	ctx := t.Context()
	if err := td.CreateUser(ctx, admin, name, RoleCryptoUser, cuPW, Approvals{}); err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	s := td.OpenSession()
	if err := td.Login(ctx, s, RoleCryptoUser, name, cuPW); err != nil {
		t.Fatalf("login %s: %v", name, err)
	}
	return s
}

// String is a text attribute (a label, an application), for templates in
// tests.
func String(t ck.AttributeType, s string) Attribute { return Attribute{t, []byte(s)} }
