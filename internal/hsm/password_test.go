package hsm

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/ck"
)

func TestPasswordHashRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		fips bool
		alg  byte
		size int
	}{
		{"argon2id", false, pwArgon2id, pwArgon2Len},
		{"pbkdf2-sha512", true, pwPBKDF2SHA512, pwPBKDF2Len},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const pw = "correct horse"
			h, err := hashPassword(rand.Reader, testCost, tc.fips, pw)
			noErr(t, err)
			if h[0] != tc.alg || len(h) != tc.size {
				t.Fatalf("encoding: algorithm %d, %d bytes; want %d, %d", h[0], len(h), tc.alg, tc.size)
			}
			p, err := decodePassword(h)
			noErr(t, err)
			if len(p.salt) != pwSaltLen || len(p.hash) != pwHashLen {
				t.Fatalf("salt %d bytes, hash %d bytes", len(p.salt), len(p.hash))
			}
			if tc.fips && p.cost.PBKDF2Iterations != testCost.PBKDF2Iterations ||
				!tc.fips && (p.cost.Argon2Time != testCost.Argon2Time || p.cost.Argon2MemoryKiB != testCost.Argon2MemoryKiB ||
					p.cost.Argon2Threads != testCost.Argon2Threads) {
				t.Fatalf("encoded cost %+v, want %+v", p.cost, testCost)
			}
			for _, c := range []struct {
				pw   string
				want bool
			}{{pw, true}, {"correct horsE", false}, {"", false}, {pw + " ", false}} {
				ok, err := verifyPassword(h, c.pw)
				noErr(t, err)
				if ok != c.want {
					t.Errorf("verify(%q) = %v, want %v", c.pw, ok, c.want)
				}
			}
			h2, err := hashPassword(rand.Reader, testCost, tc.fips, pw)
			noErr(t, err)
			if bytes.Equal(h, h2) {
				t.Error("two hashes of one password are equal: no fresh salt")
			}
		})
	}
}

func TestPasswordHashTampered(t *testing.T) {
	const pw = "correct horse"
	for _, fips := range []bool{false, true} {
		h, err := hashPassword(rand.Reader, testCost, fips, pw)
		noErr(t, err)
		// A change to the algorithm, the salt or the hash fails to decode
		// or to verify. (The cost fields are covered below: flipping their
		// high bits makes valid but very slow costs.)
		for i := range h {
			if i != 0 && i < len(h)-pwSaltLen-pwHashLen {
				continue
			}
			for _, bit := range []byte{0x01, 0x80} {
				m := bytes.Clone(h)
				m[i] ^= bit
				if ok, _ := verifyPassword(m, pw); ok {
					t.Fatalf("fips=%v: hash with byte %d ^ %#x still verifies", fips, i, bit)
				}
			}
		}
		// A cheap change of cost: one more pass or iteration.
		m := bytes.Clone(h)
		m[4]++ // the low byte of the PBKDF2 iterations or the Argon2 passes
		if ok, err := verifyPassword(m, pw); ok || err != nil {
			t.Fatalf("fips=%v: hash with another cost: ok %v, err %v", fips, ok, err)
		}
		for name, m := range map[string][]byte{
			"empty":     nil,
			"truncated": h[:len(h)-1],
			"extended":  append(bytes.Clone(h), 0),
			"algorithm": append([]byte{9}, h[1:]...),
		} {
			if _, err := verifyPassword(m, pw); !errors.Is(err, errPasswordHash) {
				t.Errorf("fips=%v %s: err = %v, want errPasswordHash", fips, name, err)
			}
		}
	}
	// Out-of-range parameters are refused before any work is done.
	big := (&pwParams{alg: pwArgon2id, cost: PasswordCost{Argon2Time: 1, Argon2MemoryKiB: 1 << 31, Argon2Threads: 1},
		salt: make([]byte, pwSaltLen), hash: make([]byte, pwHashLen)}).encode()
	if _, err := verifyPassword(big, pw); !errors.Is(err, errPasswordHash) {
		t.Errorf("2 TiB Argon2 cost: err = %v", err)
	}
	zero := (&pwParams{alg: pwPBKDF2SHA512, salt: make([]byte, pwSaltLen), hash: make([]byte, pwHashLen)}).encode()
	if _, err := verifyPassword(zero, pw); !errors.Is(err, errPasswordHash) {
		t.Errorf("0 PBKDF2 iterations: err = %v", err)
	}
}

