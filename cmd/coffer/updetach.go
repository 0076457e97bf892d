package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coffer-hsm/coffer/internal/durable"
)

// The files of a running `coffer up` in its data directory:
//
//	up.lock  held (flock) by the coffer up that serves DIR, for its lifetime
//	up.pid   its pid, written (atomically) once it holds the lock, removed when it stops
//	up.log   the log of a detached coffer up (appended to by each run)
const (
	upLockName = "up.lock"
	upPidName  = "up.pid"
	upLogName  = "up.log"

	// upNotifyEnv names the file descriptor on which a coffer up started
	// by `coffer up --detach` says "ready" once the cluster is usable.
	upNotifyEnv = "COFFER_UP_NOTIFY_FD"

	upStopTimeout   = time.Minute      // SIGTERM to SIGKILL of coffer up
	nodeStopTimeout = 15 * time.Second // SIGTERM to SIGKILL of a leftover HSM node
	upLogTailLines  = 30
)

// errUpRunning: another coffer up serves the data directory.
var errUpRunning = errors.New("coffer up already runs on this data directory")

// upLock is the lock of a data directory, held by the coffer up serving it.
type upLock struct {
	f       *os.File
	pidPath string
}

// lockUp takes DIR's lock for this process and records its pid, or says
// which coffer up holds it.
func lockUp(dir string) (*upLock, error) {
	f, err := os.OpenFile(filepath.Join(dir, upLockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, upRunningError(dir, readPid(filepath.Join(dir, upPidName)))
		}
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	l := &upLock{f: f, pidPath: filepath.Join(dir, upPidName)}
	if err := durable.WriteFileAll(l.pidPath, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

// release removes the pid file, then lets the lock go.
func (l *upLock) release() {
	os.Remove(l.pidPath)
	l.f.Close()
}

func upRunningError(dir string, pid int) error {
	who := ""
	if pid > 0 {
		who = fmt.Sprintf(" (pid %d)", pid)
	}
	return fmt.Errorf("%w: %s%s; `coffer down --data-dir %s` stops it", errUpRunning, dir, who, shellQuote(dir))
}

// upRunning reports whether a coffer up holds DIR's lock, and its pid (0
// if it has not written it yet).
func upRunning(dir string) (pid int, running bool, err error) {
	if running, err = upLockHeld(dir); !running || err != nil {
		return 0, running, err
	}
	// The holder writes its pid just after it took the lock (and removes
	// it just before it lets the lock go).
	pidPath := filepath.Join(dir, upPidName)
	waitUntilFor(func() bool {
		if pid = readPid(pidPath); pid > 0 {
			return true
		}
		running, err = upLockHeld(dir)
		return !running || err != nil
	}, 5*time.Second)
	if !running || err != nil {
		return 0, running, err
	}
	return pid, true, nil
}

// upLockHeld reports whether a process holds DIR's lock.
func upLockHeld(dir string) (bool, error) {
	f, err := os.OpenFile(filepath.Join(dir, upLockName), os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	defer f.Close()
	switch err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); {
	case err == nil:
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return false, nil
	case errors.Is(err, syscall.EWOULDBLOCK):
		return true, nil
	default:
		return false, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
}

func readPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// upDetach starts `coffer up ARGS` in the background (a session of its
// own, stdin /dev/null, its output appended to DIR/up.log) and returns once
// it says the cluster is ready; otherwise, within wait, it stops it and
// fails with the end of its log.
func upDetach(ctx context.Context, dir string, args []string, wait time.Duration, stdout io.Writer) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if pid, running, err := upRunning(dir); err != nil {
		return err
	} else if running {
		return upRunningError(dir, pid)
	}
	exe, err := cofferExecutable()
	if err != nil {
		return err
	}
	logPath := filepath.Join(dir, upLogName)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	logStart, err := logf.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "--- coffer up --detach, %s\n", time.Now().UTC().Format(time.RFC3339))
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer devNull.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	cmd := exec.Command(exe, append([]string{"up"}, args...)...)
	cmd.Env = append(os.Environ(), upNotifyEnv+"=3") // ExtraFiles[0] is fd 3
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devNull, logf, logf
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return fmt.Errorf("start coffer up: %w", err)
	}
	pid := cmd.Process.Pid
	said := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(r, 64))
		said <- strings.TrimSpace(string(b))
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	fail := func(reason string) error {
		return fmt.Errorf("coffer up --detach: %s; the end of %s:\n%s", reason, logPath, upLogTail(logPath, logStart, upLogTailLines))
	}
	// stop ends the child that did not become ready, and its HSMs.
	stop := func() string {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(upStopTimeout):
			cmd.Process.Kill()
			<-exited
		}
		if _, err := stopLeftoverNodes(dir); err != nil {
			return "; " + err.Error()
		}
		return ""
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case s := <-said:
		if s != "ready" {
			// It closed the pipe without saying it: it exited, or is exiting.
			select {
			case err := <-exited:
				return fail(fmt.Sprintf("coffer up exited before the cluster was ready (%v)", err))
			case <-time.After(10 * time.Second):
				return fail("coffer up stopped saying how it is before the cluster was ready" + stop())
			}
		}
	case err := <-exited:
		return fail(fmt.Sprintf("coffer up exited before the cluster was ready (%v)", err))
	case <-timer.C:
		return fail(fmt.Sprintf("the cluster was not ready within --wait-timeout %v; stopped it%s", wait, stop()))
	case <-ctx.Done():
		return fail("interrupted before the cluster was ready; stopped it" + stop())
	}
	upPath := filepath.Join(dir, "up.json")
	up, err := readUpFile(upPath, io.Discard)
	if err != nil {
		return err
	}
	printUpUsageHow(stdout, up, upPath, fmt.Sprintf("in the background, pid %d, its log in %s; `coffer down --data-dir %s` stops it; run again to resume",
		pid, logPath, shellQuote(dir)))
	return nil
}

