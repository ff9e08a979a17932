package tree

import (
	"bytes"
	"crypto/rand"
	"testing"
	"time"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
	"github.com/meshchat/meshchat/mls/internal/vectors"
	"github.com/meshchat/meshchat/mls/internal/wire"
)

type treeValidationCase struct {
	CipherSuite uint16        `json:"cipher_suite"`
	Tree        vectors.Hex   `json:"tree"`
	GroupID     vectors.Hex   `json:"group_id"`
	TreeHashes  []vectors.Hex `json:"tree_hashes"`
	Resolutions [][]uint32    `json:"resolutions"`
}

// suiteFor looks up a vector's cipher suite, failing the case when this
// build cannot provide it.
func suiteFor(t *testing.T, id uint16) *ciphersuite.Suite {
	t.Helper()
	s, err := ciphersuite.Lookup(ciphersuite.ID(id))
	if err != nil {
		t.Fatalf("cipher suite %d: %v", id, err)
	}
	return s
}

func groupContext(suite *ciphersuite.Suite, groupID []byte, epoch uint64, treeHash, cth []byte) *wire.GroupContext {
	return &wire.GroupContext{
		Version:                 wire.ProtocolVersionMLS10,
		CipherSuite:             wire.CipherSuite(suite.ID()),
		GroupID:                 groupID,
		Epoch:                   epoch,
		TreeHash:                treeHash,
		ConfirmedTranscriptHash: cth,
		Extensions:              wire.Extensions{},
	}
}

func TestTreeValidationVectors(t *testing.T) {
	var cases []treeValidationCase
	vectors.Load(t, "tree-validation.json", &cases)
	tl := vectors.NewTally(t, "tree-validation.json")
	for i, c := range cases {
		tl.Run(t, vectors.Name("case", i, "suite", c.CipherSuite), func(t *testing.T) {
			suite := suiteFor(t, c.CipherSuite)
			tr, err := Decode(suite, c.Tree)
			if err != nil {
				t.Fatal(err)
			}
			if int(tr.width()) != len(c.TreeHashes) || len(c.Resolutions) != len(c.TreeHashes) {
				t.Fatalf("tree of %d nodes, vector has %d hashes and %d resolutions", tr.width(), len(c.TreeHashes), len(c.Resolutions))
			}
			for x := range c.TreeHashes {
				got, err := tr.NodeHash(NodeIndex(x))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, c.TreeHashes[x]) {
					t.Errorf("tree hash of node %d: got %x want %x", x, got, c.TreeHashes[x])
				}
				res, err := tr.Resolution(NodeIndex(x))
				if err != nil {
					t.Fatal(err)
				}
				if len(res) != len(c.Resolutions[x]) {
					t.Errorf("resolution of node %d: got %v want %v", x, res, c.Resolutions[x])
					continue
				}
				for k := range res {
					if uint32(res[k]) != c.Resolutions[x][k] {
						t.Errorf("resolution of node %d: got %v want %v", x, res, c.Resolutions[x])
						break
					}
				}
			}
			root, _ := tr.TreeHash()
			// The vectors' key_package lifetimes ran from 2023 to 2024; check
			// them at a time inside every window.
			p := &Params{GroupContext: groupContext(suite, c.GroupID, 0, root, nil), Now: time.Unix(1700000000, 0)}
			if err := tr.Validate(p); err != nil {
				t.Errorf("validate: %v", err)
			}
			// Parent-hash chains and signatures on their own, so a failure
			// names the rule.
			if err := tr.verifyParentHashes(); err != nil {
				t.Errorf("parent hashes: %v", err)
			}
			enc, err := tr.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, c.Tree) {
				t.Errorf("re-encoded tree differs")
			}
		})
	}
}

type treeOperationsCase struct {
	CipherSuite    uint16      `json:"cipher_suite"`
	TreeBefore     vectors.Hex `json:"tree_before"`
	Proposal       vectors.Hex `json:"proposal"`
	ProposalSender uint32      `json:"proposal_sender"`
	TreeHashBefore vectors.Hex `json:"tree_hash_before"`
	TreeAfter      vectors.Hex `json:"tree_after"`
	TreeHashAfter  vectors.Hex `json:"tree_hash_after"`
}