func TestPasswordRules(t *testing.T) {
	tests := []struct {
		name string
		pw   string
		ok   bool
	}{
		{"6", "123456", false},
		{"7", "1234567", true},
		{"32", strings.Repeat("a", 32), true},
		{"33", strings.Repeat("a", 33), false},
		{"7 two-byte characters", strings.Repeat("é", 7), true},
		{"32 two-byte characters", strings.Repeat("é", 32), true},
		{"33 two-byte characters", strings.Repeat("é", 33), false},
		{"invalid UTF-8", "abcdefg\xff", false},
		{"empty", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkPassword(tc.pw)
			if tc.ok {
				noErr(t, err)
				return
			}
			if !errors.Is(err, ErrPinInvalid) || Code(err) != ck.CKR_PIN_LEN_RANGE {
				t.Fatalf("err = %v (%v), want ErrPinInvalid", err, Code(err))
			}
		})
	}
}

func TestPasswordCostValidate(t *testing.T) {
	tests := []struct {
		name string
		c    PasswordCost
		ok   bool
	}{
		{"zero means default", PasswordCost{}, true},
		{"default", DefaultPasswordCost, true},
		{"test", testCost, true},
		{"no passes", PasswordCost{Argon2Time: 0, Argon2MemoryKiB: 64, Argon2Threads: 1, PBKDF2Iterations: 1}, false},
		{"no threads", PasswordCost{Argon2Time: 1, Argon2MemoryKiB: 64, Argon2Threads: 0, PBKDF2Iterations: 1}, false},
		{"memory below 8 KiB per lane", PasswordCost{Argon2Time: 1, Argon2MemoryKiB: 31, Argon2Threads: 4, PBKDF2Iterations: 1}, false},
		{"memory above 4 GiB", PasswordCost{Argon2Time: 1, Argon2MemoryKiB: 4<<20 + 1, Argon2Threads: 1, PBKDF2Iterations: 1}, false},
		{"no iterations", PasswordCost{Argon2Time: 1, Argon2MemoryKiB: 64, Argon2Threads: 1}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.c.validate(); (err == nil) != tc.ok {
				t.Fatalf("validate() = %v, want ok %v", err, tc.ok)
			}
			cfg := Config{Store: newMemStore(), Audit: &memAudit{}, Password: tc.c}
			if err := cfg.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Config.Validate() = %v, want ok %v", err, tc.ok)
			}
		})
	}
	// RFC 9106 §4, second recommended option; PBKDF2 at OWASP's figure.
	if c := DefaultPasswordCost; c.Argon2Time != 3 || c.Argon2MemoryKiB != 64<<10 || c.Argon2Threads != 4 || c.PBKDF2Iterations != 600_000 {
		t.Errorf("DefaultPasswordCost = %+v", c)
	}
}

// TestVerifyPasswordConstantTime checks, in the source, that the hash
// comparison is crypto/subtle's constant-time one and nothing else.
func TestVerifyPasswordConstantTime(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "password.go", nil, 0)
	noErr(t, err)
	var fn *ast.FuncDecl
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && fd.Name.Name == "verifyPassword" {
			fn = fd
		}
	}
	if fn == nil {
		t.Fatal("verifyPassword not found in password.go")
	}
	var subtleCalls int
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			if x, ok := n.X.(*ast.Ident); ok {
				switch x.Name + "." + n.Sel.Name {
				case "subtle.ConstantTimeCompare":
					subtleCalls++
				case "bytes.Equal", "bytes.Compare", "reflect.DeepEqual", "slices.Equal":
					t.Errorf("verifyPassword compares with %s.%s", x.Name, n.Sel.Name)
				}
			}
		case *ast.BinaryExpr:
			if n.Op != token.EQL && n.Op != token.NEQ {
				break
			}
			if y, ok := n.Y.(*ast.Ident); ok && y.Name == "nil" {
				break
			}
			if call, ok := n.X.(*ast.CallExpr); ok {
				if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "ConstantTimeCompare" {
					break
				}
			}
			t.Errorf("verifyPassword compares with %s", n.Op)
		}
		return true
	})
	if subtleCalls != 1 {
		t.Fatalf("verifyPassword calls subtle.ConstantTimeCompare %d times, want 1", subtleCalls)
	}
}