// upLogTail is the last n lines of the file at path from offset on.
func upLogTail(path string, offset int64, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return err.Error()
	}
	const max = 1 << 20
	if fi, err := f.Stat(); err == nil && fi.Size()-offset > max {
		f.Seek(fi.Size()-max, io.SeekStart)
	}
	b, _ := io.ReadAll(io.LimitReader(f, max))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// upChildArgs are the flags that were set, for the coffer up that
// --detach starts, without --detach and --wait-timeout, and with the
// absolute data directory.
func upChildArgs(fs *flag.FlagSet, dir string) []string {
	args := []string{"--data-dir=" + dir}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "detach", "wait-timeout", "data-dir":
			return
		case "backup-key", "backup-stores":
			args = append(args, "--"+f.Name+"="+absOrEmpty(f.Value.String()))
		default:
			args = append(args, "--"+f.Name+"="+f.Value.String())
		}
	})
	return args
}

// upNotifier is how a coffer up started by --detach says it is ready:
// the pipe its parent named in COFFER_UP_NOTIFY_FD (nil: none). The
// variable is removed and the descriptor made close-on-exec, so the HSM
// nodes this process starts inherit neither (an inherited write end would
// keep the parent waiting after this process died).
func upNotifier() *os.File {
	v, ok := os.LookupEnv(upNotifyEnv)
	if !ok {
		return nil
	}
	os.Unsetenv(upNotifyEnv)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil
	}
	syscall.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), "coffer up notify")
}

const downUsage = `usage: coffer down --data-dir DIR [--timeout 1m]

Stops the coffer up that serves DIR (started with --detach, or running in
the foreground) and every HSM node it started: SIGTERM, then SIGKILL after
--timeout, and checks that none is left. DIR stays as it is: coffer up
--data-dir DIR brings the same cluster back, with its users and keys. If
nothing runs it says "not running" and exits 0.

`

