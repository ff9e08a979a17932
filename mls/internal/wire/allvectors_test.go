package wire

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/vectors"
)

// roundTrip decodes data into v, re-encodes it and reports any difference.
func roundTrip(t *testing.T, what string, data []byte, v codecValue) {
	t.Helper()
	if err := Unmarshal(data, v); err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	out, err := Marshal(v)
	if err != nil {
		t.Errorf("%s: re-encode: %v", what, err)
		return
	}
	if !bytes.Equal(out, data) {
		t.Errorf("%s: re-encoding differs", what)
	}
}

// TestOtherVectorStructures round-trips every wire structure embedded in the
// vector files that belong to other packages (trees, update paths,
// GroupContexts, AuthenticatedContent, whole protocol runs), so that the data
// model is known to fit all of them. The per-file summary lines of those
// files are printed by the packages that check their semantics.
func TestOtherVectorStructures(t *testing.T) {
	if _, ok := vectors.Dir(); !ok {
		t.Skip("MLS test vectors not found")
	}
	t.Run("tree-validation", func(t *testing.T) {
		var cases []struct {
			Tree vectors.Hex `json:"tree"`
		}
		vectors.Load(t, "tree-validation.json", &cases)
		for i, c := range cases {
			roundTrip(t, fmt.Sprintf("case %d tree", i), c.Tree, new(RatchetTree))
		}
	})
	t.Run("treekem", func(t *testing.T) {
		var cases []struct {
			RatchetTree vectors.Hex `json:"ratchet_tree"`
			UpdatePaths []struct {
				UpdatePath vectors.Hex `json:"update_path"`
			} `json:"update_paths"`
		}
		vectors.Load(t, "treekem.json", &cases)
		for i, c := range cases {
			roundTrip(t, fmt.Sprintf("case %d tree", i), c.RatchetTree, new(RatchetTree))
			for j, p := range c.UpdatePaths {
				roundTrip(t, fmt.Sprintf("case %d path %d", i, j), p.UpdatePath, new(UpdatePath))
			}
		}
	})
	t.Run("tree-operations", func(t *testing.T) {
		var cases []struct {
			TreeBefore vectors.Hex `json:"tree_before"`
			TreeAfter  vectors.Hex `json:"tree_after"`
			Proposal   vectors.Hex `json:"proposal"`
		}
		vectors.Load(t, "tree-operations.json", &cases)
		for i, c := range cases {
			roundTrip(t, fmt.Sprintf("case %d tree_before", i), c.TreeBefore, new(RatchetTree))
			roundTrip(t, fmt.Sprintf("case %d tree_after", i), c.TreeAfter, new(RatchetTree))
			roundTrip(t, fmt.Sprintf("case %d proposal", i), c.Proposal, new(Proposal))
		}
	})
	t.Run("welcome", func(t *testing.T) {
		var cases []struct {
			KeyPackage vectors.Hex `json:"key_package"`
			Welcome    vectors.Hex `json:"welcome"`
		}
		vectors.Load(t, "welcome.json", &cases)
		for i, c := range cases {
			roundTrip(t, fmt.Sprintf("case %d key_package", i), c.KeyPackage, new(MLSMessage))
			roundTrip(t, fmt.Sprintf("case %d welcome", i), c.Welcome, new(MLSMessage))
		}
	})
	t.Run("transcript-hashes", func(t *testing.T) {
		var cases []struct {
			AuthenticatedContent vectors.Hex `json:"authenticated_content"`
		}
		vectors.Load(t, "transcript-hashes.json", &cases)
		for i, c := range cases {
			roundTrip(t, fmt.Sprintf("case %d", i), c.AuthenticatedContent, new(AuthenticatedContent))
		}
	})
	t.Run("message-protection", func(t *testing.T) {
		var cases []struct {
			Proposal        vectors.Hex `json:"proposal"`
			Commit          vectors.Hex `json:"commit"`
			ProposalPub     vectors.Hex `json:"proposal_pub"`
			ProposalPriv    vectors.Hex `json:"proposal_priv"`
			CommitPub       vectors.Hex `json:"commit_pub"`
			CommitPriv      vectors.Hex `json:"commit_priv"`
			ApplicationPriv vectors.Hex `json:"application_priv"`
		}
		vectors.Load(t, "message-protection.json", &cases)
		for i, c := range cases {
			roundTrip(t, fmt.Sprintf("case %d proposal", i), c.Proposal, new(Proposal))
			roundTrip(t, fmt.Sprintf("case %d commit", i), c.Commit, new(Commit))
			for name, m := range map[string][]byte{"proposal_pub": c.ProposalPub, "proposal_priv": c.ProposalPriv,
				"commit_pub": c.CommitPub, "commit_priv": c.CommitPriv, "application_priv": c.ApplicationPriv} {
				roundTrip(t, fmt.Sprintf("case %d %s", i, name), m, new(MLSMessage))
			}
		}
	})
	t.Run("key-schedule", func(t *testing.T) {
		var cases []struct {
			Epochs []struct {
				GroupContext vectors.Hex `json:"group_context"`
			} `json:"epochs"`
		}
		vectors.Load(t, "key-schedule.json", &cases)
		for i, c := range cases {
			for j, e := range c.Epochs {
				roundTrip(t, fmt.Sprintf("case %d epoch %d", i, j), e.GroupContext, new(GroupContext))
			}
		}
	})
	for _, file := range []string{"passive-client-welcome.json", "passive-client-handling-commit.json", "passive-client-random.json"} {
		t.Run(file, func(t *testing.T) {
			var cases []struct {
				KeyPackage  vectors.Hex `json:"key_package"`
				Welcome     vectors.Hex `json:"welcome"`
				RatchetTree vectors.Hex `json:"ratchet_tree"`
				Epochs      []struct {
					Proposals []vectors.Hex `json:"proposals"`
					Commit    vectors.Hex   `json:"commit"`
				} `json:"epochs"`
			}
			vectors.Load(t, file, &cases)
			for i, c := range cases {
				roundTrip(t, fmt.Sprintf("case %d key_package", i), c.KeyPackage, new(MLSMessage))
				roundTrip(t, fmt.Sprintf("case %d welcome", i), c.Welcome, new(MLSMessage))
				if c.RatchetTree != nil {
					roundTrip(t, fmt.Sprintf("case %d ratchet_tree", i), c.RatchetTree, new(RatchetTree))
				}
				for j, e := range c.Epochs {
					for k, p := range e.Proposals {
						roundTrip(t, fmt.Sprintf("case %d epoch %d proposal %d", i, j, k), p, new(MLSMessage))
					}
					roundTrip(t, fmt.Sprintf("case %d epoch %d commit", i, j), e.Commit, new(MLSMessage))
				}
			}
		})
	}
}