// TestPasswordRehash: a device switched to FIPS mode moves each user to
// PBKDF2 at its next successful login.
func TestPasswordRehash(t *testing.T) {
	ctx := t.Context()
	td, admin := activated(t)
	noErr(t, td.CreateUser(ctx, admin, "alice", RoleCryptoUser, cuPW, Approvals{}))
	if h := storedUser(t, td, "alice").hash; h[0] != pwArgon2id || needsRehash(h, testCost, false) {
		t.Fatalf("new hash algorithm %d", h[0])
	}
	d, err := New(ctx, Config{Store: td.store, Audit: td.audit, Password: testCost, FIPS: true})
	noErr(t, err)
	fips := &testDevice{d, td.store, td.audit}
	s := fips.OpenSession()
	wantRefusal(t, fips.Login(ctx, s, RoleCryptoUser, "alice", "wrong-password"), ErrPinIncorrect)
	if h := storedUser(t, fips, "alice").hash; h[0] != pwArgon2id {
		t.Fatal("a failed login rehashed")
	}
	noErr(t, fips.Login(ctx, s, RoleCryptoUser, "alice", cuPW))
	h := storedUser(t, fips, "alice").hash
	if h[0] != pwPBKDF2SHA512 || needsRehash(h, testCost, true) {
		t.Fatalf("hash after FIPS login: algorithm %d", h[0])
	}
	noErr(t, fips.Logout(s))
	noErr(t, fips.Login(ctx, s, RoleCryptoUser, "alice", cuPW))
}

func TestLockout(t *testing.T) {
	ctx := t.Context()
	for _, max := range []int{0, 3} { // 0: the default, 5
		t.Run(fmt.Sprintf("max=%d", max), func(t *testing.T) {
			td := newDeviceWith(t, Config{MaxLoginFailures: max})
			admin := activateDevice(t, td)
			noErr(t, td.CreateUser(ctx, admin, "alice", RoleCryptoUser, cuPW, Approvals{}))
			limit := td.cfg.MaxLoginFailures
			if max == 0 && limit != 5 {
				t.Fatalf("default MaxLoginFailures %d", limit)
			}
			s := td.OpenSession()
			for i := 1; i <= limit; i++ {
				wantRefusal(t, td.Login(ctx, s, RoleCryptoUser, "alice", "wrong-password"), ErrPinIncorrect)
				u := storedUser(t, td, "alice")
				if u.Failures() != i || u.Locked != (i == limit) {
					t.Fatalf("after %d failures stored %d failures, locked %v", i, u.Failures(), u.Locked)
				}
			}
			wantRefusal(t, td.Login(ctx, s, RoleCryptoUser, "alice", cuPW), ErrPinLocked)

			// The lock survives a restart.
			td = td.reopen(t)
			s = td.OpenSession()
			wantRefusal(t, td.Login(ctx, s, RoleCryptoUser, "alice", cuPW), ErrPinLocked)
			users, err := td.ListUsers(loginAs(t, td, RoleAdmin, DefaultAdminName, adminPW))
			noErr(t, err)
			if i := slices.IndexFunc(users, func(u UserInfo) bool { return u.Name == "alice" }); i < 0 || !users[i].Locked {
				t.Fatalf("ListUsers does not show alice locked: %+v", users)
			}

			// An admin's password reset unlocks.
			admin = loginAs(t, td, RoleAdmin, DefaultAdminName, adminPW)
			noErr(t, td.ChangePassword(ctx, admin, "alice", "new-password-2", Approvals{}))
			if u := storedUser(t, td, "alice"); u.Failures() != 0 || u.Locked {
				t.Fatalf("after reset: %d failures, locked %v", u.Failures(), u.Locked)
			}
			wantRefusal(t, td.Login(ctx, s, RoleCryptoUser, "alice", cuPW), ErrPinIncorrect)
			noErr(t, td.Login(ctx, s, RoleCryptoUser, "alice", "new-password-2"))
		})
	}
}

// countStore counts user writes.
type countStore struct {
	*memStore
	mu        sync.Mutex
	userPuts  int
	failPuts  bool
	failError error
}

func (c *countStore) Put(ctx context.Context, k RecordKind, id string, data []byte) error {
	c.mu.Lock()
	if k == RecordUser {
		c.userPuts++
	}
	fail := c.failPuts
	c.mu.Unlock()
	if fail {
		return c.failError
	}
	return c.memStore.Put(ctx, k, id, data)
}

func (c *countStore) puts() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.userPuts
}

