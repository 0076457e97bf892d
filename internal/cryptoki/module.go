package cryptoki

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
)

// SlotID, SessionHandle and ObjectHandle are CK_SLOT_ID, CK_SESSION_HANDLE
// and CK_OBJECT_HANDLE.
type (
	SlotID        uint
	SessionHandle uint
	ObjectHandle  uint
)

// Handles hands out session and object handles. Keep one per process and
// give it to every Module: handles are then never reused, even after
// C_Finalize and C_Initialize. The zero value is ready.
type Handles struct{ n atomic.Uint64 }

func (h *Handles) next() uint { return uint(h.n.Add(1)) }

// SlotConfig is one configured cluster.
type SlotConfig struct {
	// ClusterID names the cluster (token label and serial number).
	ClusterID string
	// Dial connects to the cluster. New calls it once; if it fails, the
	// slot dials again when it is next needed.
	Dial func(ctx context.Context) (Cluster, error)
}

// Config is what New needs.
type Config struct {
	Slots   []SlotConfig
	Handles *Handles     // required: the process's handle counter
	Logger  *slog.Logger // default: discard
	Version [2]byte      // library and firmware version (major, minor)
}

// Validate reports the first problem with c.
func (c *Config) Validate() error {
	if len(c.Slots) == 0 {
		return errors.New("cryptoki: no cluster configured")
	}
	if c.Handles == nil {
		return errors.New("cryptoki: no handle counter")
	}
	for i, s := range c.Slots {
		if s.Dial == nil {
			return fmt.Errorf("cryptoki: slot %d: no Dial", i)
		}
	}
	return nil
}

// Module is one initialized PKCS#11 library (C_Initialize to C_Finalize).
// It is safe for concurrent use.
type Module struct {
	cfg   Config
	log   *slog.Logger
	slots []*slot

	// mu guards sessions and objects. Invariant: every session in sessions
	// belongs to a slot of slots; every object handle names an object of
	// its slot's cluster that this Module learned of; a handle, once
	// removed, is never added again.
	mu       sync.RWMutex
	sessions map[SessionHandle]*session
	objects  map[ObjectHandle]objectRef
	byID     map[objectKey]ObjectHandle
	closed   bool
}

// New makes a Module and dials every slot's cluster once; a slot whose
// cluster does not answer dials again when it is next used.
func New(ctx context.Context, cfg Config) (*Module, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Module{
		cfg: cfg, log: cfg.Logger,
		sessions: map[SessionHandle]*session{},
		objects:  map[ObjectHandle]objectRef{},
		byID:     map[objectKey]ObjectHandle{},
	}
	for i, sc := range cfg.Slots {
		s := &slot{id: SlotID(i), cfg: sc, log: m.log.With("slot", i, "cluster", sc.ClusterID)}
		if _, err := s.cluster(ctx); err != nil {
			s.log.Warn("cluster not reachable at initialization; will dial again on use", "err", err)
		}
		m.slots = append(m.slots, s)
	}
	return m, nil
}

// Close logs out of every slot and closes the clusters.
func (m *Module) Close(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
	m.sessions = map[SessionHandle]*session{}
	m.mu.Unlock()
	var errs []error
	for _, s := range m.slots {
		s.loginMu.Lock()
		errs = append(errs, s.logout(ctx))
		s.mu.Lock()
		if s.cl != nil {
			errs = append(errs, s.cl.Close())
			s.cl = nil
		}
		s.mu.Unlock()
		s.loginMu.Unlock()
	}
	return errors.Join(errs...)
}

// slot is one cluster and its token.
type slot struct {
	id  SlotID
	cfg SlotConfig
	log *slog.Logger

	// loginMu serializes login and logout (which do I/O).
	loginMu sync.Mutex
	// mu guards the fields below; held only for short, I/O-free sections
	// (dialling excepted: nothing else can use a slot without a cluster).
	mu    sync.Mutex
	cl    Cluster
	mechs []client.MechanismInfo
	user  ck.UserType // loggedOut when no one is logged in
	sess  Session     // the logged-in client session, shared by the slot's sessions
	epoch uint64      // incremented at each login and logout
}

