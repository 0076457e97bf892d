package controlplane

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TargetPrefix is the X-Amz-Target prefix of cloudhsmv2 operations.
const TargetPrefix = "BaldrApiService."

// maxBody bounds a request body: the largest request, InitializeCluster
// with two certificates of 20000 characters, fits even with every
// character JSON-escaped as \uXXXX (240,000 bytes).
const maxBody = 256 << 10

// Server is the control plane: the API handler and the reconciler that
// makes HSMs match the records.
type Server struct {
	cfg         Config
	log         *slog.Logger
	db          *bolt.DB
	prov        Provisioner
	credentials map[string]Credential
	replays     *replayCache
	kick        chan struct{} // wakes the reconciler; buffered 1

	// mu guards regions and every record in them. Provisioning never runs
	// under it: the reconciler copies what it needs, works, then applies.
	mu      sync.Mutex
	regions map[string]*regionState
	// tried holds the backups tried in the reconciler's current pass, so
	// that each is tried at most once a pass.
	tried map[string]bool
}

type regionState struct {
	index    int
	cfg      Region
	subnets  map[string]Subnet // by id
	clusters map[string]*clusterRecord
	backups  map[string]*backupRecord
	store    BlobStore // the region's backup blobs
}

// New opens the control plane's database under cfg.DataDir and loads its
// state. Run starts the reconciler; Handler serves the API.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ReconcileInterval == 0 {
		cfg.ReconcileInterval = time.Second
	}
	if cfg.DeletedBackupRetention == 0 {
		cfg.DeletedBackupRetention = 7 * 24 * time.Hour
	}
	if cfg.BackupInterval == 0 {
		cfg.BackupInterval = 24 * time.Hour
	}
	if cfg.BackupTimeout == 0 {
		cfg.BackupTimeout = 10 * time.Minute
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = defaultReadTimeout
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = defaultWriteTimeout
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = defaultIdleTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	s := &Server{
		cfg: cfg, log: cfg.Logger, prov: cfg.Provisioner, kick: make(chan struct{}, 1),
		credentials: map[string]Credential{}, regions: map[string]*regionState{},
		replays: newReplayCache(cfg.ReplayCacheSize),
	}
	for _, c := range cfg.Credentials {
		s.credentials[c.AccessKeyID] = c
	}
	for i, r := range cfg.Regions {
		rs := &regionState{index: cfg.AddressBase + i, cfg: r, subnets: map[string]Subnet{},
			clusters: map[string]*clusterRecord{}, backups: map[string]*backupRecord{}}
		for _, sn := range r.Subnets {
			rs.subnets[sn.ID] = sn
		}
		store, err := openBlobStore(cfg.DataDir, r)
		if err != nil {
			return nil, err
		}
		rs.store = store
		s.regions[r.Name] = rs
	}
	db, err := openDB(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	s.db = db
	if err := s.load(); err != nil {
		db.Close()
		return nil, fmt.Errorf("controlplane: load state: %w", err)
	}
	return s, nil
}

// HSMAddresses returns the host:port of every HSM of a cluster whose node
// has a port, in creation order: what a client configuration lists. (The
// API shows EniIp only; the port is 2223 unless that was taken.)
func (s *Server) HSMAddresses(region, clusterID string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.regions[region]
	if !ok {
		return nil, notFound("Region %s is not served.", region)
	}
	cl, ok := r.clusters[clusterID]
	if !ok {
		return nil, notFound("Cluster %s not found in region %s.", clusterID, region)
	}
	var out []string
	for _, h := range cl.HSMs {
		if h.Port != 0 && h.State != HsmDeleteInProgress {
			out = append(out, net.JoinHostPort(h.EniIP, strconv.Itoa(h.Port)))
		}
	}
	return out, nil
}

// Close closes the database. Stop Run first.
func (s *Server) Close() error { return s.db.Close() }

func (s *Server) now() time.Time { return s.cfg.Now() }

// wake asks the reconciler to look now.
func (s *Server) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// call is one API request after authentication.
type call struct {
	ctx     context.Context
	region  *regionState
	account string
}

// operation is one API operation.
type operation struct {
	run func(s *Server, c *call, body []byte) (any, error)
	// readOnly operations change nothing: a replay of one is served (the
	// replay cache holds the signatures of the others).
	readOnly bool
}

// operations is every operation of the cloudhsmv2 model.
var operations = map[string]operation{
	"CreateCluster":          {run: (*Server).createCluster},
	"DescribeClusters":       {run: (*Server).describeClusters, readOnly: true},
	"InitializeCluster":      {run: (*Server).initializeCluster},
	"ModifyCluster":          {run: (*Server).modifyCluster},
	"DeleteCluster":          {run: (*Server).deleteCluster},
	"CreateHsm":              {run: (*Server).createHsm},
	"DeleteHsm":              {run: (*Server).deleteHsm},
	"DescribeBackups":        {run: (*Server).describeBackups, readOnly: true},
	"DeleteBackup":           {run: (*Server).deleteBackup},
	"RestoreBackup":          {run: (*Server).restoreBackup},
	"CopyBackupToRegion":     {run: (*Server).copyBackupToRegion},
	"ModifyBackupAttributes": {run: (*Server).modifyBackupAttributes},
	"TagResource":            {run: (*Server).tagResource},
	"UntagResource":          {run: (*Server).untagResource},
	"ListTags":               {run: (*Server).listTags, readOnly: true},
	"GetResourcePolicy":      {run: (*Server).getResourcePolicy, readOnly: true},
	"PutResourcePolicy":      {run: (*Server).putResourcePolicy},
	"DeleteResourcePolicy":   {run: (*Server).deleteResourcePolicy},
}

// Handler serves the API at any path (the SDKs post to "/").
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Limits of the API's HTTP server (docs/design.md: Control plane).
const (
	readHeaderTimeout   = 10 * time.Second
	defaultReadTimeout  = 30 * time.Second
	defaultWriteTimeout = 30 * time.Second
	defaultIdleTimeout  = 2 * time.Minute
	maxHeaderBytes      = 64 << 10
)

// HTTPServer is an http.Server for Handler with the control plane's limits:
// a client has ReadTimeout to send a request (headers within 10 s),
// WriteTimeout to take the answer, IdleTimeout between requests on a
// connection, and at most 64 KiB of headers and maxBody of body.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: min(readHeaderTimeout, s.cfg.ReadTimeout),
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := s.requestID()
	w.Header().Set("X-Amzn-Requestid", reqID)
	out, op, err := s.serve(w, r)
	if err != nil {
		status, typ, msg, internal := wireError(err)
		if internal {
			s.log.Error("request failed", "op", op, "request_id", reqID, "err", err)
		} else {
			s.log.Debug("request refused", "op", op, "request_id", reqID, "type", typ, "message", msg)
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("X-Amzn-Errortype", typ)
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
		return
	}
	b, err := json.Marshal(out)
	if err != nil {
		s.log.Error("encode response", "op", op, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Write(b)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) (any, string, error) {
	if r.Method != http.MethodPost {
		return nil, "", refuse(ErrMethodNotAllowed, "Only POST is supported.")
	}
	tooLarge := refuse(ErrTooLarge, "Request body larger than %d bytes.", maxBody)
	if r.ContentLength > maxBody {
		return nil, "", tooLarge
	}
	// MaxBytesReader also closes the connection after a body too large.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, "", tooLarge
		}
		return nil, "", refuse(ErrSerialization, "reading the request body: %v", err)
	}
	target := r.Header.Get("X-Amz-Target")
	opName, ok := strings.CutPrefix(target, TargetPrefix)
	op, known := operations[opName]
	if !ok || !known {
		return nil, "", refuse(ErrUnknownOperation, "Unknown operation %q.", truncate(target, 100))
	}
	if ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil ||
		(ct != "application/x-amz-json-1.1" && ct != "application/json") {
		return nil, opName, refuse(ErrUnsupportedFormat, "Content-Type must be application/x-amz-json-1.1.")
	}
	v, err := s.verifySigV4(r, body)
	if err != nil {
		return nil, opName, err
	}
	if !op.readOnly {
		if err := s.replays.first(v.signature, s.now()); err != nil {
			return nil, opName, err
		}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	out, err := op.run(s, &call{ctx: r.Context(), region: s.regions[v.region], account: v.cred.AccountID}, body)
	return out, opName, err
}

func (s *Server) requestID() string {
	var b [16]byte
	io.ReadFull(s.cfg.Rand, b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// decode reads a request body into v. Unknown fields are ignored, as AWS
// does; a body that is not JSON, or a field of the wrong JSON type, is a
// SerializationException.
func decode(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		var e *Error
		if errors.As(err, &e) {
			return e
		}
		return refuse(ErrSerialization, "could not parse the request: %v", err)
	}
	return nil
}
