package cli

import (
	"context"

	"github.com/coffer-hsm/coffer/internal/client"
)

// ReplicaSessions returns the two logged-in sessions of key replicate and
// user replicate, as CloudHSM CLI takes them: on the source cluster, Creds
// in single-command mode (--username, COFFER_CLI_*); on the destination,
// DESTINATION_CLOUDHSM_ROLE and DESTINATION_CLOUDHSM_PIN. In the shell, the
// user logs in on both clusters first (login --cluster-id).
func (e *Env) ReplicaSessions(ctx context.Context, source, destination string) (src, dst *client.Session, err error) {
	switch {
	case source == "" || destination == "":
		return nil, nil, Usagef("--source-cluster-id and --destination-cluster-id are required")
	case source == destination:
		return nil, nil, Usagef("the source and destination cluster are both %s: replicate between two clone clusters", source)
	}
	f, _, err := e.readConfig()
	if err != nil {
		return nil, nil, err
	}
	for _, id := range []string{source, destination} {
		if _, err := e.clusterID(f, id); err != nil {
			return nil, nil, err
		}
	}
	var dc Credentials
	if !e.Interactive {
		if dc, err = e.DestinationCredentials(); err != nil {
			return nil, nil, err
		}
	}
	if src, err = e.SessionOn(ctx, source, e.Creds); err != nil {
		return nil, nil, err
	}
	if dst, err = e.SessionOn(ctx, destination, dc); err != nil {
		return nil, nil, err
	}
	return src, dst, nil
}