func TestTreeOperationsVectors(t *testing.T) {
	var cases []treeOperationsCase
	vectors.Load(t, "tree-operations.json", &cases)
	tl := vectors.NewTally(t, "tree-operations.json")
	for i, c := range cases {
		tl.Run(t, vectors.Name("case", i, "suite", c.CipherSuite), func(t *testing.T) {
			suite := suiteFor(t, c.CipherSuite)
			tr, err := Decode(suite, c.TreeBefore)
			if err != nil {
				t.Fatal(err)
			}
			if err := tr.VerifyTreeHash(c.TreeHashBefore); err != nil {
				t.Fatalf("before: %v", err)
			}
			before := tr.Clone()
			var prop wire.Proposal
			if err := wire.Unmarshal(c.Proposal, &prop); err != nil {
				t.Fatal(err)
			}
			switch prop.ProposalType {
			case wire.ProposalTypeAdd:
				_, err = tr.AddLeaf(&prop.Add.KeyPackage.LeafNode)
			case wire.ProposalTypeUpdate:
				err = tr.UpdateLeaf(LeafIndex(c.ProposalSender), &prop.Update.LeafNode)
			case wire.ProposalTypeRemove:
				err = tr.RemoveLeaf(LeafIndex(prop.Remove.Removed))
			default:
				t.Fatalf("unexpected proposal type %v", prop.ProposalType)
			}
			if err != nil {
				t.Fatal(err)
			}
			enc, err := tr.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, c.TreeAfter) {
				t.Errorf("tree after %v differs", prop.ProposalType)
			}
			if err := tr.VerifyTreeHash(c.TreeHashAfter); err != nil {
				t.Errorf("after: %v", err)
			}
			// The clone taken before is untouched.
			if err := before.VerifyTreeHash(c.TreeHashBefore); err != nil {
				t.Errorf("clone changed: %v", err)
			}
			// The incrementally maintained hash equals a fresh computation.
			fresh, err := Decode(suite, enc)
			if err != nil {
				t.Fatal(err)
			}
			if err := fresh.VerifyTreeHash(c.TreeHashAfter); err != nil {
				t.Errorf("fresh tree: %v", err)
			}
		})
	}
}

type treeKEMCase struct {
	CipherSuite             uint16      `json:"cipher_suite"`
	GroupID                 vectors.Hex `json:"group_id"`
	Epoch                   uint64      `json:"epoch"`
	ConfirmedTranscriptHash vectors.Hex `json:"confirmed_transcript_hash"`
	RatchetTree             vectors.Hex `json:"ratchet_tree"`
	LeavesPrivate           []struct {
		Index          uint32      `json:"index"`
		EncryptionPriv vectors.Hex `json:"encryption_priv"`
		SignaturePriv  vectors.Hex `json:"signature_priv"`
		PathSecrets    []struct {
			Node       uint32      `json:"node"`
			PathSecret vectors.Hex `json:"path_secret"`
		} `json:"path_secrets"`
	} `json:"leaves_private"`
	UpdatePaths []struct {
		Sender        uint32        `json:"sender"`
		UpdatePath    vectors.Hex   `json:"update_path"`
		PathSecrets   []vectors.Hex `json:"path_secrets"`
		CommitSecret  vectors.Hex   `json:"commit_secret"`
		TreeHashAfter vectors.Hex   `json:"tree_hash_after"`
	} `json:"update_paths"`
}

// privates loads the private state of every leaf in leaves_private.
func (c *treeKEMCase) privates(t *testing.T, suite *ciphersuite.Suite, tr *Tree) map[LeafIndex]*Private {
	t.Helper()
	out := map[LeafIndex]*Private{}
	for _, lp := range c.LeavesPrivate {
		p, err := NewPrivate(suite, LeafIndex(lp.Index), lp.EncryptionPriv)
		if err != nil {
			t.Fatal(err)
		}
		if !p.HasKey(tr, NodeIndex(2*lp.Index)) {
			t.Fatalf("leaf %d: encryption_priv does not match the tree", lp.Index)
		}
		for _, ps := range lp.PathSecrets {
			if err := p.SetPathSecret(tr, NodeIndex(ps.Node), ps.PathSecret); err != nil {
				t.Fatalf("leaf %d: %v", lp.Index, err)
			}
		}
		out[LeafIndex(lp.Index)] = p
	}
	return out
}

