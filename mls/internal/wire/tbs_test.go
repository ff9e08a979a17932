package wire

// These tests check the to-be-signed and to-be-hashed encodings against the
// signatures, MACs and hashes in the official vectors, using the standard
// library directly (the package itself does no cryptography). Suites whose
// algorithms the standard library lacks (Ed448: 4 and 6) are skipped.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/codec"
	"github.com/meshchat/meshchat/mls/internal/vectors"
	"golang.org/x/crypto/cryptobyte"
)

// suiteHash is the hash of a cipher suite (RFC 9420 §17.1).
func suiteHash(suite int) func() hash.Hash {
	switch suite {
	case 1, 2, 3:
		return sha256.New
	case 7:
		return sha512.New384
	default:
		return sha512.New
	}
}

func digest(suite int, parts ...[]byte) []byte {
	h := suiteHash(suite)()
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

// verifyWithLabel is VerifyWithLabel of RFC 9420 §5.1.2 for the suites the
// standard library supports; ok is false when the suite is not supported.
func verifyWithLabel(t *testing.T, suite int, pub []byte, label string, content, sig []byte) (valid, ok bool) {
	t.Helper()
	signContent := build(t, func(b *cryptobyte.Builder) {
		codec.AddOpaque(b, []byte("MLS 1.0 "+label))
		codec.AddOpaque(b, content)
	})
	var curve elliptic.Curve
	switch suite {
	case 1, 3:
		return ed25519.Verify(ed25519.PublicKey(pub), signContent, sig), true
	case 2:
		curve = elliptic.P256()
	case 5:
		curve = elliptic.P521()
	case 7:
		curve = elliptic.P384()
	default:
		return false, false
	}
	key, err := ecdsa.ParseUncompressedPublicKey(curve, pub)
	if err != nil {
		t.Fatalf("suite %d public key: %v", suite, err)
	}
	return ecdsa.VerifyASN1(key, digest(suite, signContent), sig), true
}

// TestTranscriptHashInputs recomputes the transcript hashes of
// transcript-hashes.json from ConfirmedTranscriptHashInput and
// InterimTranscriptHashInput (RFC 9420 §8.2).
func TestTranscriptHashInputs(t *testing.T) {
	var cases []struct {
		CipherSuite                  int         `json:"cipher_suite"`
		ConfirmationKey              vectors.Hex `json:"confirmation_key"`
		AuthenticatedContent         vectors.Hex `json:"authenticated_content"`
		InterimTranscriptHashBefore  vectors.Hex `json:"interim_transcript_hash_before"`
		ConfirmedTranscriptHashAfter vectors.Hex `json:"confirmed_transcript_hash_after"`
		InterimTranscriptHashAfter   vectors.Hex `json:"interim_transcript_hash_after"`
	}
	vectors.Load(t, "transcript-hashes.json", &cases)
	for i, c := range cases {
		var ac AuthenticatedContent
		if err := Unmarshal(c.AuthenticatedContent, &ac); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		confirmedInput := mustMarshal(t, ac.ConfirmedTranscriptHashInput())
		confirmed := digest(c.CipherSuite, c.InterimTranscriptHashBefore, confirmedInput)
		if !bytes.Equal(confirmed, c.ConfirmedTranscriptHashAfter) {
			t.Errorf("case %d: confirmed transcript hash mismatch", i)
		}
		interim := digest(c.CipherSuite, confirmed, mustMarshal(t, ac.InterimTranscriptHashInput()))
		if !bytes.Equal(interim, c.InterimTranscriptHashAfter) {
			t.Errorf("case %d: interim transcript hash mismatch", i)
		}
		// The confirmation tag is a MAC over the new confirmed hash.
		mac := hmac.New(suiteHash(c.CipherSuite), c.ConfirmationKey)
		mac.Write(confirmed)
		if !hmac.Equal(mac.Sum(nil), ac.Auth.ConfirmationTag) {
			t.Errorf("case %d: confirmation tag mismatch", i)
		}
		// The transcript input decodes back to the same content.
		var back ConfirmedTranscriptHashInput
		roundTrip(t, fmt.Sprintf("case %d confirmed input", i), confirmedInput, &back)
	}
}

// TestFramedContentTBSAndMembershipTag verifies the signatures and
// membership tags of the PublicMessages in message-protection.json, which
// exercises FramedContentTBS (with the GroupContext of a member sender) and
// AuthenticatedContentTBM (RFC 9420 §6.1, §6.2).
func TestFramedContentTBSAndMembershipTag(t *testing.T) {
	var cases []struct {
		CipherSuite             int         `json:"cipher_suite"`
		GroupID                 vectors.Hex `json:"group_id"`
		Epoch                   uint64      `json:"epoch"`
		TreeHash                vectors.Hex `json:"tree_hash"`
		ConfirmedTranscriptHash vectors.Hex `json:"confirmed_transcript_hash"`
		SignaturePub            vectors.Hex `json:"signature_pub"`
		MembershipKey           vectors.Hex `json:"membership_key"`
		ProposalPub             vectors.Hex `json:"proposal_pub"`
		CommitPub               vectors.Hex `json:"commit_pub"`
	}
	vectors.Load(t, "message-protection.json", &cases)
	checked := 0
	for i, c := range cases {
		gc := GroupContext{
			Version:                 ProtocolVersionMLS10,
			CipherSuite:             CipherSuite(c.CipherSuite),
			GroupID:                 c.GroupID,
			Epoch:                   c.Epoch,
			TreeHash:                c.TreeHash,
			ConfirmedTranscriptHash: c.ConfirmedTranscriptHash,
		}
		gcEnc := mustMarshal(t, &gc)
		for name, data := range map[string][]byte{"proposal_pub": c.ProposalPub, "commit_pub": c.CommitPub} {
			var m MLSMessage
			if err := Unmarshal(data, &m); err != nil {
				t.Fatalf("case %d %s: %v", i, name, err)
			}
			pm := m.PublicMessage
			ac := pm.AuthenticatedContent()
			tbs := mustMarshal(t, ac.TBS(gcEnc))
			valid, ok := verifyWithLabel(t, c.CipherSuite, c.SignaturePub, "FramedContentTBS", tbs, pm.Auth.Signature)
			if ok {
				checked++
				if !valid {
					t.Errorf("case %d %s: signature over FramedContentTBS does not verify", i, name)
				}
			}
			tbm := mustMarshal(t, &AuthenticatedContentTBM{ContentTBS: *ac.TBS(gcEnc), Auth: pm.Auth})
			mac := hmac.New(suiteHash(c.CipherSuite), c.MembershipKey)
			mac.Write(tbm)
			if !hmac.Equal(mac.Sum(nil), pm.MembershipTag) {
				t.Errorf("case %d %s: membership tag mismatch", i, name)
			}
			roundTrip(t, fmt.Sprintf("case %d %s TBS", i, name), tbs, new(FramedContentTBS))
			roundTrip(t, fmt.Sprintf("case %d %s TBM", i, name), tbm, new(AuthenticatedContentTBM))
		}
	}
	if checked == 0 {
		t.Fatal("no signature checked")
	}
}

// TestKeyPackageAndLeafSignatures verifies the KeyPackage and LeafNode
// signatures of welcome.json (KeyPackageTBS, LeafNodeTBS of source
// key_package) and the leaf signatures of the trees in tree-validation.json
// (LeafNodeTBS with group ID and leaf index for the update and commit
// sources).
func TestKeyPackageAndLeafSignatures(t *testing.T) {
	checked := 0
	t.Run("welcome", func(t *testing.T) {
		var cases []struct {
			CipherSuite int         `json:"cipher_suite"`
			KeyPackage  vectors.Hex `json:"key_package"`
		}
		vectors.Load(t, "welcome.json", &cases)
		for i, c := range cases {
			var m MLSMessage
			if err := Unmarshal(c.KeyPackage, &m); err != nil {
				t.Fatalf("case %d: %v", i, err)
			}
			kp := m.KeyPackage
			pub := kp.LeafNode.SignatureKey
			valid, ok := verifyWithLabel(t, c.CipherSuite, pub, "KeyPackageTBS", mustMarshal(t, kp.TBS()), kp.Signature)
			if !ok {
				continue
			}
			checked++
			if !valid {
				t.Errorf("case %d: KeyPackage signature does not verify", i)
			}
			leafTBS := mustMarshal(t, kp.LeafNode.TBS([]byte("ignored for key_package"), 12345))
			if valid, _ := verifyWithLabel(t, c.CipherSuite, pub, "LeafNodeTBS", leafTBS, kp.LeafNode.Signature); !valid {
				t.Errorf("case %d: LeafNode signature does not verify", i)
			}
		}
	})
	t.Run("tree-validation", func(t *testing.T) {
		var cases []struct {
			CipherSuite int         `json:"cipher_suite"`
			Tree        vectors.Hex `json:"tree"`
			GroupID     vectors.Hex `json:"group_id"`
		}
		vectors.Load(t, "tree-validation.json", &cases)
		sources := map[LeafNodeSource]int{}
		for i, c := range cases {
			var tree RatchetTree
			if err := Unmarshal(c.Tree, &tree); err != nil {
				t.Fatalf("case %d: %v", i, err)
			}
			for n, node := range tree {
				if node == nil || node.NodeType != NodeTypeLeaf {
					continue
				}
				leaf := node.Leaf
				tbs := mustMarshal(t, leaf.TBS(c.GroupID, uint32(n/2)))
				valid, ok := verifyWithLabel(t, c.CipherSuite, leaf.SignatureKey, "LeafNodeTBS", tbs, leaf.Signature)
				if !ok {
					break
				}
				checked++
				sources[leaf.LeafNodeSource]++
				if !valid {
					t.Errorf("case %d leaf %d (%v): signature does not verify", i, n/2, leaf.LeafNodeSource)
				}
				roundTrip(t, fmt.Sprintf("case %d leaf %d TBS", i, n/2), tbs, new(LeafNodeTBS))
			}
		}
		if sources[LeafNodeSourceCommit] == 0 {
			t.Errorf("no commit-source leaf checked: %v", sources)
		}
		t.Logf("leaf signatures checked by source: %v", sources)
	})
	if checked == 0 {
		t.Fatal("no signature checked")
	}
}

// TestTreeHashInputs recomputes every node's tree hash in
// tree-validation.json from TreeHashInput (RFC 9420 §7.8), with the array
// tree arithmetic of Appendix C written out here.
func TestTreeHashInputs(t *testing.T) {
	var cases []struct {
		CipherSuite int           `json:"cipher_suite"`
		Tree        vectors.Hex   `json:"tree"`
		TreeHashes  []vectors.Hex `json:"tree_hashes"`
	}
	vectors.Load(t, "tree-validation.json", &cases)
	for i, c := range cases {
		var tree RatchetTree
		if err := Unmarshal(c.Tree, &tree); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		width := int(2*tree.LeafCount() - 1)
		if width != len(c.TreeHashes) {
			t.Fatalf("case %d: %d nodes, vector has %d hashes", i, width, len(c.TreeHashes))
		}
		nodeAt := func(x int) *Node {
			if x < len(tree) {
				return tree[x]
			}
			return nil
		}
		var treeHash func(x int) []byte
		treeHash = func(x int) []byte {
			level := 0
			for (x>>level)&1 == 1 {
				level++
			}
			var in *TreeHashInput
			if level == 0 {
				var leaf *LeafNode
				if n := nodeAt(x); n != nil {
					leaf = n.Leaf
				}
				in = LeafTreeHashInput(uint32(x/2), leaf)
			} else {
				left := x ^ (1 << (level - 1))
				right := x ^ (3 << (level - 1))
				var parent *ParentNode
				if n := nodeAt(x); n != nil {
					parent = n.Parent
				}
				in = ParentTreeHashInput(parent, treeHash(left), treeHash(right))
			}
			enc := mustMarshal(t, in)
			h := digest(c.CipherSuite, enc)
			if !bytes.Equal(h, c.TreeHashes[x]) {
				t.Errorf("case %d node %d: tree hash mismatch", i, x)
			}
			return h
		}
		root := int(tree.LeafCount()) - 1
		treeHash(root)
	}
}