func TestLoginResetsFailures(t *testing.T) {
	ctx := t.Context()
	cs, au := &countStore{memStore: newMemStore()}, &memAudit{}
	d, err := New(ctx, Config{Store: cs, Audit: au, Password: testCost})
	noErr(t, err)
	td := &testDevice{d, cs.memStore, au}
	admin := activateDevice(t, td)
	noErr(t, td.CreateUser(ctx, admin, "alice", RoleCryptoUser, cuPW, Approvals{}))
	s := td.OpenSession()

	before := cs.puts()
	noErr(t, td.Login(ctx, s, RoleCryptoUser, "alice", cuPW))
	if n := cs.puts() - before; n != 0 {
		t.Fatalf("a clean login wrote the user %d times", n)
	}
	noErr(t, td.Logout(s))
	for range 2 {
		wantRefusal(t, td.Login(ctx, s, RoleCryptoUser, "alice", "wrong-password"), ErrPinIncorrect)
	}
	if u := storedUser(t, td, "alice"); u.Failures() != 2 {
		t.Fatalf("stored failures %d, want 2", u.Failures())
	}
	noErr(t, td.Login(ctx, s, RoleCryptoUser, "alice", cuPW))
	if u := storedUser(t, td, "alice"); u.Failures() != 0 {
		t.Fatalf("stored failures %d after success, want 0", u.Failures())
	}

	// A failure is counted in memory even when the store fails.
	noErr(t, td.Logout(s))
	cs.mu.Lock()
	cs.failPuts, cs.failError = true, errors.New("disk on fire")
	cs.mu.Unlock()
	wantRefusal(t, td.Login(ctx, s, RoleCryptoUser, "alice", "wrong-password"), ErrDevice)
	if u := td.user("alice"); u.Failures() != 1 {
		t.Fatalf("in-memory failures %d, want 1", u.Failures())
	}
}

// yieldStore yields the processor inside every user write, so concurrent
// writers would overlap there, and records the most writes in flight.
type yieldStore struct {
	*memStore
	inFlight, most atomic.Int32
}

func (y *yieldStore) Put(ctx context.Context, k RecordKind, id string, data []byte) error {
	if k == RecordUser {
		n := y.inFlight.Add(1)
		defer y.inFlight.Add(-1)
		for m := y.most.Load(); n > m; m = y.most.Load() {
			if y.most.CompareAndSwap(m, n) {
				break
			}
		}
		for range 50 {
			runtime.Gosched()
		}
	}
	return y.memStore.Put(ctx, k, id, data)
}

func TestLoginConcurrentFailuresAllCount(t *testing.T) {
	ctx := t.Context()
	st, au := newMemStore(), &memAudit{}
	ys := &yieldStore{memStore: st}
	d, err := New(ctx, Config{Store: ys, Audit: au, Password: testCost, MaxLoginFailures: 1000})
	noErr(t, err)
	td := &testDevice{d, st, au}
	admin := activateDevice(t, td)
	noErr(t, td.CreateUser(ctx, admin, "alice", RoleCryptoUser, cuPW, Approvals{}))
	const n = 64
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = td.Login(ctx, td.OpenSession(), RoleCryptoUser, "alice", "wrong-password")
		})
	}
	wg.Wait()
	for _, err := range errs {
		wantRefusal(t, err, ErrPinIncorrect)
	}
	if u := td.user("alice"); u.Failures() != n {
		t.Fatalf("failures %d, want %d", u.Failures(), n)
	}
	if u := storedUser(t, td, "alice"); u.Failures() != n {
		t.Fatalf("stored failures %d, want %d", u.Failures(), n)
	}
	if m := ys.most.Load(); m != 1 {
		t.Fatalf("%d user writes overlapped; they must be serialized", m)
	}
}

