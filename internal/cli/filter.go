package cli

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
)

// Filter selects keys as the CloudHSM CLI's --filter does: by
// key-reference=0x..., by attr.NAME=VALUE, or both (all must match).
type Filter struct {
	Flag   string // the flag it came from, for messages
	Items  []string
	Ref    client.ObjectID
	HasRef bool
	Attrs  []client.Attribute
}

// ParseFilter reads the values of a filter flag.
func ParseFilter(flag string, items []string) (Filter, error) {
	f := Filter{Flag: flag, Items: items}
	for _, it := range items {
		name, value, ok := strings.Cut(it, "=")
		switch {
		case !ok:
			return Filter{}, Usagef("--%s %q: want key-reference=0x... or attr.NAME=VALUE", flag, it)
		case name == "key-reference":
			v, err := strconv.ParseUint(value, 0, 64)
			if err != nil || v == 0 {
				return Filter{}, Usagef("--%s %q: a key reference is a number, e.g. key-reference=0x0000000000000005", flag, it)
			}
			f.Ref, f.HasRef = client.ObjectID(v), true
		case strings.HasPrefix(name, "attr."):
			a, err := ParseAttribute(it)
			if err != nil {
				return Filter{}, err
			}
			f.Attrs = append(f.Attrs, a)
		default:
			return Filter{}, Usagef("--%s %q: attributes are written attr.NAME=VALUE, e.g. attr.label=%s", flag, it, value)
		}
	}
	return f, nil
}

// Empty reports whether the filter selects every key.
func (f Filter) Empty() bool { return !f.HasRef && len(f.Attrs) == 0 }

func (f Filter) String() string { return strings.Join(f.Items, " ") }

// FindKeys returns the keys the session can see that match f.
func FindKeys(ctx context.Context, s *client.Session, f Filter) ([]client.ObjectID, error) {
	if f.HasRef {
		if _, err := s.ObjectInfo(ctx, f.Ref); err != nil {
			if rv := client.Code(err); rv == ck.CKR_OBJECT_HANDLE_INVALID || rv == ck.CKR_KEY_HANDLE_INVALID {
				return nil, nil
			}
			return nil, err
		}
		if len(f.Attrs) == 0 {
			return []client.ObjectID{f.Ref}, nil
		}
	}
	ids, err := s.FindObjects(ctx, f.Attrs)
	if err != nil {
		return nil, err
	}
	if !f.HasRef {
		return ids, nil
	}
	for _, id := range ids {
		if id == f.Ref {
			return []client.ObjectID{id}, nil
		}
	}
	return nil, nil
}

// FindKey returns the one key f selects; none or several is an error that
// says how many matched.
func FindKey(ctx context.Context, s *client.Session, f Filter) (client.ObjectID, error) {
	if f.Empty() {
		return 0, Usagef("--%s is required: select the key with attr.NAME=VALUE (e.g. attr.label=my-key) or key-reference=0x...", f.Flag)
	}
	ids, err := FindKeys(ctx, s, f)
	if err != nil {
		return 0, Failed(err)
	}
	switch len(ids) {
	case 1:
		return ids[0], nil
	case 0:
		return 0, &Error{Code: ExitFailed, Err: fmt.Errorf("--%s %s matched no key", f.Flag, f),
			Hint: "`key list` shows the keys you own or that are shared with you"}
	}
	refs := make([]string, 0, 3)
	for i, id := range ids {
		if i == 3 {
			refs = append(refs, "...")
			break
		}
		refs = append(refs, KeyRef(id))
	}
	return 0, &Error{Code: ExitFailed, Err: fmt.Errorf("--%s %s matched %d keys (%s), this command needs exactly one", f.Flag, f, len(ids), strings.Join(refs, ", ")),
		Hint: "add attributes to the filter (e.g. attr.class=private-key) or select it with key-reference=0x..."}
}

// KeyRef writes a key reference as the CLI prints it.
func KeyRef(id client.ObjectID) string { return fmt.Sprintf("0x%016x", uint64(id)) }

// KeyRecord is a key as commands print it.
type KeyRecord struct {
	Reference  string     `json:"key-reference"`
	Info       *KeyInfo   `json:"key-info,omitempty"`
	Attributes Attributes `json:"attributes"`

	info client.ObjectInfo
}

// KeyInfo is who owns a key and who it is shared with.
type KeyInfo struct {
	Owner       string   `json:"owner"`
	SharedUsers []string `json:"shared-users"`
}

// DescribeKey reads what to print of a key: its label, or with verbose
// every attribute the CLI knows and its owner and shares.
func DescribeKey(ctx context.Context, s *client.Session, id client.ObjectID, verbose bool) (KeyRecord, error) {
	info, err := s.ObjectInfo(ctx, id)
	if err != nil {
		return KeyRecord{}, err
	}
	r := KeyRecord{Reference: KeyRef(id), info: info, Attributes: Attributes{{Name: "label", Value: info.Label}}}
	if !verbose {
		return r, nil
	}
	shared := info.SharedWith
	if shared == nil {
		shared = []string{}
	}
	r.Info = &KeyInfo{Owner: info.Owner, SharedUsers: shared}
	defs := AttributeDefs()
	types := make([]ck.AttributeType, len(defs))
	for i, d := range defs {
		types[i] = d.Type
	}
	vals, err := s.GetAttributes(ctx, id, types)
	if err != nil {
		return KeyRecord{}, err
	}
	if len(vals) != len(defs) {
		return KeyRecord{}, errors.New("the HSM answered the wrong number of attributes")
	}
	r.Attributes = r.Attributes[:0]
	for i, v := range vals {
		if v.RV != ck.CKR_OK {
			continue // not an attribute of this kind of key
		}
		r.Attributes = append(r.Attributes, AttrValue{Name: defs[i].Name, Value: defs[i].Decode(v.Value)})
	}
	return r, nil
}

// Row is the key as a table row: reference, label, class, type, owner and
// shares.
func (r KeyRecord) Row() []string {
	return []string{r.Reference, r.info.Label, ClassName(r.info.Class), KeyTypeName(r.info.KeyType), r.info.Owner, strings.Join(r.info.SharedWith, ",")}
}

// KeyHeader is the header of Row.
func KeyHeader() []string {
	return []string{"KEY-REFERENCE", "LABEL", "CLASS", "KEY-TYPE", "OWNER", "SHARED-WITH"}
}