const loggedOut = ^ck.UserType(0)

func (s *slot) cluster(ctx context.Context) (Cluster, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cl != nil {
		return s.cl, nil
	}
	cl, err := s.cfg.Dial(ctx)
	if err != nil {
		return nil, err
	}
	s.cl = cl
	return cl, nil
}

// login returns the logged-in client session, its user type and epoch.
func (s *slot) login() (Session, ck.UserType, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sess == nil {
		return nil, loggedOut, s.epoch
	}
	return s.sess, s.user, s.epoch
}

// mechanisms returns the cluster's mechanism table, fetched once.
func (s *slot) mechanisms(ctx context.Context) ([]client.MechanismInfo, ck.RV) {
	s.mu.Lock()
	mechs := s.mechs
	s.mu.Unlock()
	if mechs != nil {
		return mechs, ck.CKR_OK
	}
	cl, err := s.cluster(ctx)
	if err != nil {
		s.log.Error("cluster not reachable", "err", err)
		return nil, ck.CKR_DEVICE_ERROR
	}
	mechs, err = cl.Mechanisms(ctx)
	if err != nil {
		s.log.Error("mechanism list", "err", err)
		return nil, client.Code(err)
	}
	mechs = slices.Clone(mechs)
	for i := range mechs {
		mechs[i] = toPKCS11Sizes(mechs[i])
	}
	slices.SortFunc(mechs, func(a, b client.MechanismInfo) int { return int(a.Type) - int(b.Type) })
	s.mu.Lock()
	s.mechs = mechs
	s.mu.Unlock()
	return mechs, ck.CKR_OK
}

// toPKCS11Sizes gives the key sizes of an AES mechanism in bytes, as
// CK_MECHANISM_INFO has them (PKCS#11 v3.0 §2.8); the HSM reports bits for
// every key type but generic secrets.
func toPKCS11Sizes(mi client.MechanismInfo) client.MechanismInfo {
	if mi.KeyType == ck.CKK_AES {
		mi.MinKeySize /= 8
		mi.MaxKeySize /= 8
	}
	return mi
}

func (m *Module) slot(id SlotID) (*slot, ck.RV) {
	if int(id) >= len(m.slots) {
		return nil, ck.CKR_SLOT_ID_INVALID
	}
	return m.slots[id], ck.CKR_OK
}

// Info is CK_INFO.
type Info struct {
	Manufacturer, Description string
	Version                   [2]byte
}

// Info answers C_GetInfo.
func (m *Module) Info() Info {
	return Info{Manufacturer: "Coffer", Description: "Coffer PKCS#11 library", Version: m.cfg.Version}
}

// Slots answers C_GetSlotList: every slot has its token.
func (m *Module) Slots() []SlotID {
	out := make([]SlotID, len(m.slots))
	for i := range out {
		out[i] = SlotID(i)
	}
	return out
}

// SlotInfo is CK_SLOT_INFO.
type SlotInfo struct {
	Description, Manufacturer string
	Flags                     ck.Flags
	Version                   [2]byte
}

// SlotInfo answers C_GetSlotInfo.
func (m *Module) SlotInfo(id SlotID) (SlotInfo, ck.RV) {
	s, rv := m.slot(id)
	if rv != ck.CKR_OK {
		return SlotInfo{}, rv
	}
	return SlotInfo{
		Description:  "Coffer cluster " + s.cfg.ClusterID,
		Manufacturer: "Coffer",
		Flags:        ck.CKF_TOKEN_PRESENT,
		Version:      m.cfg.Version,
	}, ck.CKR_OK
}

// TokenInfo is CK_TOKEN_INFO. Counts that Coffer does not know are
// CK_UNAVAILABLE_INFORMATION (Unavailable).
type TokenInfo struct {
	Label, Manufacturer, Model, Serial    string
	Flags                                 ck.Flags
	MaxSessions, Sessions                 uint
	MaxRWSessions, RWSessions             uint
	MaxPinLen, MinPinLen                  uint
	TotalPublicMemory, FreePublicMemory   uint
	TotalPrivateMemory, FreePrivateMemory uint
	Version                               [2]byte
}

