package controlplane

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"regexp"
	"time"
)

// Config is how a Server is built; cmd parses flags and files into it.
type Config struct {
	// DataDir holds the control plane's database (controlplane.db).
	DataDir string
	// Regions served, each with its VPC and subnets. At least one.
	Regions []Region
	// Credentials are the access keys whose SigV4 signatures are accepted.
	Credentials []Credential
	// Provisioner runs the HSMs. Required.
	Provisioner Provisioner

	// AddressBase is the second octet of the first region's HSM addresses
	// (0..255-len(Regions)): HSMs of region i get 127.<AddressBase+i>.n.(11+az).
	// Tests running side by side give each control plane its own.
	AddressBase int

	// ReconcileInterval is how often the reconciler looks at every HSM even
	// when nothing changed (zero: 1s).
	ReconcileInterval time.Duration
	// DeletedBackupRetention is how long a deleted backup can be restored
	// (zero: 7 days, as CloudHSM).
	DeletedBackupRetention time.Duration
	// BackupInterval is how often every initialized cluster is backed up
	// when nothing else made a backup of it (zero: 24 hours, as CloudHSM).
	BackupInterval time.Duration
	// BackupTimeout bounds the taking, copying or restoring of one backup
	// (zero: 10 minutes).
	BackupTimeout time.Duration

	// ReplayCacheSize bounds the signatures of changing requests remembered
	// to refuse their replays (zero: 32768); when it is full, changing
	// requests are throttled until the oldest expire.
	ReplayCacheSize int

	// Timeouts of HTTPServer: to read a whole request (zero: 30s), to
	// write the answer (zero: 30s), and of an idle connection (zero: 2min).
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration

	Logger *slog.Logger     // zero: discard
	Now    func() time.Time // zero: time.Now
	Rand   io.Reader        // zero: crypto/rand
}

// Region is an AWS region the control plane serves.
type Region struct {
	Name    string   // e.g. "us-east-1"
	VpcID   string   // e.g. "vpc-c0ffee00"
	Subnets []Subnet // one per availability zone is typical
	// Backups is where the region's backup blobs are kept (zero: the
	// directory DataDir/backups/<name>).
	Backups BackupStoreConfig
}

// BackupStoreConfig says where a region keeps its backup blobs: at most
// one of Dir, S3 and Store.
type BackupStoreConfig struct {
	Dir   string    `json:"dir,omitempty"` // a local directory
	S3    *S3Config `json:"s3,omitempty"`  // an S3-compatible bucket
	Store BlobStore `json:"-"`             // any other store, used as it is
}

// Subnet maps a subnet id to its availability zone.
type Subnet struct {
	ID string // "subnet-0aaaaaaa"
	AZ string // "us-east-1a"
}

// Credential is an access key.
type Credential struct {
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
	AccountID       string `json:"account_id"` // 12 digits, for ARNs
}

// DefaultRegion is the embedded default's region number index: VPC
// vpc-c0ffee0<index> and three subnets subnet-<index>aaaaaaa (AZ a),
// subnet-<index>bbbbbbb (b) and subnet-<index>ccccccc (c). index is 0..9.
func DefaultRegion(name string, index int) Region {
	r := Region{Name: name, VpcID: fmt.Sprintf("vpc-c0ffee0%d", index)}
	for _, az := range "abc" {
		id := fmt.Sprintf("subnet-%d", index)
		for range 7 {
			id += string(az)
		}
		r.Subnets = append(r.Subnets, Subnet{ID: id, AZ: name + string(az)})
	}
	return r
}

var (
	reRegion    = regexp.MustCompile(`^[a-z]{2}(-(gov))?-(east|west|north|south|central){1,2}-\d$`)
	reAZ        = regexp.MustCompile(`^[a-z]{2}(-(gov))?-(east|west|north|south|central){1,2}-\d[a-z]$`)
	reSubnetID  = regexp.MustCompile(`^subnet-[0-9a-fA-F]{8,17}$`)
	reVpcID     = regexp.MustCompile(`^vpc-[0-9a-fA-F]+$`)
	reAccountID = regexp.MustCompile(`^[0-9]{12}$`)
	reAccessKey = regexp.MustCompile(`^[A-Z0-9]{16,128}$`)
)

