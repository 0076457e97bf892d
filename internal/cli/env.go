package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"

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

// CloudHSM CLI's environment for single-command mode, read after Coffer's
// own (WithCloudHSMEnv).
const (
	EnvCloudHSMPIN  = "CLOUDHSM_PIN" // username:password
	EnvCloudHSMRole = "CLOUDHSM_ROLE"
)

// WithCloudHSMEnv fills what creds (from flags and COFFER_CLI_*) leave
// empty from CloudHSM CLI's CLOUDHSM_PIN and CLOUDHSM_ROLE, so a script
// written for CloudHSM runs unchanged. The PIN's password is taken only for
// the PIN's own user.
func WithCloudHSMEnv(creds Credentials, getenv func(string) string) (Credentials, error) {
	if creds.Role == "" {
		creds.Role = getenv(EnvCloudHSMRole)
	}
	pin := getenv(EnvCloudHSMPIN)
	if pin == "" {
		return creds, nil
	}
	user, pw, ok := strings.Cut(pin, ":")
	if !ok || user == "" || pw == "" {
		return creds, Usagef("%s: want username:password", EnvCloudHSMPIN)
	}
	if creds.Username == "" {
		creds.Username = user
	}
	if creds.Username == user && creds.Password == "" {
		creds.Password = pw
	}
	return creds, nil
}

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

	// ClusterID picks the cluster a command runs on (--cluster-id), when
	// the configuration names several; empty: the only one.
	ClusterID string
	// ShellClusterID is the --cluster-id the shell was started with: its
	// lines run there unless they name another.
	ShellClusterID string

	configUsed string
	config     *client.File     // the configuration read from configUsed
	conns      map[string]*conn // by cluster id: one connection, and its login, per cluster
	current    string           // the cluster the last command used
}

// conn is one configured cluster's connection and logged-in session.
type conn struct {
	cluster *client.Cluster
	session *client.Session
	role    string
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

// Environment variables that carry the destination cluster's credentials
// of key replicate and user replicate in single-command mode (CloudHSM
// CLI's names): the role, and "username:password".
const (
	EnvDestinationRole = "DESTINATION_CLOUDHSM_ROLE"
	EnvDestinationPIN  = "DESTINATION_CLOUDHSM_PIN"
)

// Cluster returns the connection to the cluster the command runs on,
// dialling it on first use.
func (e *Env) Cluster(ctx context.Context) (*client.Cluster, error) {
	c, _, err := e.conn(ctx, e.ClusterID)
	if err != nil {
		return nil, err
	}
	return c.cluster, nil
}

// readConfig reads the cluster configuration file.
func (e *Env) readConfig() (*client.File, string, error) {
	path, err := e.ConfigFile()
	if err != nil {
		return nil, "", Failf("%w", err)
	}
	if e.configUsed != "" && path != e.configUsed {
		return nil, "", Usagef("already connected with %s: start a new shell to use %s", e.configUsed, path)
	}
	if e.config != nil && path == e.configUsed {
		return e.config, path, nil
	}
	f, err := client.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", &Error{Code: ExitFailed, Err: fmt.Errorf("no cluster configuration at %s", path),
			Hint: "run `coffer configure cli -a HSM_ADDRESS:PORT --hsm-ca-cert customerCA.crt` first, or pass --cluster-config FILE"}
	}
	if err != nil {
		return nil, "", Failf("%w", err)
	}
	return f, path, nil
}

// keepConfig remembers the configuration once a connection uses it.
func (e *Env) keepConfig(f *client.File, path string) {
	e.config, e.configUsed = f, path
}

// clusterID resolves id (empty: --cluster-id, else the only cluster
// configured) against the configuration.
func (e *Env) clusterID(f *client.File, id string) (string, error) {
	if id == "" {
		id = e.ClusterID
	}
	ids := f.ClusterIDs()
	switch {
	case id == "" && len(ids) == 1:
		return ids[0], nil
	case id == "" && len(ids) > 1:
		return "", Usagef("%d clusters are configured (%s): pass --cluster-id", len(ids), strings.Join(ids, ", "))
	case id == "":
		return "", Usagef("the configuration names no cluster: run `coffer configure cli -a HSM_ADDRESS:PORT --hsm-ca-cert customerCA.crt`")
	case !slices.Contains(ids, id):
		return "", Usagef("cluster %s is not configured (configured: %s): add it with `coffer configure cli add-cluster --cluster-id %s ...`",
			id, strings.Join(ids, ", "), id)
	}
	return id, nil
}

