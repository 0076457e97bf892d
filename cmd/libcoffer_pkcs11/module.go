package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/coffer-hsm/coffer/internal/client"
	"github.com/coffer-hsm/coffer/internal/cryptoki"
)

// The library's process-wide state: what C_Initialize sets and C_Finalize
// clears, the logger, and the handle counter that outlives both (handles
// are never reused in a process).
var lib struct {
	handles cryptoki.Handles

	// mu serializes C_Initialize and C_Finalize; mod is read without it.
	mu      sync.Mutex
	mod     atomic.Pointer[cryptoki.Module]
	calls   *dispatcher
	log     atomic.Pointer[slog.Logger]
	logFile *os.File
	// toldStderr is set once the library has said on standard error that
	// it found no configuration, so a process is told once.
	toldStderr atomic.Bool
}

// ConfigEnv names the configuration file; DefaultConfig is used without it.
const (
	ConfigEnv     = "COFFER_PKCS11_CONFIG"
	DefaultConfig = "/etc/coffer/pkcs11.json"
	// fallbackLog is where the library logs when the configuration names
	// no log file or cannot be read. The library writes to standard error
	// only once, when it cannot read its configuration (noConfig).
	fallbackLog = "coffer-pkcs11.log"
)

var discard = slog.New(slog.DiscardHandler)

func logger() *slog.Logger {
	if l := lib.log.Load(); l != nil {
		return l
	}
	return discard
}

func module() *cryptoki.Module { return lib.mod.Load() }

// libVersion is the library's version for CK_INFO: major.minor of the
// module version it was built as, 0.1 for a development build.
func libVersion() [2]byte {
	v := [2]byte{0, 1}
	if bi, ok := debug.ReadBuildInfo(); ok {
		var major, minor int
		if _, err := fmt.Sscanf(bi.Main.Version, "v%d.%d", &major, &minor); err == nil {
			v = [2]byte{byte(major), byte(minor)}
		}
	}
	return v
}

// openLog opens the log file named (or the fallback in the temporary
// directory) and returns a logger writing to it.
func openLog(path, level string) (*slog.Logger, *os.File) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(strings.ToUpper(level))); level == "" || err != nil {
		lv = slog.LevelInfo
	}
	for _, p := range []string{path, filepath.Join(os.TempDir(), fallbackLog)} {
		if p == "" {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			continue
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			continue
		}
		return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: lv})).With("pid", os.Getpid()), f
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil)), nil
}

// noConfig tells standard error, once per process, that the configuration
// could not be read: with no configuration there is no log file a person
// would look in, and C_Initialize's CKR_FUNCTION_FAILED says nothing more.
// The line names the file, why it failed and what to do; the file holds
// only addresses and paths, never a secret. It is written with one write(2)
// on descriptor 2, not through os.Stderr, whose EPIPE handling would raise
// SIGPIPE and could end the host process; a failed write is ignored.
func noConfig(path string, err error) {
	if !lib.toldStderr.CompareAndSwap(false, true) {
		return
	}
	line := fmt.Sprintf("coffer-pkcs11: C_Initialize: cannot read configuration %s (%v): "+
		"set %s to the file `coffer configure pkcs11` wrote, or write one with "+
		"`coffer configure pkcs11 -a HOST:PORT --hsm-ca-cert CA.pem`\n",
		path, err, ConfigEnv)
	_, _ = syscall.Write(2, []byte(line))
}

// initialize reads the configuration and makes the module.
func initialize(ctx context.Context) error {
	if module() != nil {
		return errAlreadyInitialized
	}
	path := getenv(ConfigEnv)
	if path == "" {
		path = DefaultConfig
	}
	f, err := client.ReadFile(path)
	if err != nil {
		setLogger(openLog("", ""))
		noConfig(path, err)
		return fmt.Errorf("%w (set %s to the file `coffer configure pkcs11` wrote, or run it)", err, ConfigEnv)
	}
	setLogger(openLog(f.Logging.File, f.Logging.Level))
	log := logger()
	// One slot per configured cluster (configure pkcs11 add-cluster), in
	// the file's order: slot 0 is the first cluster.
	var slots []cryptoki.SlotConfig
	for _, id := range f.ClusterIDs() {
		one, err := f.ForCluster(id)
		if err != nil {
			return fmt.Errorf("configuration %s: %w", path, err)
		}
		clusterCfg, err := one.Config(log)
		if err != nil {
			return fmt.Errorf("configuration %s: cluster %s: %w", path, id, err)
		}
		slots = append(slots, cryptoki.SlotConfig{
			ClusterID: id,
			Dial: func(ctx context.Context) (cryptoki.Cluster, error) {
				c, err := client.Dial(ctx, clusterCfg)
				if err != nil {
					return nil, err
				}
				return cryptoki.ClientCluster(c), nil
			},
		})
	}
	if len(slots) == 0 {
		if err := f.Check(); err != nil {
			return fmt.Errorf("configuration %s: %w", path, err)
		}
	}
	m, err := cryptoki.New(ctx, cryptoki.Config{
		Handles: &lib.handles,
		Logger:  log,
		Version: libVersion(),
		Slots:   slots,
	})
	if err != nil {
		return err
	}
	d, err := startDispatcher()
	if err != nil {
		m.Close(ctx)
		return err
	}
	lib.calls = d
	lib.mod.Store(m)
	log.Info("initialized", "config", path, "clusters", f.ClusterIDs(), "hsms", f.HSMs)
	return nil
}

var errAlreadyInitialized = errors.New("already initialized")

func setLogger(l *slog.Logger, f *os.File) {
	if lib.logFile != nil {
		lib.logFile.Close()
	}
	lib.log.Store(l)
	lib.logFile = f
}

// finalize closes the module; the Go runtime stays (it lives as long as the
// host process).
func finalize(ctx context.Context) {
	m := lib.mod.Swap(nil)
	if m == nil {
		return
	}
	lib.calls.stop()
	lib.calls = nil
	if err := m.Close(ctx); err != nil {
		logger().Warn("finalize", "err", err)
	}
	logger().Info("finalized")
}
