package crypto

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

// scheme is a signature scheme as `crypto sign` and `crypto verify` name it.
type scheme struct {
	name  string
	title string // e.g. ECDSA
	note  string // what to know about its signatures
	// hashed are the mechanisms that hash the data first, by hash name;
	// raw is the mechanism for data that is a digest already (0: none).
	hashed map[string]ck.MechanismType
	raw    ck.MechanismType
	pss    bool
	// context: the scheme takes ML-DSA's context string (--context) and
	// signs deterministically with --deterministic.
	context bool
}

func schemes() []scheme {
	return []scheme{
		{name: "rsa-pkcs", title: "RSA PKCS #1 v1.5", raw: ck.CKM_RSA_PKCS, hashed: map[string]ck.MechanismType{
			"sha1": ck.CKM_SHA1_RSA_PKCS, "sha224": ck.CKM_SHA224_RSA_PKCS, "sha256": ck.CKM_SHA256_RSA_PKCS,
			"sha384": ck.CKM_SHA384_RSA_PKCS, "sha512": ck.CKM_SHA512_RSA_PKCS}},
		{name: "rsa-pkcs-pss", title: "RSA-PSS", note: "The salt is as long as the hash unless --salt-length says otherwise.", raw: ck.CKM_RSA_PKCS_PSS, pss: true, hashed: map[string]ck.MechanismType{
			"sha1": ck.CKM_SHA1_RSA_PKCS_PSS, "sha224": ck.CKM_SHA224_RSA_PKCS_PSS, "sha256": ck.CKM_SHA256_RSA_PKCS_PSS,
			"sha384": ck.CKM_SHA384_RSA_PKCS_PSS, "sha512": ck.CKM_SHA512_RSA_PKCS_PSS}},
		{name: "ecdsa", title: "ECDSA", note: "Signatures are r||s, each half as long as the curve's order, as PKCS#11 makes them (not DER).", raw: ck.CKM_ECDSA, hashed: map[string]ck.MechanismType{
			"sha1": ck.CKM_ECDSA_SHA1, "sha224": ck.CKM_ECDSA_SHA224, "sha256": ck.CKM_ECDSA_SHA256,
			"sha384": ck.CKM_ECDSA_SHA384, "sha512": ck.CKM_ECDSA_SHA512}},
		{name: "ed25519", title: "Ed25519", note: "This is pure Ed25519 (RFC 8032) over the data: no hash function, no digest.", raw: ck.CKM_EDDSA},
		{name: "ml-dsa", title: "ML-DSA (FIPS 204)", note: "This is pure ML-DSA over the data, with an optional context string (--context, at most 255 bytes) that the verifier must give too. Signatures are hedged (randomized) unless --deterministic.", raw: ck.CKM_ML_DSA, context: true},
	}
}

// signFlags are the flags sign and verify share.
type signFlags struct {
	filter     []string
	hash       string
	dataPath   string
	data       string
	dataType   string
	mgf        string
	saltLength int
	context    string
	determ     bool
}

func (sc scheme) flags(cmd *cobra.Command, f *signFlags) {
	cli.MultiFlag(cmd, &f.filter, "key-filter", "the key: key-reference=0x... or attr.NAME=VALUE (e.g. attr.label=my-key)")
	_ = cmd.MarkFlagRequired("key-filter")
	cmd.Flags().StringVar(&f.dataPath, "data-path", "", "file holding the data")
	cmd.Flags().StringVar(&f.data, "data", "", "the data, base64")
	if sc.context {
		cmd.Flags().StringVar(&f.context, "context", "", "the context string (text, at most 255 bytes)")
		cmd.Flags().BoolVar(&f.determ, "deterministic", false, "sign deterministically (CKH_DETERMINISTIC_REQUIRED) instead of hedged")
	}
	if sc.hashed == nil {
		return
	}
	cmd.Flags().StringVar(&f.hash, "hash-function", "", "the hash: "+strings.Join(cli.HashNames(), ", "))
	_ = cmd.MarkFlagRequired("hash-function")
	cli.Enum(cmd, "hash-function", cli.HashNames()...)
	cmd.Flags().StringVar(&f.dataType, "data-type", "raw", "raw: hash the data; digest: the data is the hash already")
	cli.Enum(cmd, "data-type", "raw", "digest")
	if sc.pss {
		cmd.Flags().StringVar(&f.mgf, "mgf", "", "the mask generation function: "+strings.Join(cli.MGFNames(), ", ")+" (default: MGF1 with the hash)")
		cmd.Flags().IntVar(&f.saltLength, "salt-length", -1, "the salt length in bytes (default: the hash's length)")
		cli.Enum(cmd, "mgf", cli.MGFNames()...)
	}
}

// mechanism returns the mechanism and what to give it for data.
func (sc scheme) mechanism(f *signFlags, data []byte) (client.Mechanism, []byte, error) {
	if sc.context {
		if len(f.context) > 255 {
			return client.Mechanism{}, nil, cli.Usagef("--context: %d bytes, at most 255", len(f.context))
		}
		m := client.Mechanism{Type: sc.raw, Context: []byte(f.context), Hedge: ck.CKH_HEDGE_PREFERRED}
		if f.determ {
			m.Hedge = ck.CKH_DETERMINISTIC_REQUIRED
		}
		return m, data, nil
	}
	if sc.hashed == nil {
		return client.Mechanism{Type: sc.raw}, data, nil
	}
	h, err := cli.LookupHash(f.hash)
	if err != nil {
		return client.Mechanism{}, nil, err
	}
	m := client.Mechanism{Type: sc.hashed[h.Name]}
	switch f.dataType {
	case "raw":
	case "digest":
		if len(data) != h.Crypto.Size() {
			return m, nil, cli.Usagef("--data-type digest: the data has %d bytes, a %s digest has %d", len(data), h.Name, h.Crypto.Size())
		}
		m.Type = sc.raw
		if sc.raw == ck.CKM_RSA_PKCS {
			if data, err = digestInfo(h, data); err != nil {
				return m, nil, err
			}
		}
	default:
		return m, nil, cli.Usagef("--data-type %q: want raw or digest", f.dataType)
	}
	if sc.pss {
		if m.MGF, err = cli.LookupMGF(f.mgf, h); err != nil {
			return m, nil, err
		}
		m.Hash = h.Digest
		m.SaltLen = uint(h.Crypto.Size())
		if f.saltLength >= 0 {
			m.SaltLen = uint(f.saltLength)
		}
	}
	return m, data, nil
}

// digestInfo wraps a digest in the DER DigestInfo that PKCS #1 v1.5 signs.
func digestInfo(h cli.Hash, digest []byte) ([]byte, error) {
	oids := map[string]asn1.ObjectIdentifier{
		"sha1":   {1, 3, 14, 3, 2, 26},
		"sha224": {2, 16, 840, 1, 101, 3, 4, 2, 4},
		"sha256": {2, 16, 840, 1, 101, 3, 4, 2, 1},
		"sha384": {2, 16, 840, 1, 101, 3, 4, 2, 2},
		"sha512": {2, 16, 840, 1, 101, 3, 4, 2, 3},
	}
	return asn1.Marshal(struct {
		Algorithm pkix.AlgorithmIdentifier
		Digest    []byte
	}{pkix.AlgorithmIdentifier{Algorithm: oids[h.Name], Parameters: asn1.NullRawValue}, digest})
}