// Unavailable is CK_UNAVAILABLE_INFORMATION.
const Unavailable = ^uint(0)

// effectivelyInfinite is CK_EFFECTIVELY_INFINITE.
const effectivelyInfinite = 0

// PIN lengths: "username:password", with the device's limits on both.
const (
	minPINLen = 3
	maxPINLen = 64 + 1 + 128
)

// tokenSerial is CK_TOKEN_INFO.serialNumber (16 characters) for a cluster:
// the id without its "cluster-" prefix, which every cluster shares, so the
// distinctive part shows whole ("cluster-dj74kvwmbs3" is "dj74kvwmbs3"). An
// id still longer than 16 keeps its last 16 characters, the end of a
// generated id being its random part.
func tokenSerial(clusterID string) string {
	serial := strings.TrimPrefix(clusterID, "cluster-")
	if serial == "" {
		serial = clusterID
	}
	if len(serial) > 16 {
		serial = serial[len(serial)-16:]
	}
	return serial
}

// TokenInfo answers C_GetTokenInfo.
func (m *Module) TokenInfo(id SlotID) (TokenInfo, ck.RV) {
	s, rv := m.slot(id)
	if rv != ck.CKR_OK {
		return TokenInfo{}, rv
	}
	var n, rw uint
	m.mu.RLock()
	for _, ss := range m.sessions {
		if ss.slot == s {
			n++
			if ss.rw {
				rw++
			}
		}
	}
	m.mu.RUnlock()
	serial := tokenSerial(s.cfg.ClusterID)
	return TokenInfo{
		Label:        s.cfg.ClusterID,
		Manufacturer: "Coffer",
		Model:        "Coffer cluster",
		Serial:       serial,
		// Coffer generates random numbers, needs a login, has its users'
		// PINs set by admins (not through C_InitToken) and has no clock
		// applications should rely on.
		Flags:       ck.CKF_RNG | ck.CKF_LOGIN_REQUIRED | ck.CKF_USER_PIN_INITIALIZED | ck.CKF_TOKEN_INITIALIZED,
		MaxSessions: effectivelyInfinite, Sessions: n,
		MaxRWSessions: effectivelyInfinite, RWSessions: rw,
		MaxPinLen: maxPINLen, MinPinLen: minPINLen,
		TotalPublicMemory: Unavailable, FreePublicMemory: Unavailable,
		TotalPrivateMemory: Unavailable, FreePrivateMemory: Unavailable,
		Version: m.cfg.Version,
	}, ck.CKR_OK
}

// MechanismList answers C_GetMechanismList.
func (m *Module) MechanismList(ctx context.Context, id SlotID) ([]ck.MechanismType, ck.RV) {
	s, rv := m.slot(id)
	if rv != ck.CKR_OK {
		return nil, rv
	}
	mechs, rv := s.mechanisms(ctx)
	if rv != ck.CKR_OK {
		return nil, rv
	}
	out := make([]ck.MechanismType, len(mechs))
	for i, mi := range mechs {
		out[i] = mi.Type
	}
	return out, ck.CKR_OK
}

// MechanismInfo answers C_GetMechanismInfo.
func (m *Module) MechanismInfo(ctx context.Context, id SlotID, mech ck.MechanismType) (client.MechanismInfo, ck.RV) {
	s, rv := m.slot(id)
	if rv != ck.CKR_OK {
		return client.MechanismInfo{}, rv
	}
	mechs, rv := s.mechanisms(ctx)
	if rv != ck.CKR_OK {
		return client.MechanismInfo{}, rv
	}
	i, ok := slices.BinarySearchFunc(mechs, mech, func(a client.MechanismInfo, t ck.MechanismType) int { return int(a.Type) - int(t) })
	if !ok {
		return client.MechanismInfo{}, ck.CKR_MECHANISM_INVALID
	}
	return mechs[i], ck.CKR_OK
}
