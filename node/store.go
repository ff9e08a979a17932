package node

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// storeFileName is the bbolt database in the data directory.
const storeFileName = "meshchat.db"

// Buckets of the node's store. Every key layout is described where the
// bucket is used (persist.go).
const (
	bucketMeta        = "meta"
	bucketKeyPackages = "keypackages"
	bucketGroups      = "groups"
	bucketHistory     = "history"
	bucketOutbox      = "outbox"
)

var allBuckets = []string{bucketMeta, bucketKeyPackages, bucketGroups, bucketHistory, bucketOutbox, bucketHandshake, bucketAppLog}

// Store is the node's persistent storage: named buckets of byte keys and
// values with atomic multi-key transactions. The node keeps its MLS identity,
// KeyPackage private keys, group states, message history and outbox in it
// (see the package documentation, "Persistence"). The production
// implementation is one bbolt file in the data directory; the interface
// exists so that the layout code does not depend on bbolt.
type Store interface {
	// View runs fn in a read-only transaction.
	View(fn func(Tx) error) error
	// Update runs fn in a read-write transaction that is committed, and
	// made durable, only if fn returns nil.
	Update(fn func(Tx) error) error
	// Close releases the store.
	Close() error
}

// Tx is one transaction of a Store. Byte slices returned by Get and passed to
// ForEach are valid only during the transaction.
type Tx interface {
	// Get returns the value of key in bucket, or nil.
	Get(bucket string, key []byte) []byte
	// Put sets key in bucket to value.
	Put(bucket string, key, value []byte) error
	// Delete removes key from bucket; a missing key is not an error.
	Delete(bucket string, key []byte) error
	// ForEach calls fn for every key of bucket that starts with prefix, in
	// key order, stopping at the first error.
	ForEach(bucket string, prefix []byte, fn func(key, value []byte) error) error
	// Last returns the greatest key of bucket starting with prefix, or nil.
	Last(bucket string, prefix []byte) []byte
}

// boltStore is the Store on one bbolt file.
type boltStore struct {
	db *bolt.DB
}

// openBoltStore opens (creating if needed) the bbolt database in dataDir with
// file mode 0600. With noSync, commits skip fsync: faster, but a crash of the
// machine may lose the last transactions (tests and benchmarks only).
func openBoltStore(dataDir string, noSync bool) (*boltStore, error) {
	path := filepath.Join(dataDir, storeFileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, NoSync: noSync})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if info, err := os.Stat(path); err == nil && info.Mode().Perm()&0o077 != 0 {
		db.Close()
		return nil, fmt.Errorf("store: %s has mode %04o, want 0600: %w", path, info.Mode().Perm(), ErrIdentityPermissions)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: create buckets: %w", err)
	}
	return &boltStore{db: db}, nil
}

func (s *boltStore) View(fn func(Tx) error) error {
	return s.db.View(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

func (s *boltStore) Update(fn func(Tx) error) error {
	return s.db.Update(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

func (s *boltStore) Close() error { return s.db.Close() }

type boltTx struct{ tx *bolt.Tx }

func (t boltTx) bucket(name string) (*bolt.Bucket, error) {
	b := t.tx.Bucket([]byte(name))
	if b == nil {
		return nil, fmt.Errorf("store: no bucket %q", name)
	}
	return b, nil
}

func (t boltTx) Get(bucket string, key []byte) []byte {
	b, err := t.bucket(bucket)
	if err != nil {
		return nil
	}
	return b.Get(key)
}

func (t boltTx) Put(bucket string, key, value []byte) error {
	b, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	return b.Put(key, value)
}

func (t boltTx) Delete(bucket string, key []byte) error {
	b, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	return b.Delete(key)
}

func (t boltTx) ForEach(bucket string, prefix []byte, fn func(key, value []byte) error) error {
	b, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

func (t boltTx) Last(bucket string, prefix []byte) []byte {
	b, err := t.bucket(bucket)
	if err != nil {
		return nil
	}
	c := b.Cursor()
	var k []byte
	if upper := prefixEnd(prefix); upper == nil {
		k, _ = c.Last()
	} else if k, _ = c.Seek(upper); k == nil {
		k, _ = c.Last()
	} else {
		k, _ = c.Prev()
	}
	if k == nil || !bytes.HasPrefix(k, prefix) {
		return nil
	}
	return bytes.Clone(k)
}

// prefixEnd returns the smallest key greater than every key starting with
// prefix, or nil if there is none (prefix is empty or all 0xff).
func prefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