// conn returns the connection to cluster id (see clusterID), dialling it
// on first use, and the id.
func (e *Env) conn(ctx context.Context, id string) (*conn, string, error) {
	f, path, err := e.readConfig()
	if err != nil {
		return nil, "", err
	}
	if id, err = e.clusterID(f, id); err != nil {
		return nil, "", err
	}
	if c := e.conns[id]; c != nil {
		e.current = id
		return c, id, nil
	}
	one, err := f.ForCluster(id)
	if err != nil {
		return nil, "", Failf("%w", err)
	}
	cfg, err := one.Config(e.logger())
	if err != nil {
		return nil, "", &Error{Code: ExitFailed, Err: fmt.Errorf("cluster configuration %s: %w", path, err)}
	}
	cl, err := client.Dial(ctx, cfg)
	if err != nil {
		hint := noHSMHint
		if one.ClientCert != "" {
			hint += "; the HSMs also refuse a client certificate that no registered trust anchor issued: check that its CA is registered " +
				"(from a client without the certificate: `cluster mtls list-trust-anchors`)"
		}
		return nil, "", &Error{Code: ExitFailed, Err: err, Hint: hint}
	}
	if e.conns == nil {
		e.conns = map[string]*conn{}
	}
	c := &conn{cluster: cl}
	e.conns[id], e.current = c, id
	e.keepConfig(f, path)
	return c, id, nil
}

func (e *Env) logger() *slog.Logger {
	if e.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Logger
}

// Session returns the logged-in session on the cluster the command runs
// on. In single-command mode it logs in with Creds first, if they name a
// user.
func (e *Env) Session(ctx context.Context) (*client.Session, error) {
	return e.SessionOn(ctx, "", e.Creds)
}

// SessionOn returns the logged-in session on cluster id (empty: the one the
// command runs on). In single-command mode it logs in with creds first, if
// they name a user.
func (e *Env) SessionOn(ctx context.Context, id string, creds Credentials) (*client.Session, error) {
	if e.Interactive || creds.Username == "" {
		// No login to make: a session there is, or none.
		f, _, err := e.readConfig()
		if err != nil {
			return nil, notLoggedIn(e.Interactive) // nothing configured: nobody is logged in
		}
		if id, err = e.clusterID(f, id); err != nil {
			return nil, err
		}
		if c := e.conns[id]; c != nil && c.session != nil {
			e.current = id
			return c.session, nil
		}
		err = notLoggedIn(e.Interactive)
		if ce, ok := errors.AsType[*Error](err); ok && len(f.ClusterIDs()) > 1 {
			ce.Err = fmt.Errorf("not logged in on cluster %s", id)
			if e.Interactive {
				ce.Hint = fmt.Sprintf("run `login --cluster-id %s --username NAME --role admin|crypto-user` first", id)
			}
		}
		return nil, err
	}
	if f, _, err := e.readConfig(); err == nil {
		if rid, err := e.clusterID(f, id); err == nil {
			if c := e.conns[rid]; c != nil && c.session != nil {
				e.current = rid
				return c.session, nil
			}
		}
	}
	if creds.Role == "" {
		return nil, Usagef("no role for %s: pass --role admin|crypto-user or set %s", creds.Username, EnvRole)
	}
	return e.login(ctx, id, creds)
}

// DestinationCredentials are the credentials of the destination cluster of
// key replicate and user replicate in single-command mode:
// DESTINATION_CLOUDHSM_ROLE and DESTINATION_CLOUDHSM_PIN (username:password).
func (e *Env) DestinationCredentials() (Credentials, error) {
	if e.Interactive {
		return Credentials{}, nil
	}
	role, pin := e.getenv(EnvDestinationRole), e.getenv(EnvDestinationPIN)
	if role == "" || pin == "" {
		return Credentials{}, Usagef("the destination cluster's credentials: set %s (admin or crypto-user) and %s (username:password)",
			EnvDestinationRole, EnvDestinationPIN)
	}
	user, pw, ok := strings.Cut(pin, ":")
	if !ok || user == "" || pw == "" {
		return Credentials{}, Usagef("%s: want username:password", EnvDestinationPIN)
	}
	return Credentials{Username: user, Role: role, Password: pw}, nil
}

