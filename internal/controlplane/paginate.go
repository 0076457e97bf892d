package controlplane

import (
	"encoding/base64"
	"fmt"
	"strings"
	"time"
)

// Pagination: results are in a stable order (by creation time, then id);
// a NextToken is the opaque position of the last item returned, so items
// created or deleted between pages neither repeat nor shift the rest.

const tokenPrefix = "coffer1:"

func encodeToken(pos string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(tokenPrefix + pos))
}

func decodeToken(tok string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	pos, ok := strings.CutPrefix(string(b), tokenPrefix)
	if err != nil || !ok || pos == "" {
		return "", invalid("Invalid NextToken %q: pass the NextToken of the previous response unchanged.", truncate(tok, 64))
	}
	return pos, nil
}

// position orders items by creation time, then id.
func position(created time.Time, id string) string {
	return fmt.Sprintf("%020d/%s", created.UnixNano(), id)
}

// paginate returns the page of items after token, at most max (default
// and bound limit) long, and the token of the next page ("" at the end).
// items are sorted by pos, ascending unless desc.
func paginate[T any](items []T, pos func(T) string, token string, max *int, limit int, desc bool) ([]T, string, error) {
	n := limit
	if max != nil {
		if *max < 1 || *max > limit {
			return nil, "", invalid("1 validation error detected: Value '%d' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and %d", *max, limit)
		}
		n = *max
	}
	start := 0
	if token != "" {
		after, err := decodeToken(token)
		if err != nil {
			return nil, "", err
		}
		start = len(items)
		for i, it := range items {
			p := pos(it)
			if (!desc && p > after) || (desc && p < after) {
				start = i
				break
			}
		}
	}
	end := min(start+n, len(items))
	out := items[start:end]
	next := ""
	if end < len(items) {
		next = encodeToken(pos(items[end-1]))
	}
	return out, next, nil
}
