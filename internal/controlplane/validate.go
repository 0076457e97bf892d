package controlplane

import (
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode/utf8"
)

// This file: identifiers and the model's input patterns.

var (
	reClusterID  = regexp.MustCompile(`^cluster-[2-7a-zA-Z]{11,16}$`)
	reHsmID      = regexp.MustCompile(`^hsm-[2-7a-zA-Z]{11,16}$`)
	reBackupID   = regexp.MustCompile(`^backup-[2-7a-zA-Z]{11,16}$`)
	reBackupArn  = regexp.MustCompile(`^arn:aws(?:-us-gov)?:cloudhsm:(?P<region>[a-z]{2}(?:-(?:gov|isob|iso))?-(?:east|west|north|south|central){1,2}-[0-9]):(?P<account>[0-9]{12}):backup/(?P<id>backup-[2-7a-zA-Z]{11,16})$`)
	reHsmArn     = regexp.MustCompile(`^arn:aws(?:-us-gov)?:cloudhsm:(?P<region>[a-z]{2}(?:-(?:gov|isob|iso))?-(?:east|west|north|south|central){1,2}-[0-9]):(?P<account>[0-9]{12}):(?P<kind>backup|cluster|hsm)/(?P<id>(?:backup|cluster|hsm)-[2-7a-zA-Z]{11,16})$`)
	reEniID      = regexp.MustCompile(`^eni-[0-9a-fA-F]{8,17}$`)
	reIP         = regexp.MustCompile(`^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$`)
	reHsmType    = regexp.MustCompile(`^((p|)hsm[0-9][a-z.]*\.[a-zA-Z]+)$`)
	reTag        = regexp.MustCompile(`^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$`)
	reField      = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
	reResourceID = regexp.MustCompile(`^(?:cluster|backup)-[2-7a-zA-Z]{11,16}$`)
)

// HSM types the control plane accepts: CloudHSM's current and previous
// generation. Both run the same Coffer node.
var hsmTypes = []string{"hsm1.medium", "hsm2m.medium"}

const idAlphabet = "abcdefghijklmnopqrstuvwxyz234567"

// newID makes prefix-<11 characters of [a-z2-7]>.
func (s *Server) newID(prefix string) string {
	var b [11]byte
	io.ReadFull(s.cfg.Rand, b[:])
	for i := range b {
		b[i] = idAlphabet[b[i]%32]
	}
	return prefix + "-" + string(b[:])
}

// newHexID makes prefix-<17 hex digits>, as ENI and security group ids.
func (s *Server) newHexID(prefix string) string {
	var b [9]byte
	io.ReadFull(s.cfg.Rand, b[:])
	return prefix + "-" + hex.EncodeToString(b[:])[:17]
}

func checkPattern(field, value string, re *regexp.Regexp, example string) error {
	if !re.MatchString(value) {
		return invalid("1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must satisfy regular expression pattern (e.g. %s)",
			truncate(value, 200), field, example)
	}
	return nil
}

func required(field, value string) error {
	if value == "" {
		return invalid("1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null", field)
	}
	return nil
}

func checkClusterID(field, id string) error {
	if err := required(field, id); err != nil {
		return err
	}
	return checkPattern(field, id, reClusterID, "cluster-abcdefghijk")
}

func checkBackupID(field, id string) error {
	if err := required(field, id); err != nil {
		return err
	}
	return checkPattern(field, id, reBackupID, "backup-abcdefghijk")
}

// checkTags validates a TagList (1 to 50 tags).
func checkTags(field string, tags []Tag) error {
	if len(tags) > 50 {
		return refuse(ErrTag, "The tag list has %d tags; at most 50 are allowed.", len(tags))
	}
	seen := map[string]bool{}
	for _, t := range tags {
		if err := checkTagKey(field+".member.Key", t.Key); err != nil {
			return err
		}
		if utf8.RuneCountInString(t.Value) > 256 || !reTag.MatchString(t.Value) {
			return refuse(ErrTag, "Tag value %q for key %q: at most 256 letters, digits, spaces and _.:/=+-@", truncate(t.Value, 64), t.Key)
		}
		if seen[t.Key] {
			return refuse(ErrTag, "Duplicate tag key %q.", t.Key)
		}
		seen[t.Key] = true
	}
	return nil
}

func checkTagKey(field, k string) error {
	n := utf8.RuneCountInString(k)
	switch {
	case n < 1 || n > 128 || !reTag.MatchString(k):
		return refuse(ErrTag, "Tag key %q at '%s': 1 to 128 letters, digits, spaces and _.:/=+-@", truncate(k, 64), field)
	case strings.HasPrefix(strings.ToLower(k), "aws:"):
		return refuse(ErrTag, "Tag key %q: the prefix aws: is reserved for AWS use.", truncate(k, 64))
	}
	return nil
}

// mergeTags sets tags on existing, replacing values of keys already there.
func mergeTags(existing, tags []Tag) []Tag {
	out := append([]Tag(nil), existing...)
	for _, t := range tags {
		found := false
		for i := range out {
			if out[i].Key == t.Key {
				out[i].Value, found = t.Value, true
			}
		}
		if !found {
			out = append(out, t)
		}
	}
	return out
}

func backupArn(region, account, id string) string {
	return fmt.Sprintf("arn:aws:cloudhsm:%s:%s:backup/%s", region, account, id)
}