// Validate reports every problem.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.DataDir == "" {
		add("DataDir is required")
	}
	if c.Provisioner == nil {
		add("Provisioner is required")
	}
	if len(c.Regions) == 0 {
		add("at least one region is required")
	}
	if len(c.Regions) > 256 {
		add("at most 256 regions")
	}
	seenRegion, seenSubnet := map[string]bool{}, map[string]bool{}
	for _, r := range c.Regions {
		if !reRegion.MatchString(r.Name) {
			add("region %q: not a region name such as us-east-1", r.Name)
		}
		if seenRegion[r.Name] {
			add("region %q listed twice", r.Name)
		}
		seenRegion[r.Name] = true
		if !reVpcID.MatchString(r.VpcID) {
			add("region %s: VPC id %q: want vpc-<hex>", r.Name, r.VpcID)
		}
		n := 0
		for _, set := range []bool{r.Backups.Dir != "", r.Backups.S3 != nil, r.Backups.Store != nil} {
			if set {
				n++
			}
		}
		if n > 1 {
			add("region %s: backups: give one of a directory, an S3 bucket or a store", r.Name)
		}
		if r.Backups.S3 != nil {
			if err := r.Backups.S3.Validate(); err != nil {
				add("region %s: backups: S3: %w", r.Name, err)
			}
		}
		for _, s := range r.Subnets {
			if !reSubnetID.MatchString(s.ID) {
				add("region %s: subnet id %q: want subnet-<8 to 17 hex digits>", r.Name, s.ID)
			}
			if seenSubnet[s.ID] {
				add("subnet %s listed twice", s.ID)
			}
			seenSubnet[s.ID] = true
			if !reAZ.MatchString(s.AZ) || s.AZ[:len(s.AZ)-1] != r.Name {
				add("subnet %s: availability zone %q is not one of region %s", s.ID, s.AZ, r.Name)
			}
		}
	}
	if len(c.Credentials) == 0 {
		add("at least one credential is required")
	}
	seenKey := map[string]bool{}
	for _, k := range c.Credentials {
		if seenKey[k.AccessKeyID] {
			add("access key id %s listed twice", k.AccessKeyID)
		}
		seenKey[k.AccessKeyID] = true
		if !reAccessKey.MatchString(k.AccessKeyID) {
			add("access key id %q: want 16 or more upper-case letters and digits", k.AccessKeyID)
		}
		if len(k.SecretAccessKey) < 16 {
			add("access key %s: secret shorter than 16 characters", k.AccessKeyID)
		}
		if !reAccountID.MatchString(k.AccountID) {
			add("access key %s: account id %q: want 12 digits", k.AccessKeyID, k.AccountID)
		}
	}
	if c.AddressBase < 0 || c.AddressBase+len(c.Regions) > 256 {
		add("AddressBase %d: want 0 to %d", c.AddressBase, 256-len(c.Regions))
	}
	if c.ReplayCacheSize < 0 {
		add("negative ReplayCacheSize")
	}
	if c.ReconcileInterval < 0 || c.DeletedBackupRetention < 0 || c.BackupInterval < 0 || c.BackupTimeout < 0 || c.ReadTimeout < 0 || c.WriteTimeout < 0 || c.IdleTimeout < 0 {
		add("negative duration")
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("controlplane: invalid config: %w", err)
	}
	return nil
}

// eniIP is the address of the n-th HSM (n from 0) in availability zone az
// of the region with index r: 127.r.n.(11+az), az 0 for "a". So the first HSM
// of zone a in the first region is 127.0.0.11, of zone b 127.0.0.12.
func eniIP(region, n int, az byte) (netip.Addr, bool) {
	z := int(az - 'a')
	if region < 0 || region > 255 || n < 0 || n > 255 || z < 0 || z > 25 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte{127, byte(region), byte(n), byte(11 + z)}), true
}
