package controlplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// S3Config is an S3-compatible bucket that keeps a region's backup blobs.
type S3Config struct {
	// Endpoint is the service's URL, e.g. https://s3.us-east-1.amazonaws.com
	// or http://127.0.0.1:8333 for a local S3-compatible server.
	Endpoint string `json:"endpoint"`
	// Region is the region requests are signed for (zero: us-east-1).
	Region string `json:"region,omitempty"`
	Bucket string `json:"bucket"`
	// Prefix is put before every blob's name (a "/" is added if it has
	// none at its end), e.g. "coffer/us-east-1/".
	Prefix string `json:"prefix,omitempty"`
	// AccessKeyID and SecretAccessKey are the static credentials requests
	// are signed with.
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
	// VirtualHosted addresses the bucket as a host name (bucket.endpoint);
	// zero: path-style (endpoint/bucket), which every S3-compatible server
	// serves.
	VirtualHosted bool `json:"virtual_hosted,omitempty"`
}

// Validate reports every problem.
func (c S3Config) Validate() error {
	var errs []error
	if u, err := url.Parse(c.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("endpoint %q: want an http:// or https:// URL", c.Endpoint))
	}
	if c.Bucket == "" {
		errs = append(errs, errors.New("bucket is required"))
	}
	if c.AccessKeyID == "" || c.SecretAccessKey == "" {
		errs = append(errs, errors.New("access_key_id and secret_access_key are required"))
	}
	if strings.HasPrefix(c.Prefix, "/") {
		errs = append(errs, fmt.Errorf("prefix %q: must not start with /", c.Prefix))
	}
	return errors.Join(errs...)
}

// S3Store keeps blobs as objects of an S3 bucket.
type S3Store struct {
	cfg    S3Config
	client *s3.Client
	spool  string // directory of the temporary copies uploads are made from
}

// NewS3Store returns the store of cfg. Put spools each blob to a
// temporary file in spoolDir first, so the upload has a length and a
// payload hash to sign, and a blob that fails on the way is never
// uploaded.
func NewS3Store(cfg S3Config, spoolDir string) (*S3Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("controlplane: S3 backup store: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Prefix != "" && !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	if err := os.MkdirAll(spoolDir, 0o700); err != nil {
		return nil, fmt.Errorf("controlplane: S3 backup store: %w", err)
	}
	client := s3.New(s3.Options{
		Region:       cfg.Region,
		BaseEndpoint: aws.String(cfg.Endpoint),
		UsePathStyle: !cfg.VirtualHosted,
		Credentials:  credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, ""),
	})
	return &S3Store{cfg: cfg, client: client, spool: spoolDir}, nil
}

func (s *S3Store) String() string {
	return fmt.Sprintf("s3 %s bucket %s prefix %q", s.cfg.Endpoint, s.cfg.Bucket, s.cfg.Prefix)
}

func (s *S3Store) key(name string) string { return s.cfg.Prefix + name }

// Put uploads the blob once it was read whole; S3 acknowledges a
// PutObject only once the object is stored.
func (s *S3Store) Put(ctx context.Context, name string, r io.Reader) (int64, error) {
	if err := checkBlobName(name); err != nil {
		return 0, err
	}
	f, err := os.CreateTemp(s.spool, ".spool-*")
	if err != nil {
		return 0, fmt.Errorf("controlplane: S3 backup store: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	n, err := io.Copy(f, ctxReader{ctx, r})
	if err != nil {
		return n, fmt.Errorf("controlplane: S3 backup store: read %s: %w", name, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return n, fmt.Errorf("controlplane: S3 backup store: %w", err)
	}
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(s.cfg.Bucket), Key: aws.String(s.key(name)), Body: f, ContentLength: aws.Int64(n),
		ContentType: aws.String("application/octet-stream"),
	})
	if err != nil {
		return n, fmt.Errorf("controlplane: S3 backup store: put %s: %w", s.key(name), err)
	}
	return n, nil
}

func (s *S3Store) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := checkBlobName(name); err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(s.key(name))})
	if err != nil {
		if isS3NotFound(err) {
			return nil, fmt.Errorf("controlplane: %s in %s: %w", name, s, ErrBlobNotFound)
		}
		return nil, fmt.Errorf("controlplane: S3 backup store: get %s: %w", s.key(name), err)
	}
	return out.Body, nil
}

func (s *S3Store) Delete(ctx context.Context, name string) error {
	if err := checkBlobName(name); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(s.key(name))})
	if err != nil && !isS3NotFound(err) {
		return fmt.Errorf("controlplane: S3 backup store: delete %s: %w", s.key(name), err)
	}
	return nil
}

func isS3NotFound(err error) bool {
	if _, ok := errors.AsType[*types.NoSuchKey](err); ok {
		return true
	}
	if ae, ok := errors.AsType[smithy.APIError](err); ok {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return true
		}
	}
	return false
}