func TestTreeKEMVectors(t *testing.T) {
	var cases []treeKEMCase
	vectors.Load(t, "treekem.json", &cases)
	tl := vectors.NewTally(t, "treekem.json")
	for i, c := range cases {
		tl.Run(t, vectors.Name("case", i, "suite", c.CipherSuite), func(t *testing.T) {
			suite := suiteFor(t, c.CipherSuite)
			base, err := Decode(suite, c.RatchetTree)
			if err != nil {
				t.Fatal(err)
			}
			baseHash, err := base.TreeHash()
			if err != nil {
				t.Fatal(err)
			}
			gc := groupContext(suite, c.GroupID, 0, baseHash, c.ConfirmedTranscriptHash)
			if err := base.Validate(&Params{GroupContext: gc}); err != nil {
				t.Fatalf("base tree: %v", err)
			}
			privs := c.privates(t, suite, base)

			// Process every given UpdatePath.
			for _, up := range c.UpdatePaths {
				var path wire.UpdatePath
				if err := wire.Unmarshal(up.UpdatePath, &path); err != nil {
					t.Fatal(err)
				}
				sender := LeafIndex(up.Sender)
				tr := base.Clone()
				if err := tr.ValidateLeafNode(&path.LeafNode, wire.LeafNodeSourceCommit, sender, &Params{GroupContext: gc}); err != nil {
					t.Errorf("sender %d: leaf node: %v", sender, err)
				}
				if err := tr.MergeUpdatePath(sender, &path, nil); err != nil {
					t.Fatalf("sender %d: merge: %v", sender, err)
				}
				if err := tr.VerifyTreeHash(up.TreeHashAfter); err != nil {
					t.Errorf("sender %d: %v", sender, err)
				}
				ctx := encodeGC(t, groupContext(suite, c.GroupID, c.Epoch, up.TreeHashAfter, c.ConfirmedTranscriptHash))
				for leaf, p := range privs {
					if leaf == sender {
						continue
					}
					p = p.Clone()
					pathSecret, commitSecret, err := p.decryptPath(tr, sender, &path, nil, ctx)
					if err != nil {
						t.Errorf("sender %d, leaf %d: %v", sender, leaf, err)
						continue
					}
					if !bytes.Equal(pathSecret, up.PathSecrets[leaf]) {
						t.Errorf("sender %d, leaf %d: path secret %x want %x", sender, leaf, pathSecret, up.PathSecrets[leaf])
					}
					if !bytes.Equal(commitSecret, up.CommitSecret) {
						t.Errorf("sender %d, leaf %d: commit secret %x want %x", sender, leaf, commitSecret, up.CommitSecret)
					}
				}
				// After the merge the tree is still valid: the only new
				// signature (the sender's leaf) was checked above, so check
				// the structure and the parent-hash chains.
				if err := tr.checkUnmergedLeaves(); err != nil {
					t.Errorf("sender %d: tree after merge: %v", sender, err)
				}
				if err := tr.checkUniqueKeys(); err != nil {
					t.Errorf("sender %d: tree after merge: %v", sender, err)
				}
				if err := tr.verifyParentHashes(); err != nil {
					t.Errorf("sender %d: tree after merge: %v", sender, err)
				}
			}

			// Generate a path from the first and the last leaf with
			// private keys, and have every other such leaf process it.
			senders := c.LeavesPrivate
			if len(senders) > 2 {
				senders = append(senders[:1:1], senders[len(senders)-1])
			}
			for _, lp := range senders {
				sender := LeafIndex(lp.Index)
				signer, err := suite.ParseSigningKey(lp.SignaturePriv)
				if err != nil {
					t.Fatal(err)
				}
				gen := base.Clone()
				ps, err := gen.GenerateUpdatePath(sender, base.Leaf(sender), signer, c.GroupID, rand.Reader)
				if err != nil {
					t.Fatalf("generate from %d: %v", sender, err)
				}
				th, err := gen.TreeHash()
				if err != nil {
					t.Fatal(err)
				}
				ctx := encodeGC(t, groupContext(suite, c.GroupID, c.Epoch, th, c.ConfirmedTranscriptHash))
				path, err := ps.Encrypt(gen, ctx, nil, rand.Reader)
				if err != nil {
					t.Fatalf("encrypt from %d: %v", sender, err)
				}
				// Round trip the path through its encoding.
				enc, err := wire.Marshal(path)
				if err != nil {
					t.Fatal(err)
				}
				var received wire.UpdatePath
				if err := wire.Unmarshal(enc, &received); err != nil {
					t.Fatal(err)
				}
				for leaf, p := range privs {
					if leaf == sender {
						continue
					}
					tr := base.Clone()
					if err := tr.ValidateLeafNode(&received.LeafNode, wire.LeafNodeSourceCommit, sender, &Params{GroupContext: gc}); err != nil {
						t.Errorf("generated by %d, leaf %d: leaf node: %v", sender, leaf, err)
					}
					if err := tr.MergeUpdatePath(sender, &received, nil); err != nil {
						t.Fatalf("generated by %d, leaf %d: merge: %v", sender, leaf, err)
					}
					if err := tr.VerifyTreeHash(th); err != nil {
						t.Errorf("generated by %d, leaf %d: %v", sender, leaf, err)
					}
					p = p.Clone()
					commitSecret, err := p.DecryptPath(tr, sender, &received, nil, ctx)
					if err != nil {
						t.Errorf("generated by %d, leaf %d: %v", sender, leaf, err)
						continue
					}
					if !bytes.Equal(commitSecret, ps.CommitSecret()) {
						t.Errorf("generated by %d, leaf %d: commit secret differs", sender, leaf)
					}
				}
				if err := gen.verifyParentHashes(); err != nil {
					t.Errorf("generated by %d: tree after: %v", sender, err)
				}
			}
		})
	}
}

func encodeGC(t *testing.T, gc *wire.GroupContext) []byte {
	t.Helper()
	b, err := wire.Marshal(gc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