func runDown(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("down", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "", "the data directory of coffer up")
	timeout := fs.Duration("timeout", upStopTimeout, "how long coffer up has to stop its HSMs and exit before it is killed")
	fs.Usage = func() {
		fmt.Fprint(stderr, downUsage)
		printFlags(fs)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dataDir == "" || fs.NArg() > 0 {
		fs.Usage()
		return errors.New("--data-dir is required")
	}
	dir, err := filepath.Abs(*dataDir)
	if err != nil {
		return err
	}
	pid, running, err := upRunning(dir)
	if err != nil {
		return err
	}
	if running {
		if pid == 0 {
			return fmt.Errorf("a coffer up holds %s but wrote no pid in %s", filepath.Join(dir, upLockName), filepath.Join(dir, upPidName))
		}
		if !mayBeCofferUp(pid) {
			return fmt.Errorf("%s names pid %d, which is not a coffer up; not signalling it", filepath.Join(dir, upPidName), pid)
		}
		fmt.Fprintf(stdout, "coffer down: stopping coffer up (pid %d) and its HSMs\n", pid)
		syscall.Kill(pid, syscall.SIGTERM)
		stopped := func() bool {
			held, err := upLockHeld(dir)
			return err == nil && !held || !processAlive(pid)
		}
		if !waitUntilCtx(ctx, stopped, *timeout) {
			fmt.Fprintf(stderr, "coffer down: coffer up (pid %d) did not stop within %v; killing it\n", pid, *timeout)
			syscall.Kill(pid, syscall.SIGKILL)
			if !waitUntilFor(func() bool { return !processAlive(pid) }, 10*time.Second) {
				return fmt.Errorf("coffer up (pid %d) still runs after SIGKILL", pid)
			}
		}
	}
	n, err := stopLeftoverNodes(dir)
	if err != nil {
		return err
	}
	switch {
	case !running && n == 0:
		fmt.Fprintln(stdout, "coffer down: not running")
	case n > 0:
		fmt.Fprintf(stdout, "coffer down: stopped %d HSM node(s) left running\n", n)
	}
	if running {
		fmt.Fprintln(stdout, "coffer down: stopped; `coffer up --data-dir "+shellQuote(dir)+"` resumes the same cluster")
	}
	return nil
}

// stopLeftoverNodes stops every HSM node of DIR that still runs (coffer up
// stops its own; these are left by one that was killed): SIGTERM to its
// process group, SIGKILL after nodeStopTimeout. It fails if one survives.
func stopLeftoverNodes(dir string) (int, error) {
	pidFiles, err := filepath.Glob(filepath.Join(dir, "controlplane", "hsm-side", "*", "*", "*", "node.pid"))
	if err != nil {
		return 0, err
	}
	type node struct {
		pid int
		dir string
	}
	var live []node
	for _, p := range pidFiles {
		n := node{readPid(p), filepath.Dir(p)}
		if n.pid > 0 && nodeAlive(n.pid, n.dir) {
			live = append(live, n)
		}
	}
	for _, n := range live {
		syscall.Kill(-n.pid, syscall.SIGTERM) // the node leads its own process group
	}
	gone := func() bool {
		return !slices.ContainsFunc(live, func(n node) bool { return nodeAlive(n.pid, n.dir) })
	}
	if !waitUntilFor(gone, nodeStopTimeout) {
		for _, n := range live {
			if nodeAlive(n.pid, n.dir) {
				syscall.Kill(-n.pid, syscall.SIGKILL)
			}
		}
		if !waitUntilFor(gone, 10*time.Second) {
			var left []string
			for _, n := range live {
				if nodeAlive(n.pid, n.dir) {
					left = append(left, strconv.Itoa(n.pid))
				}
			}
			return len(live), fmt.Errorf("HSM node(s) %s still run after SIGKILL", strings.Join(left, ", "))
		}
	}
	return len(live), nil
}

// nodeAlive: pid runs and is the `coffer hsm run` of the HSM in hsmDir
// (not another process that got the pid since).
func nodeAlive(pid int, hsmDir string) bool {
	if !processAlive(pid) {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return true // no /proc: trust the pid
	}
	return bytes.Contains(cmdline, []byte(filepath.Join(hsmDir, "hsm.json")))
}

// mayBeCofferUp: pid's command line is `... up ...`, or pid is gone
// already (signalling it does nothing), or there is no /proc to read.
func mayBeCofferUp(pid int) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(cmdline) == 0 { // a zombie's is empty
		return true
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	return len(args) > 1 && args[1] == "up"
}

// flagSet reports whether the flag name was given.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// processAlive: pid exists and is not a zombie (a process whose parent
// died is reaped by init, which some containers lack).
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	// "pid (comm) S ...": the state follows the last ')'.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		switch stat[i+2] {
		case 'Z', 'X', 'x':
			return false
		}
	}
	return true
}

// waitUntilFor polls cond until it holds or d passed.
func waitUntilFor(cond func() bool, d time.Duration) bool {
	return waitUntilCtx(context.Background(), cond, d)
}

// waitUntilCtx polls cond until it holds, d passed or ctx is done.
func waitUntilCtx(ctx context.Context, cond func() bool, d time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return cond()
		case <-t.C:
		}
	}
}