// LoggedIn reports the user and role logged in on the cluster the command
// runs on (--cluster-id; without it, the one the last command used), if
// any.
func (e *Env) LoggedIn() (username, role string, ok bool) {
	id := e.ClusterID
	if id == "" {
		id = e.current
	}
	c := e.conns[id]
	if c == nil || c.session == nil {
		return "", "", false
	}
	return c.session.Username(), c.role, true
}

// PromptCluster is the cluster the last command used when the
// configuration names several (the shell's prompt shows it), else "".
func (e *Env) PromptCluster() string {
	if e.config == nil || len(e.config.ClusterIDs()) < 2 {
		return ""
	}
	return e.current
}

// CheckRole refuses a role the CLI does not know.
func CheckRole(role string) error {
	switch role {
	case RoleAdmin, RoleCryptoUser:
		return nil
	}
	return Usagef("role %q: want admin or crypto-user", role)
}

// Login logs a user in on the cluster the command runs on; it asks for the
// password if Creds carry none.
func (e *Env) Login(ctx context.Context, c Credentials) (*client.Session, error) {
	return e.login(ctx, "", c)
}

func (e *Env) login(ctx context.Context, id string, c Credentials) (*client.Session, error) {
	if c.Username == "" {
		return nil, Usagef("no username: pass --username NAME")
	}
	if err := CheckRole(c.Role); err != nil {
		return nil, err
	}
	if f, _, err := e.readConfig(); err == nil {
		if rid, err := e.clusterID(f, id); err == nil {
			if cn := e.conns[rid]; cn != nil && cn.session != nil {
				return nil, &Error{Code: ExitFailed, Err: fmt.Errorf("already logged in as %s (%s)", cn.session.Username(), cn.role), Hint: "run `logout` first"}
			}
			id = rid
		}
	}
	if c.Password == "" {
		prompt := "Enter password: "
		if e.config != nil && len(e.config.ClusterIDs()) > 1 || e.ClusterID != "" {
			prompt = fmt.Sprintf("Enter password of %s on cluster %s: ", c.Username, id)
		}
		pw, err := e.Password(prompt)
		if err != nil {
			return nil, err
		}
		c.Password = pw
	}
	cn, _, err := e.conn(ctx, id)
	if err != nil {
		return nil, err
	}
	s, err := cn.cluster.Login(ctx, c.Role, c.Username, c.Password)
	// A login may write the user's failure count (one more, or reset): let
	// that reach every HSM, so that the count is the cluster's.
	e.settle(ctx, cn.cluster)
	if err != nil {
		return nil, Failed(err)
	}
	cn.session, cn.role = s, c.Role
	return s, nil
}

// Logout closes the session on the cluster the command runs on.
func (e *Env) Logout(ctx context.Context) (string, error) {
	cn, _, err := e.conn(ctx, "")
	if err != nil {
		return "", err
	}
	if cn.session == nil {
		return "", notLoggedIn(e.Interactive)
	}
	s := cn.session
	cn.session, cn.role = nil, ""
	return s.Username(), Failed(s.Close(ctx))
}

// Relogin logs the current user in again with password: after the
// activation, so that every HSM sees the admin as activated.
func (e *Env) Relogin(ctx context.Context, password string) error {
	cn, _, err := e.conn(ctx, "")
	if err != nil {
		return err
	}
	if cn.session == nil {
		return notLoggedIn(e.Interactive)
	}
	c := Credentials{Username: cn.session.Username(), Role: cn.role, Password: password}
	_ = cn.session.Close(ctx)
	cn.session, cn.role = nil, ""
	_, err = e.Login(ctx, c)
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

// Close logs out and closes the connections.
func (e *Env) Close(ctx context.Context) {
	for id, c := range e.conns {
		if c.session != nil {
			_ = c.session.Close(ctx)
		}
		_ = c.cluster.Close()
		delete(e.conns, id)
	}
}