// BenchmarkLogin measures a login at the production password cost.
func BenchmarkLogin(b *testing.B) {
	for _, fips := range []bool{false, true} {
		b.Run(fmt.Sprintf("fips=%v", fips), func(b *testing.B) {
			ctx := b.Context()
			d, err := New(ctx, Config{Store: newMemStore(), Audit: &memAudit{}, FIPS: fips})
			noErr(b, err)
			td := &testDevice{Device: d}
			s := activateDevice(b, td)
			noErr(b, td.Logout(s))
			b.ResetTimer()
			for b.Loop() {
				if err := td.Login(ctx, s, RoleAdmin, DefaultAdminName, adminPW); err != nil {
					b.Fatal(err)
				}
				if err := td.Logout(s); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
		})
	}
}

// TestPasswordHashingBounded: however many logins arrive at once, no more
// password hashes run than Config.MaxConcurrentHashes; the others queue and
// complete, and one whose caller gives up while queued leaves, uncounted.
func TestPasswordHashingBounded(t *testing.T) {
	ctx := t.Context()
	const bound = 2
	td := newDeviceWith(t, Config{MaxConcurrentHashes: bound})
	admin := activateDevice(t, td)
	noErr(t, td.CreateUser(ctx, admin, "alice", RoleCryptoUser, cuPW, Approvals{}))

	var inside, most atomic.Int32
	gate := make(chan struct{})
	td.hashes.inside = func() {
		n := inside.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-gate
		inside.Add(-1)
	}
	// Every path that hashes: logins (known, unknown, wrong password),
	// user creation and password changes.
	calls := []struct {
		name string
		call func() error
		want *Kind
	}{
		{"login", func() error { return td.Login(ctx, td.OpenSession(), RoleCryptoUser, "alice", cuPW) }, nil},
		{"login 2", func() error { return td.Login(ctx, td.OpenSession(), RoleCryptoUser, "alice", cuPW) }, nil},
		{"unknown user", func() error { return td.Login(ctx, td.OpenSession(), RoleCryptoUser, "mallory", cuPW) }, ErrPinIncorrect},
		{"unknown user 2", func() error { return td.Login(ctx, td.OpenSession(), RoleCryptoUser, "eve", cuPW) }, ErrPinIncorrect},
		{"wrong password", func() error { return td.Login(ctx, td.OpenSession(), RoleCryptoUser, "alice", "wrong-password") }, ErrPinIncorrect},
		{"create user", func() error { return td.CreateUser(ctx, admin, "bob", RoleCryptoUser, cuPW, Approvals{}) }, nil},
		{"change password", func() error { return td.ChangePassword(ctx, admin, DefaultAdminName, "admin-password-9", Approvals{}) }, nil},
	}
	errs := make([]error, len(calls))
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Go(func() { errs[i] = c.call() })
	}
	for left := len(calls); left > 0; left-- {
		waitUntil(t, func() bool { return inside.Load() >= int32(min(bound, left)) })
		gate <- struct{}{}
	}
	wg.Wait()
	if m := most.Load(); m > bound {
		t.Errorf("%d password hashes ran at once, bound %d", m, bound)
	}
	for i, c := range calls {
		if c.want == nil {
			if errs[i] != nil {
				t.Errorf("%s: %v", c.name, errs[i])
			}
			continue
		}
		if !errors.Is(errs[i], c.want) {
			t.Errorf("%s: %v, want %v", c.name, errs[i], c.want)
		}
	}

	// With every slot taken, a login whose caller gives up returns and
	// counts nothing.
	before := td.user("alice").Failures()
	for range bound {
		wg.Go(func() { _ = td.Login(ctx, td.OpenSession(), RoleCryptoUser, "mallory", cuPW) })
	}
	waitUntil(t, func() bool { return inside.Load() == bound })
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- td.Login(cctx, td.OpenSession(), RoleCryptoUser, "alice", "wrong-password") }()
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Errorf("queued login after cancel: %v", err)
	}
	if got := td.user("alice").Failures(); got != before {
		t.Errorf("a cancelled login counted: failures %d, want %d", got, before)
	}
	close(gate)
	wg.Wait()
}

// waitUntil polls cond until it holds, failing the test after 10 s.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10 s")
		}
		runtime.Gosched()
	}
}

// TestPasswordHashesTakeASlot checks, in the source, that nothing but the
// hash-slot wrappers computes a password hash: every path that hashes waits
// for a slot (Config.MaxConcurrentHashes).
func TestPasswordHashesTakeASlot(t *testing.T) {
	raw := map[string]bool{"hashPassword": true, "verifyPassword": true, "burnPassword": true}
	wrappers := map[string]bool{"newPasswordHash": true, "passwordMatches": true, "burnLogin": true}
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	noErr(t, err)
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		noErr(t, err)
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				if id, ok := call.Fun.(*ast.Ident); ok && raw[id.Name] && !(fd.Recv != nil && wrappers[fd.Name.Name]) {
					t.Errorf("%s: %s calls %s outside a hash slot", fset.Position(call.Pos()), fd.Name.Name, id.Name)
				}
				return true
			})
		}
	}
}
