package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"

	"github.com/coffer-hsm/coffer/internal/client"
)

// Roles a user logs in with.
const (
	RoleAdmin      = "admin"
	RoleCryptoUser = "crypto-user"
)

// The pre-admin's credentials on a new cluster (CloudHSM's PRECO).
const (
	PreAdminName     = "admin"
	PreAdminPassword = "password"
)

// Environment variables `coffer cli` reads.
const (
	EnvConfig   = "COFFER_CLI_CONFIG"
	EnvUsername = "COFFER_CLI_USERNAME"
	EnvPassword = "COFFER_CLI_PASSWORD"
	EnvRole     = "COFFER_CLI_ROLE"
)

// Credentials log a user in.
type Credentials struct {
	Username string
	Role     string
	Password string // empty: ask
}

// Env is what a command runs with: input and output, the cluster
// configuration, the connection and the logged-in session. One command runs
// at a time; an Env is not safe for concurrent use.
type Env struct {
	In     io.Reader
	Out    io.Writer
	Err    io.Writer
	Getenv func(string) string
	Logger *slog.Logger

	// ConfigPath is the cluster configuration file (--cluster-config);
	// empty: COFFER_CLI_CONFIG, then DefaultConfigPath.
	ConfigPath string
	Format     Format
	// Interactive is set in the shell: logins are explicit there.
	Interactive bool
	// Creds log in implicitly, before the first command that needs a
	// session, in single-command mode.
	Creds Credentials
	// ReadPassword asks for a password, showing prompt; nil when there is
	// no way to ask.
	ReadPassword func(prompt string) (string, error)
	// ConfirmPasswords asks for a new password twice (on a terminal).
	ConfirmPasswords bool

	cluster    *client.Cluster
	configUsed string
	session    *client.Session
	role       string
}

func (e *Env) getenv(k string) string {
	if e.Getenv == nil {
		return ""
	}
	return e.Getenv(k)
}

// DefaultConfigPath is where `coffer configure cli` writes and `coffer cli`
// reads the cluster configuration: $XDG_CONFIG_HOME/coffer/cli.json, or
// ~/.config/coffer/cli.json.
func DefaultConfigPath(getenv func(string) string) (string, error) {
	if d := getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "coffer", "cli.json"), nil
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "coffer", "cli.json"), nil
	}
	return "", errors.New("no configuration directory: set XDG_CONFIG_HOME or HOME, or pass --cluster-config FILE")
}

// ConfigFile is the cluster configuration file this Env uses.
func (e *Env) ConfigFile() (string, error) {
	if e.ConfigPath != "" {
		return e.ConfigPath, nil
	}
	if p := e.getenv(EnvConfig); p != "" {
		return p, nil
	}
	return DefaultConfigPath(e.getenv)
}

// Cluster returns the connection to the cluster, dialling it on first use.
func (e *Env) Cluster(ctx context.Context) (*client.Cluster, error) {
	path, err := e.ConfigFile()
	if err != nil {
		return nil, Failf("%w", err)
	}
	if e.cluster != nil {
		if path != e.configUsed {
			return nil, Usagef("already connected with %s: start a new shell to use %s", e.configUsed, path)
		}
		return e.cluster, nil
	}
	f, err := client.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &Error{Code: ExitFailed, Err: fmt.Errorf("no cluster configuration at %s", path),
			Hint: "run `coffer configure cli -a HSM_ADDRESS:PORT --hsm-ca-cert customerCA.crt` first, or pass --cluster-config FILE"}
	}
	if err != nil {
		return nil, Failf("%w", err)
	}
	cfg, err := f.Config(e.logger())
	if err != nil {
		return nil, &Error{Code: ExitFailed, Err: fmt.Errorf("cluster configuration %s: %w", path, err)}
	}
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		hint := noHSMHint
		if f.ClientCert != "" {
			hint += "; the HSMs also refuse a client certificate that no registered trust anchor issued: check that its CA is registered " +
				"(from a client without the certificate: `cluster mtls list-trust-anchors`)"
		}
		return nil, &Error{Code: ExitFailed, Err: err, Hint: hint}
	}
	e.cluster, e.configUsed = c, path
	return c, nil
}

