package store

import (
	"cmp"
	"fmt"
	"math"
	"sync"
	"time"
)

// Kind says what a record holds. Its values are persisted: never renumber.
type Kind uint8

// Record kinds. Zero is invalid.
const (
	KindObject  Kind = 1 // a token object (a masked key and its attributes)
	KindUser    Kind = 2 // an HSM user
	KindSetting Kind = 3 // a cluster setting
)

// kinds lists every valid Kind in ascending order.
func kinds() []Kind { return []Kind{KindObject, KindUser, KindSetting} }

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool { return k >= KindObject && k <= KindSetting }

func (k Kind) String() string {
	switch k {
	case KindObject:
		return "object"
	case KindUser:
		return "user"
	case KindSetting:
		return "setting"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Version orders the writes of one record across the cluster: a hybrid
// logical clock reading (Wall, Logical) made by node Node. Versions compare
// by Wall, then Logical, then Node, so two nodes never tie.
type Version struct {
	Wall    int64  // unix nanoseconds, the HLC's physical part
	Logical uint32 // the HLC's counter within one Wall value
	Node    uint32 // the node that made the write
}

// IsZero reports whether v is the zero Version, which no write carries.
func (v Version) IsZero() bool { return v == Version{} }

// Compare returns -1 if v orders before w, +1 if after, 0 if equal.
func (v Version) Compare(w Version) int {
	switch {
	case v.Wall != w.Wall:
		return cmp.Compare(v.Wall, w.Wall)
	case v.Logical != w.Logical:
		return cmp.Compare(v.Logical, w.Logical)
	default:
		return cmp.Compare(v.Node, w.Node)
	}
}

func (v Version) String() string {
	return fmt.Sprintf("%d.%d@%d", v.Wall, v.Logical, v.Node)
}

// Clock is a hybrid logical clock. Every Now is strictly greater, in
// (Wall, Logical), than every earlier Now and every Observe'd version, even
// when the wall clock steps backwards. It is safe for concurrent use.
type Clock struct {
	node uint32
	now  func() time.Time

	mu      sync.Mutex // guards wall and logical: the greatest (Wall, Logical) issued or observed
	wall    int64
	logical uint32
}

// NewClock returns a clock stamping versions for node. now reads wall time;
// nil means time.Now.
func NewClock(node uint32, now func() time.Time) *Clock {
	if now == nil {
		now = time.Now
	}
	return &Clock{node: node, now: now}
}

// Now returns a new version, greater than any seen before.
func (c *Clock) Now() Version {
	pt := c.now().UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case pt > c.wall:
		c.wall, c.logical = pt, 0
	case c.logical == math.MaxUint32:
		// The counter is exhausted: borrow a nanosecond from the future.
		c.wall, c.logical = c.wall+1, 0
	default:
		c.logical++
	}
	return Version{Wall: c.wall, Logical: c.logical, Node: c.node}
}

// Observe moves the clock past v, so later Now results order after it.
// A peer whose wall clock runs ahead drags this clock with it; that is the
// price of never ordering a later write before an earlier one.
func (c *Clock) Observe(v Version) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v.Wall > c.wall || (v.Wall == c.wall && v.Logical > c.logical) {
		c.wall, c.logical = v.Wall, v.Logical
	}
}
