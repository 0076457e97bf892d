package hsm

import "sync"

// writeLocks serializes the read-modify-write changes of the device's
// records (attribute changes, sharing, destruction, users, settings, and
// peers' updates of them), so that no change is lost, without making
// changes to different objects wait for each other's store writes.
//
// A change to one existing object holds all shared and the object's
// stripe (lockObject): changes to objects on other stripes go on beside
// it, and their store writes commit together. A change that reads or
// writes more than one object, or a user or a setting, holds all
// exclusively (lockAll): nothing else changes while it runs, which is
// what lets a one-object change rely on the users and settings it reads
// (ShareKey's target user, the quorum values) staying as they are until
// its write is published. New objects take neither: their ids are
// reserved under Device.mu (keys.go: publish).
type writeLocks struct {
	all     sync.RWMutex
	objects [256]sync.Mutex
}

// lockObject takes the locks of a change to object id and returns their
// release.
func (w *writeLocks) lockObject(id ObjectID) (unlock func()) {
	w.all.RLock()
	m := &w.objects[uint64(id)%uint64(len(w.objects))]
	m.Lock()
	return func() {
		m.Unlock()
		w.all.RUnlock()
	}
}

// lockAll takes the lock of a change that spans records and returns its
// release.
func (w *writeLocks) lockAll() (unlock func()) {
	w.all.Lock()
	return w.all.Unlock
}