func (e *Env) logger() *slog.Logger {
	if e.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Logger
}

// Session returns the logged-in session. In single-command mode it logs in
// with Creds first, if they name a user.
func (e *Env) Session(ctx context.Context) (*client.Session, error) {
	if e.session != nil {
		return e.session, nil
	}
	if e.Interactive || e.Creds.Username == "" {
		return nil, notLoggedIn(e.Interactive)
	}
	if e.Creds.Role == "" {
		return nil, Usagef("no role for %s: pass --role admin|crypto-user or set %s", e.Creds.Username, EnvRole)
	}
	return e.Login(ctx, e.Creds)
}

// LoggedIn reports the logged-in user and role, if any.
func (e *Env) LoggedIn() (username, role string, ok bool) {
	if e.session == nil {
		return "", "", false
	}
	return e.session.Username(), e.role, true
}

// CheckRole refuses a role the CLI does not know.
func CheckRole(role string) error {
	switch role {
	case RoleAdmin, RoleCryptoUser:
		return nil
	}
	return Usagef("role %q: want admin or crypto-user", role)
}

// Login logs a user in; it asks for the password if Creds carry none.
func (e *Env) Login(ctx context.Context, c Credentials) (*client.Session, error) {
	if e.session != nil {
		return nil, &Error{Code: ExitFailed, Err: fmt.Errorf("already logged in as %s (%s)", e.session.Username(), e.role), Hint: "run `logout` first"}
	}
	if c.Username == "" {
		return nil, Usagef("no username: pass --username NAME")
	}
	if err := CheckRole(c.Role); err != nil {
		return nil, err
	}
	if c.Password == "" {
		pw, err := e.Password("Enter password: ")
		if err != nil {
			return nil, err
		}
		c.Password = pw
	}
	cl, err := e.Cluster(ctx)
	if err != nil {
		return nil, err
	}
	s, err := cl.Login(ctx, c.Role, c.Username, c.Password)
	// A login may write the user's failure count (one more, or reset): let
	// that reach every HSM, so that the count is the cluster's.
	e.Settle(ctx)
	if err != nil {
		return nil, Failed(err)
	}
	e.session, e.role = s, c.Role
	return s, nil
}

// Logout closes the session.
func (e *Env) Logout(ctx context.Context) (string, error) {
	if e.session == nil {
		return "", notLoggedIn(e.Interactive)
	}
	s := e.session
	e.session, e.role = nil, ""
	return s.Username(), Failed(s.Close(ctx))
}

// Relogin logs the current user in again with password: after the
// activation, so that every HSM sees the admin as activated.
func (e *Env) Relogin(ctx context.Context, password string) error {
	if e.session == nil {
		return notLoggedIn(e.Interactive)
	}
	c := Credentials{Username: e.session.Username(), Role: e.role, Password: password}
	_ = e.session.Close(ctx)
	e.session, e.role = nil, ""
	_, err := e.Login(ctx, c)
	return err
}

// Password asks for a password, or says how to give one.
func (e *Env) Password(prompt string) (string, error) {
	if e.ReadPassword == nil {
		return "", Usagef("a password is needed: pass --password (or set %s for the login)", EnvPassword)
	}
	pw, err := e.ReadPassword(prompt)
	if err != nil {
		return "", Failf("reading the password: %w", err)
	}
	if pw == "" {
		return "", Usagef("empty password")
	}
	return pw, nil
}

// NewPassword asks for a new password twice, unless given.
func (e *Env) NewPassword(given string) (string, error) {
	if given != "" {
		return given, nil
	}
	pw, err := e.Password("Enter password: ")
	if err != nil {
		return "", err
	}
	if e.ConfirmPasswords {
		again, err := e.Password("Confirm password: ")
		if err != nil {
			return "", err
		}
		if again != pw {
			return "", Usagef("the passwords differ")
		}
	}
	return pw, nil
}

// Close logs out and closes the connection.
func (e *Env) Close(ctx context.Context) {
	if e.session != nil {
		_ = e.session.Close(ctx)
		e.session, e.role = nil, ""
	}
	if e.cluster != nil {
		_ = e.cluster.Close()
		e.cluster = nil
	}
}
