package node

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
)

func TestIdentityCreatedOnceAndReloaded(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	k1, err := loadOrCreateIdentity(dir)
	if err != nil {
		t.Fatalf("first load: %v", err)
	}
	info, err := os.Stat(filepath.Join(dir, identityFileName))
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("identity file mode = %04o, want 0600", perm)
	}
	dinfo, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := dinfo.Mode().Perm(); perm != 0o700 {
		t.Errorf("data directory mode = %04o, want 0700", perm)
	}
	if k1.Type() != crypto.Ed25519 {
		t.Errorf("key type = %v, want Ed25519", k1.Type())
	}
	k2, err := loadOrCreateIdentity(dir)
	if err != nil {
		t.Fatalf("second load: %v", err)
	}
	if !k1.Equals(k2) {
		t.Fatal("reloading the data directory produced a different key")
	}
	id1, _ := peerIDFromKey(k1)
	id2, _ := peerIDFromKey(k2)
	if id1 != id2 || id1 == "" {
		t.Fatalf("peer IDs differ or empty: %s vs %s", id1, id2)
	}
	// No temporary files are left behind.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("data directory holds %v, want only %s", names, identityFileName)
	}
}

func TestIdentityConcurrentCreationAgrees(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	keys := make([]crypto.PrivKey, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { keys[i], errs[i] = loadOrCreateIdentity(dir) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("load %d: %v", i, errs[i])
		}
		if !keys[i].Equals(keys[0]) {
			t.Fatalf("concurrent creators disagree on the key (%d vs 0)", i)
		}
	}
}

func TestIdentityRejectsUnsafeMode(t *testing.T) {
	dir := t.TempDir()
	if _, err := loadOrCreateIdentity(dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, identityFileName)
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o666} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := loadOrCreateIdentity(dir)
		if !errors.Is(err, ErrIdentityPermissions) {
			t.Errorf("mode %04o: err = %v, want ErrIdentityPermissions", mode, err)
		}
	}
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := loadOrCreateIdentity(dir); err != nil {
		t.Errorf("owner-read-only file refused: %v", err)
	}
}

func TestIdentityRejectsSymlink(t *testing.T) {
	dir := t.TempDir()
	other := t.TempDir()
	if _, err := loadOrCreateIdentity(other); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(other, identityFileName), filepath.Join(dir, identityFileName)); err != nil {
		t.Skipf("symlinks unavailable: %v", err)
	}
	if _, err := loadOrCreateIdentity(dir); !errors.Is(err, ErrIdentityPermissions) {
		t.Fatalf("err = %v, want ErrIdentityPermissions", err)
	}
}

func TestIdentityRejectsCorruptFile(t *testing.T) {
	secp, _, err := crypto.GenerateSecp256k1Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	secpBytes, err := crypto.MarshalPrivateKey(secp)
	if err != nil {
		t.Fatal(err)
	}
	ed, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	edBytes, err := crypto.MarshalPrivateKey(ed)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":     {},
		"garbage":   []byte("not a key at all"),
		"truncated": edBytes[:len(edBytes)-5],
		"oversize":  make([]byte, maxIdentityFileSize+1),
		"secp256k1": secpBytes,
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, identityFileName), data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := loadOrCreateIdentity(dir)
			if !errors.Is(err, ErrIdentityCorrupt) {
				t.Fatalf("err = %v, want ErrIdentityCorrupt", err)
			}
			// The corrupt file must not have been replaced.
			got, rerr := os.ReadFile(filepath.Join(dir, identityFileName))
			if rerr != nil || string(got) != string(data) {
				t.Fatal("corrupt identity file was modified")
			}
		})
	}
}

func TestIdentityEmptyDir(t *testing.T) {
	if _, err := loadOrCreateIdentity(""); err == nil {
		t.Fatal("empty data directory accepted")
	}
}
