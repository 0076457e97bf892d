package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"
	"github.com/aws/smithy-go"

	"github.com/coffer-hsm/coffer/internal/controlplane"
)

// awsLookup is where configure --cluster-id asks for a cluster's HSMs.
type awsLookup struct {
	Region   string // --region; empty: the AWS configuration's (AWS_REGION, the profile)
	Endpoint string // --endpoint; empty: the SDK's (AWS_ENDPOINT_URL..., or AWS's own)
	Profile  string // --profile; empty: AWS_PROFILE or "default"
}

// Errors of a cluster lookup that callers (and tests) tell apart.
var (
	errClusterNotFound = errors.New("cluster not found")
	errClusterNoHSM    = errors.New("cluster has no usable HSM")
	errClusterState    = errors.New("cluster is not ACTIVE or INITIALIZED")
	errNoAWSCredential = errors.New("no AWS credentials")
)

// awsAPIError is an error the control plane answered, shown as the AWS CLI
// shows one.
type awsAPIError struct {
	Op, Code, Message string
	Err               error
}

func (e *awsAPIError) Error() string {
	return fmt.Sprintf("An error occurred (%s) when calling the %s operation: %s", e.Code, e.Op, e.Message)
}
func (e *awsAPIError) Unwrap() error { return e.Err }

// clusterHSMs returns the addresses (EniIp, CloudHSM's port 2223) of the
// ACTIVE HSMs of cluster id (ACTIVE, INITIALIZED, or DEGRADED with an
// ACTIVE HSM left), from the control plane's DescribeClusters,
// signed with SigV4 under the usual AWS credential chain (environment,
// shared config and credentials files, profile, SSO, the instance role), as
// CloudHSM's configure --cluster-id does. The addresses are only where to
// look: configure then verifies each HSM's certificate under the trust
// anchor and the cluster id, so a control plane cannot make the client
// trust an HSM that is not the cluster's.
func clusterHSMs(ctx context.Context, id string, l awsLookup) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var opts []func(*awsconfig.LoadOptions) error
	if l.Region != "" {
		opts = append(opts, awsconfig.WithRegion(l.Region))
	}
	if l.Profile != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(l.Profile))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("no AWS region: pass --region, or set AWS_REGION or a region in the AWS profile")
	}
	if cfg.Credentials == nil {
		return nil, fmt.Errorf("%w: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or name a profile of ~/.aws/credentials", errNoAWSCredential)
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return nil, fmt.Errorf("%w (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws/credentials, ~/.aws/config): %w", errNoAWSCredential, err)
	}
	svc := cloudhsmv2.NewFromConfig(cfg, func(o *cloudhsmv2.Options) {
		if l.Endpoint != "" {
			o.BaseEndpoint = aws.String(l.Endpoint)
		}
	})
	out, err := svc.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{Filters: map[string][]string{"clusterIds": {id}}})
	if err != nil {
		if ae, ok := errors.AsType[smithy.APIError](err); ok {
			return nil, &awsAPIError{Op: "DescribeClusters", Code: ae.ErrorCode(), Message: ae.ErrorMessage(), Err: err}
		}
		return nil, fmt.Errorf("DescribeClusters in %s: %w", cfg.Region, err)
	}
	i := slices.IndexFunc(out.Clusters, func(c types.Cluster) bool { return aws.ToString(c.ClusterId) == id })
	if i < 0 {
		return nil, fmt.Errorf("%w: %s in region %s (aws cloudhsmv2 describe-clusters lists the region's clusters)", errClusterNotFound, id, cfg.Region)
	}
	c := out.Clusters[i]
	switch c.State {
	case types.ClusterStateActive, types.ClusterStateInitialized:
	case types.ClusterStateDegraded:
		// Some HSM is unwell; the ACTIVE ones still serve.
	default:
		return nil, fmt.Errorf("%w: %s is %s", errClusterState, id, c.State)
	}
	var addrs, other []string
	for _, h := range c.Hsms {
		ip := aws.ToString(h.EniIp)
		switch {
		case ip == "":
			other = append(other, aws.ToString(h.HsmId)+" has no address yet")
		case h.State != types.HsmStateActive:
			other = append(other, aws.ToString(h.HsmId)+" is "+string(h.State))
		default:
			addrs = append(addrs, net.JoinHostPort(ip, strconv.Itoa(controlplane.DefaultHSMPort)))
		}
	}
	if len(addrs) == 0 {
		if len(other) == 0 {
			return nil, fmt.Errorf("%w: %s has no HSMs: add one with aws cloudhsmv2 create-hsm", errClusterNoHSM, id)
		}
		return nil, fmt.Errorf("%w: %s has no ACTIVE HSM: %s", errClusterNoHSM, id, strings.Join(other, "; "))
	}
	return addrs, nil
}
