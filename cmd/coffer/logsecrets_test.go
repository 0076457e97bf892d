package main

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
)

// TestLogsHoldNoSecrets runs a full local cluster (`coffer up`: the control
// plane and two HSM processes), works with it through the Go client (logging
// at debug level, as the PKCS#11 module's client does) and through `coffer
// cli`, with passwords and key values the test knows: users created and
// changed, a wrong password tried, an AES key imported with a known value
// and exported, generated keys exported. Then no password and no key byte
// string, raw, hex or base64, may appear in any file the run wrote (node
// logs, audit logs, the control plane's log, the client's log, the stores,
// configuration) or on any process's stdout or stderr.
func TestLogsHoldNoSecrets(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("coffer up puts its HSMs on loopback addresses of their own, which only Linux routes without setup")
	}
	dir := t.TempDir()
	coffer := cofferBinary(t, dir)
	data := filepath.Join(dir, "data")
	up := startUp(t, coffer, data)
	u := up

	var secrets secretSet
	secrets.add("admin password", []byte(up.file.Admin.Password))
	secrets.add("crypto user password", []byte(up.file.CryptoUser.Password))
	secrets.add("AWS secret access key", []byte(up.file.SecretAccessKey))

	ctx := t.Context()
	f, err := client.ReadFile(up.file.PKCS11Config)
	if err != nil {
		t.Fatal(err)
	}
	clientLog, err := os.Create(filepath.Join(dir, "client.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer clientLog.Close()
	cfg, err := f.Config(slog.New(slog.NewTextHandler(clientLog, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	cl := dialConfigT(t, cfg)
	admin := loginT(t, cl, "admin", up.file.Admin.Username, up.file.Admin.Password)

	// Users with known passwords: created, changed, a wrong one tried.
	const carol = "carol"
	carolPW1, carolPW2, wrongPW := "Carol-Secret-Pass-1", "Carol-Secret-Pass-2", "Wrong-Secret-Guess-9"
	for name, pw := range map[string]string{"carol's first password": carolPW1, "carol's second password": carolPW2, "a wrong password": wrongPW} {
		secrets.add(name, []byte(pw))
	}
	if err := admin.CreateUser(ctx, carol, "crypto-user", carolPW1, nil); err != nil {
		t.Fatal(err)
	}
	if err := admin.ChangePassword(ctx, carol, carolPW2, nil); err != nil {
		t.Fatal(err)
	}
	if err := loginOnce(ctx, cl, "crypto-user", carol, wrongPW); !refusedWith(err, ck.CKR_PIN_INCORRECT) {
		t.Fatalf("login with a wrong password: %v", err)
	}
	s := loginT(t, cl, "crypto-user", carol, carolPW2)

	// An AES key of a known value, imported and exported.
	known := make([]byte, 32)
	crand.Read(known)
	secrets.add("imported AES key", known)
	imported, err := s.CreateObject(ctx, []client.Attribute{
		{Type: ck.CKA_CLASS, Value: binary.LittleEndian.AppendUint64(nil, uint64(ck.CKO_SECRET_KEY))},
		{Type: ck.CKA_KEY_TYPE, Value: binary.LittleEndian.AppendUint64(nil, uint64(ck.CKK_AES))},
		{Type: ck.CKA_VALUE, Value: known},
		client.Bool(ck.CKA_TOKEN, true), client.Bool(ck.CKA_EXTRACTABLE, true), labelAttr("known-aes"),
	})
	if err != nil {
		t.Fatalf("import a known AES key: %v", err)
	}
	if got, err := s.ExportKey(ctx, imported); err != nil || !bytes.Equal(got, known) {
		t.Fatalf("export of the imported key: %x, %v", got, err)
	}
	// A generated AES key and an EC private key, exported: their values are
	// secrets from then on.
	gen, err := s.GenerateKey(ctx, mechAESKeyGen, append(aesTokenTemplate("generated-aes"), client.Bool(ck.CKA_EXTRACTABLE, true)))
	if err != nil {
		t.Fatal(err)
	}
	genValue, err := s.ExportKey(ctx, gen)
	if err != nil {
		t.Fatal(err)
	}
	secrets.add("generated AES key", genValue)
	_, priv, err := s.GenerateKeyPair(ctx, mechECKeyGen,
		[]client.Attribute{client.Bool(ck.CKA_TOKEN, true), labelAttr("generated-ec"), {Type: ck.CKA_EC_PARAMS, Value: p256Params(t)}},
		[]client.Attribute{client.Bool(ck.CKA_TOKEN, true), labelAttr("generated-ec"), client.Bool(ck.CKA_EXTRACTABLE, true)})
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := s.ExportKey(ctx, priv)
	if err != nil {
		t.Fatal(err)
	}
	secrets.add("exported EC private key (PKCS #8)", pkcs8)
	if k, err := x509.ParsePKCS8PrivateKey(pkcs8); err != nil {
		t.Fatal(err)
	} else if ec, ok := k.(*ecdsa.PrivateKey); !ok || ec.Curve != elliptic.P256() {
		t.Fatalf("exported EC key: %T", k)
	} else if d, err := ec.Bytes(); err != nil {
		t.Fatal(err)
	} else {
		secrets.add("EC private scalar", d)
	}
	// The key is used, so key-use paths log (or audit) what they do.
	iv := []byte("twelve bytes")
	if _, err := s.Encrypt(ctx, imported, gcmMech(iv), []byte("plaintext")); err != nil {
		t.Fatal(err)
	}

	// coffer cli, as an operator types it: a user with a known password.
	davePW := "Dave-Secret-Pass-1"
	secrets.add("dave's password", []byte(davePW))
	cliCfg := filepath.Join(dir, "cli.json")
	if err := f.WriteFile(cliCfg); err != nil {
		t.Fatal(err)
	}
	var cliOut []namedOutput
	for i, args := range [][]string{
		{"cli", "--cluster-config", cliCfg, "--username", up.file.Admin.Username, "--role", "admin",
			"user", "create", "--username", "dave", "--role", "crypto-user", "--password", davePW},
		{"cli", "--cluster-config", cliCfg, "--username", carol, "--role", "crypto-user", "key", "list"},
	} {
		cmd := exec.CommandContext(ctx, coffer, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		pw := up.file.Admin.Password
		if args[4] == carol {
			pw = carolPW2
		}
		cmd.Env = append(os.Environ(), "COFFER_CLI_PASSWORD="+pw, "XDG_CONFIG_HOME="+dir, "XDG_STATE_HOME="+dir)
		if err := cmd.Run(); err != nil {
			t.Fatalf("coffer %s: %v\n%s%s", strings.Join(args, " "), err, stdout.Bytes(), stderr.Bytes())
		}
		what := fmt.Sprintf("coffer cli command %d (%s)", i+1, args[len(args)-2])
		cliOut = append(cliOut, namedOutput{what + " (stdout)", stdout.Bytes()}, namedOutput{what + " (stderr)", stderr.Bytes()})
	}
	if err := loginOnce(ctx, cl, "crypto-user", "dave", davePW); err != nil {
		t.Fatalf("dave, made by coffer cli: %v", err)
	}

	// Stop everything, so every log is flushed, then search.
	s.Close(ctx)
	admin.Close(ctx)
	cl.Close()
	up.stop(t)

	outputs := append(cliOut, namedOutput{"coffer up (stderr, the control plane's log)", up.stderr()})
	outputs = append(outputs, namedOutput{"coffer up (stdout)", up.stdout()})
	var files []string
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		switch path {
		case filepath.Join(data, "up.json"), filepath.Join(data, "controlplane", "credentials.json"):
			// The secrets' own homes: readable by their owner only.
			if fi, err := d.Info(); err != nil || fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s holds secrets and is not 0600: %v %v", path, fi.Mode(), err)
			}
			return nil
		case u.stdoutF, u.stderrF, coffer: // searched separately; this test binary
			return nil
		}
		files = append(files, path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		outputs = append(outputs, namedOutput{strings.TrimPrefix(path, dir+"/"), b})
	}
	var kinds []string
	for _, o := range outputs {
		kinds = append(kinds, o.name)
		for _, hit := range secrets.find(o.data) {
			t.Errorf("%s holds the %s", o.name, hit)
		}
	}
	forms := 0
	for _, it := range secrets.items {
		forms += len(it.forms)
	}
	t.Logf("%d secrets (%d encodings) searched in %d files and outputs:\n  %s", len(secrets.items), forms,
		len(outputs), strings.Join(kinds, "\n  "))
}

type namedOutput struct {
	name string
	data []byte
}

// secretSet is byte strings that must not appear anywhere, each in the
// encodings a log line might carry it in.
type secretSet struct{ items []secretItem }

type secretItem struct {
	name  string
	forms map[string][]byte
}

func (s *secretSet) add(name string, secret []byte) {
	if len(secret) < 8 {
		panic("secret too short to search for: " + name)
	}
	item := secretItem{name: name, forms: map[string][]byte{
		"raw":        secret,
		"hex":        []byte(hex.EncodeToString(secret)),
		"HEX":        []byte(strings.ToUpper(hex.EncodeToString(secret))),
		"base64":     []byte(strings.TrimRight(base64.StdEncoding.EncodeToString(secret), "=")),
		"base64url":  []byte(strings.TrimRight(base64.URLEncoding.EncodeToString(secret), "=")),
		"Go escaped": []byte(strings.Trim(fmt.Sprintf("%q", secret), `"`)),
	}}
	if bytes.Equal(item.forms["Go escaped"], secret) {
		delete(item.forms, "Go escaped") // printable already
	}
	s.items = append(s.items, item)
}

// find names the secrets (and their encoding) that data holds.
func (s *secretSet) find(data []byte) []string {
	var out []string
	for _, it := range s.items {
		for form, b := range it.forms {
			if bytes.Contains(data, b) {
				out = append(out, fmt.Sprintf("%s (%s)", it.name, form))
			}
		}
	}
	return out
}

// runningUp is a `coffer up` process left running for a test.
type runningUp struct {
	cmd              *exec.Cmd
	file             upFile
	stdoutF, stderrF string
	exited           chan error
	stopped          bool
	stopErr          error
}

// startUp runs `coffer up` on a free port and its HSMs on loopback addresses
// of their own, and waits until it is up. It is stopped at the end of the
// test if the test has not stopped it.
func startUp(t *testing.T, coffer, data string) *runningUp {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	u := &runningUp{stdoutF: data + ".stdout", stderrF: data + ".stderr", exited: make(chan error, 1)}
	stdout, err := os.Create(u.stdoutF)
	if err != nil {
		t.Fatal(err)
	}
	defer stdout.Close()
	stderr, err := os.Create(u.stderrF)
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	u.cmd = exec.Command(coffer, "up", "--data-dir", data, "--listen", addr)
	u.cmd.Env = append(os.Environ(), fmt.Sprintf("COFFER_ADDRESS_BASE=%d", 20+rand.IntN(200)))
	u.cmd.Stdout, u.cmd.Stderr = stdout, stderr
	u.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := u.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { u.exited <- u.cmd.Wait() }()
	t.Cleanup(func() { u.stop(t) })
	deadline := time.Now().Add(3 * time.Minute)
	for !bytes.Contains(u.stdout(), []byte("Coffer is up")) {
		select {
		case err := <-u.exited:
			u.stopped, u.stopErr = true, err
			t.Fatalf("coffer up exited: %v\n%s", err, u.stderr())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("coffer up is not up after 3 minutes:\n%s", u.stderr())
		}
	}
	b, err := os.ReadFile(filepath.Join(data, "up.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &u.file); err != nil {
		t.Fatal(err)
	}
	return u
}

func (u *runningUp) stdout() []byte { b, _ := os.ReadFile(u.stdoutF); return b }
func (u *runningUp) stderr() []byte { b, _ := os.ReadFile(u.stderrF); return b }

// kill ends coffer up with SIGKILL: its HSMs keep running.
func (u *runningUp) kill(t *testing.T) {
	if u.stopped {
		t.Fatal("coffer up is not running")
	}
	u.stopped = true
	u.cmd.Process.Kill()
	<-u.exited
}

// stop ends coffer up with SIGINT (it stops its HSMs) and waits.
func (u *runningUp) stop(t *testing.T) {
	if u.stopped {
		return
	}
	u.stopped = true
	u.cmd.Process.Signal(syscall.SIGINT)
	select {
	case u.stopErr = <-u.exited:
	case <-time.After(time.Minute):
		u.cmd.Process.Kill()
		u.stopErr = <-u.exited
		t.Errorf("coffer up did not stop within a minute of SIGINT")
	}
	if u.stopErr != nil {
		t.Errorf("coffer up: %v\n%s", u.stopErr, lastLines(u.stderr(), 30))
	}
}

func lastLines(b []byte, n int) string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// dialConfigT dials cfg; the client is closed at the end of the test.
func dialConfigT(t *testing.T, cfg client.Config) *client.Cluster {
	t.Helper()
	cl, err := client.Dial(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}
