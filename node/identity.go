package node

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// identityFileName is the file in the data directory that holds the node's
// libp2p private key.
const identityFileName = "identity.key"

// maxIdentityFileSize bounds how much of the identity file is read. A
// protobuf-encoded Ed25519 private key is 68 bytes; anything much larger is
// not ours.
const maxIdentityFileSize = 4096

// ErrIdentityPermissions reports an identity file (or data directory) that
// other users could read or that is not a regular file. The node refuses to
// use a key that may already have leaked, and refuses to guess whether a
// symlink points where the user meant.
var ErrIdentityPermissions = errors.New("identity file has unsafe permissions")

// ErrIdentityCorrupt reports an identity file whose contents are not a
// libp2p Ed25519 private key.
var ErrIdentityCorrupt = errors.New("identity file is corrupt")

// loadOrCreateIdentity returns the node's long-term libp2p Ed25519 key from
// dataDir, creating the directory (mode 0700) and a fresh key (mode 0600) on
// first use.
//
// The key is the node's only long-term identity: its peer ID is derived from
// it, and the MLS basic credential of the node carries that peer ID's bytes as
// its identity, so "add peer X" names exactly one key. Losing the file means
// becoming a different peer; copying it means impersonation. Hence the strict
// checks: an existing file must be a regular file readable by the owner only,
// and must decode as an Ed25519 key; anything else is an error, never a
// silent regeneration.
//
// Creation is atomic: the key is written to a temporary file in dataDir,
// synced, and then hard-linked into place, which fails if another process
// created the file first; in that case the other process's key is loaded.
func loadOrCreateIdentity(dataDir string) (crypto.PrivKey, error) {
	if dataDir == "" {
		return nil, errors.New("identity: empty data directory")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("identity: create data directory: %w", err)
	}
	path := filepath.Join(dataDir, identityFileName)
	key, err := readIdentity(path)
	if err == nil {
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := createIdentity(dataDir, path); err != nil {
		return nil, err
	}
	return readIdentity(path)
}

// readIdentity loads and checks the identity file at path. A missing file
// yields an error wrapping fs.ErrNotExist.
func readIdentity(path string) (crypto.PrivKey, error) {
	info, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("identity: %s is not a regular file (mode %v): %w", path, info.Mode(), ErrIdentityPermissions)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("identity: %s has mode %04o, want 0600 (run chmod 600): %w", path, perm, ErrIdentityPermissions)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxIdentityFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("identity: read %s: %w", path, err)
	}
	if len(data) > maxIdentityFileSize {
		return nil, fmt.Errorf("identity: %s is larger than %d bytes: %w", path, maxIdentityFileSize, ErrIdentityCorrupt)
	}
	key, err := crypto.UnmarshalPrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("identity: decode %s: %v: %w", path, err, ErrIdentityCorrupt)
	}
	if key.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("identity: %s holds a %v key, want Ed25519: %w", path, key.Type(), ErrIdentityCorrupt)
	}
	return key, nil
}

// createIdentity generates a fresh Ed25519 key and links it into place at
// path unless a file already exists there.
func createIdentity(dataDir, path string) error {
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return fmt.Errorf("identity: generate key: %w", err)
	}
	data, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return fmt.Errorf("identity: encode key: %w", err)
	}
	defer clear(data)

	// os.CreateTemp creates the file with mode 0600.
	tmp, err := os.CreateTemp(dataDir, ".identity-*.tmp")
	if err != nil {
		return fmt.Errorf("identity: create temporary file: %w", err)
	}
	tmpPath := tmp.Name()
	defer os.Remove(tmpPath)
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("identity: write temporary file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("identity: sync temporary file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("identity: close temporary file: %w", err)
	}
	// Link, unlike rename, refuses to replace an existing file: if another
	// process won the race, its key stands and ours is discarded.
	if err := os.Link(tmpPath, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("identity: install %s: %w", path, err)
	}
	if dir, err := os.Open(dataDir); err == nil {
		// Make the new directory entry durable; failure here is not fatal
		// for correctness of this run.
		_ = dir.Sync()
		dir.Close()
	}
	return nil
}

// peerIDFromKey returns the peer ID of key, the identity other peers and the
// MLS credential use for this node.
func peerIDFromKey(key crypto.PrivKey) (peer.ID, error) {
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return "", fmt.Errorf("identity: derive peer ID: %w", err)
	}
	return id, nil
}
