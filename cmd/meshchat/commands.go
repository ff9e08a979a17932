package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/meshchat/meshchat/node"
	"github.com/spf13/cobra"
)

// clientCommand builds a command that talks to the daemon; run gets a
// connected client.
func clientCommand(use, short, long string, args cobra.PositionalArgs, run func(cmd *cobra.Command, c *client, args []string) error) (*cobra.Command, *clientOptions) {
	opts := &clientOptions{}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  args,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(*opts)
			if err != nil {
				return err
			}
			return run(cmd, c, args)
		},
	}
	clientFlags(cmd, opts)
	return cmd, opts
}

// timeoutContext bounds a client call.
func timeoutContext(cmd *cobra.Command, d time.Duration) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return context.WithTimeout(ctx, d)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newIDCommand() *cobra.Command {
	var asJSON, addrs bool
	cmd, _ := clientCommand("id", "Print the daemon's peer ID (or addresses)",
		`Print the running daemon's peer ID on stdout. With --addrs, print its full
multiaddrs instead, one per line (each ends in /p2p/<peer ID> and can be
given to another daemon's --bootstrap). With --json, print
{"peer_id": ..., "addrs": [...]}.`,
		exactArgs(), func(cmd *cobra.Command, c *client, _ []string) error {
			if asJSON && addrs {
				return usagef("--json and --addrs exclude each other")
			}
			ctx, cancel := timeoutContext(cmd, defaultRequestTimeout)
			defer cancel()
			var id idInfo
			if err := c.call(ctx, http.MethodGet, "/v1/id", nil, &id); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch {
			case asJSON:
				return printJSON(out, id)
			case addrs:
				for _, a := range id.Addrs {
					fmt.Fprintln(out, a)
				}
				return nil
			}
			_, err := fmt.Fprintln(out, id.PeerID)
			return err
		})
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"peer_id": ..., "addrs": [...]}`)
	cmd.Flags().BoolVar(&addrs, "addrs", false, "print the full multiaddrs, one per line")
	return cmd
}

func newCreateCommand() *cobra.Command {
	var open, invite bool
	cmd, _ := clientCommand("create [NAME]", "Create a group and print its topic ID",
		`Create a group with this node as its only member and print its topic ID
alone on stdout (T=$(meshchat create --open) works).

--open (the default): anyone who knows the topic ID may join with
'meshchat join TOPIC_ID'. --invite: only peers a member adds
('meshchat add') or who hold an invite code ('meshchat invite') get in.`,
		rangeArgs(0, "NAME"), func(cmd *cobra.Command, c *client, args []string) error {
			if open && invite {
				return usagef("--open and --invite exclude each other")
			}
			req := createRequest{Policy: "open"}
			if invite {
				req.Policy = "invite"
			}
			if len(args) == 1 {
				req.Name = args[0]
			}
			ctx, cancel := timeoutContext(cmd, defaultRequestTimeout)
			defer cancel()
			var g groupInfo
			if err := c.call(ctx, http.MethodPost, "/v1/groups", req, &g); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "created %s group %q at epoch %d\n", g.Policy, g.Name, g.Epoch)
			_, err := fmt.Fprintln(cmd.OutOrStdout(), g.Topic)
			return err
		})
	cmd.Flags().BoolVar(&open, "open", false, "anyone with the topic ID may join (default)")
	cmd.Flags().BoolVar(&invite, "invite", false, "only added peers and invite code holders may join")
	return cmd
}

func newInviteCommand() *cobra.Command {
	cmd, _ := clientCommand("invite TOPIC_ID", "Print a new invite code for a group",
		`Print a new invite code for the group alone on stdout. Whoever holds it can
'meshchat join CODE' even if the group is invite-only. Hand it over a channel
you trust; it stays valid as long as the group exists.`,
		exactArgs("TOPIC_ID"), func(cmd *cobra.Command, c *client, args []string) error {
			ctx, cancel := timeoutContext(cmd, defaultRequestTimeout)
			defer cancel()
			var inv inviteResponse
			if err := c.call(ctx, http.MethodPost, groupPath(args[0], "invites"), nil, &inv); err != nil {
				return err
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), inv.Code)
			return err
		})
	return cmd
}

func newJoinCommand() *cobra.Command {
	var timeout time.Duration
	cmd, _ := clientCommand("join TOPIC_ID|INVITE_CODE", "Join a group and wait until admitted",
		`Ask the members of a group to let this node in and wait until one of them
has (its Welcome processed), then print the topic ID alone on stdout.

An open group admits anyone with the topic ID; an invite-only group needs an
invite code from 'meshchat invite'. If no member admits this node within
--timeout (refused by an invite-only group, or no member online), join exits
with status 1 and says so.`,
		exactArgs("TOPIC_ID|INVITE_CODE"), func(cmd *cobra.Command, c *client, args []string) error {
			if timeout <= 0 {
				return usagef("--timeout must be positive")
			}
			ctx, cancel := timeoutContext(cmd, timeout+10*time.Second)
			defer cancel()
			var g groupInfo
			err := c.call(ctx, http.MethodPost, "/v1/join", joinRequest{Code: args[0], TimeoutMS: timeout.Milliseconds()}, &g)
			if err != nil {
				return fmt.Errorf("join: %w", err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "joined %s group %q at epoch %d with %s\n", g.Policy, g.Name, g.Epoch, members(len(g.Members)))
			_, err = fmt.Fprintln(cmd.OutOrStdout(), g.Topic)
			return err
		})
	cmd.Flags().DurationVar(&timeout, "timeout", 60*time.Second, "how long to wait to be admitted")
	return cmd
}

func newSendCommand() *cobra.Command {
	cmd, _ := clientCommand("send TOPIC_ID [TEXT...]", "Send a message to a group",
		`Send TEXT (the remaining arguments, joined by spaces) to the group. Without
TEXT, the message is read from stdin (one message; a final newline is
dropped).`,
		cobra.MinimumNArgs(0), func(cmd *cobra.Command, c *client, args []string) error {
			if len(args) == 0 {
				return usagef("send: missing TOPIC_ID (see '%s --help')", cmd.CommandPath())
			}
			var text string
			if len(args) > 1 {
				text = strings.Join(args[1:], " ")
			} else {
				b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), node.MaxMessageSize+2))
				if err != nil {
					return fmt.Errorf("read stdin: %w", err)
				}
				text = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
			}
			if text == "" {
				return usagef("send: nothing to send (give TEXT or pipe it on stdin)")
			}
			if len(text) > node.MaxMessageSize {
				return usagef("send: message exceeds %d bytes", node.MaxMessageSize)
			}
			ctx, cancel := timeoutContext(cmd, sendTimeout+10*time.Second)
			defer cancel()
			var m messageInfo
			if err := c.call(ctx, http.MethodPost, groupPath(args[0], "messages"), sendRequest{Text: text}, &m); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "sent in epoch %d\n", m.Epoch)
			return nil
		})
	return cmd
}

// shortPeer abbreviates a peer ID for people: its last 8 characters (the
// first ones are the same for every Ed25519 peer ID).
func shortPeer(id string) string {
	if len(id) <= 10 {
		return id
	}
	return "…" + id[len(id)-8:]
}

// formatMessage prints a message for people.
func formatMessage(m messageInfo) string {
	who := shortPeer(m.Sender)
	if m.Own {
		who = "me"
	}
	return fmt.Sprintf("%s %s [epoch %d]: %s", m.Time.Local().Format("15:04:05"), who, m.Epoch, m.Text)
}

func newReadCommand() *cobra.Command {
	var follow, asJSON bool
	var limit int
	cmd, _ := clientCommand("read TOPIC_ID", "Print a group's messages",
		`Print the group's stored messages, oldest first; with --follow, keep
printing new ones as they arrive until interrupted (or this node is removed
from the group, which exits with status 1).

With --json, each message is one JSON object per line with the fields
topic, id, sender (peer ID), epoch, seq, time (sender's clock, RFC 3339),
received_at, own and text.`,
		exactArgs("TOPIC_ID"), func(cmd *cobra.Command, c *client, args []string) error {
			if limit < 0 {
				return usagef("--limit must not be negative")
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			if !follow {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, defaultRequestTimeout)
				defer cancel()
			}
			out := cmd.OutOrStdout()
			err := c.readMessages(ctx, args[0], follow, limit, func(m messageInfo, line []byte) error {
				var err error
				if asJSON {
					_, err = fmt.Fprintf(out, "%s\n", line)
				} else {
					_, err = fmt.Fprintln(out, formatMessage(m))
				}
				return err
			})
			if follow && ctx.Err() != nil {
				return nil // interrupted
			}
			return err
		})
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new messages")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per line")
	cmd.Flags().IntVar(&limit, "limit", 0, "print only the last N stored messages (0: all)")
	return cmd
}

func newMembersCommand() *cobra.Command {
	var asJSON bool
	cmd, _ := clientCommand("members TOPIC_ID", "List a group's members",
		`Print the peer IDs of the group's members in leaf order, one per line.
With --json, print [{"peer_id", "leaf", "self"}, ...].`,
		exactArgs("TOPIC_ID"), func(cmd *cobra.Command, c *client, args []string) error {
			ctx, cancel := timeoutContext(cmd, defaultRequestTimeout)
			defer cancel()
			var ms []memberInfo
			if err := c.call(ctx, http.MethodGet, groupPath(args[0], "members"), nil, &ms); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), ms)
			}
			for _, m := range ms {
				fmt.Fprintln(cmd.OutOrStdout(), m.PeerID)
			}
			return nil
		})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newAddCommand() *cobra.Command {
	cmd, _ := clientCommand("add TOPIC_ID PEER_ID", "Add a peer to a group",
		`Add the peer to the group: fetch one of its KeyPackages from the DHT, commit
the Add (a new epoch) and deliver the Welcome (directly if the peer is online,
else through its DHT mailbox).`,
		exactArgs("TOPIC_ID", "PEER_ID"), func(cmd *cobra.Command, c *client, args []string) error {
			return commitCall(cmd, c, http.MethodPost, groupPath(args[0], "members"), addRequest{PeerID: args[1]}, "added "+args[1])
		})
	return cmd
}

func newRemoveCommand() *cobra.Command {
	cmd, _ := clientCommand("remove TOPIC_ID PEER_ID", "Remove a member from a group",
		`Remove the member from the group with a commit (a new epoch). From that
epoch on it cannot read the group's messages.`,
		exactArgs("TOPIC_ID", "PEER_ID"), func(cmd *cobra.Command, c *client, args []string) error {
			return commitCall(cmd, c, http.MethodDelete, groupPath(args[0], "members", args[1]), nil, "removed "+args[1])
		})
	return cmd
}

func newRotateCommand() *cobra.Command {
	cmd, _ := clientCommand("rotate TOPIC_ID", "Rotate this node's keys in a group",
		`Commit a self-update: fresh leaf and path keys for this node and a new epoch
for the group (forward secrecy and post-compromise security).`,
		exactArgs("TOPIC_ID"), func(cmd *cobra.Command, c *client, args []string) error {
			return commitCall(cmd, c, http.MethodPost, groupPath(args[0], "rotate"), nil, "rotated keys")
		})
	return cmd
}

// commitCall runs an API call that makes a commit and reports the new epoch
// on stderr.
func commitCall(cmd *cobra.Command, c *client, method, path string, body any, done string) error {
	ctx, cancel := timeoutContext(cmd, commitTimeout+10*time.Second)
	defer cancel()
	var g groupInfo
	if err := c.call(ctx, method, path, body, &g); err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s; group now at epoch %d with %s (epoch authenticator %s)\n", done, g.Epoch, members(len(g.Members)), shortHex(g.EpochAuthenticator))
	return nil
}

// shortHex abbreviates a hex string for people.
func shortHex(h string) string {
	if len(h) > 16 {
		return h[:16] + "…"
	}
	return h
}

func newGroupsCommand() *cobra.Command {
	var asJSON bool
	cmd, _ := clientCommand("groups", "List this node's groups",
		`List the node's groups, one per line: topic ID, epoch, member count, policy,
name, and "removed" for groups this node was removed from. With --json, print
an array of objects with topic, name, policy, epoch, epoch_authenticator,
members, removed and topic_peers (peers currently seen on the group's
topic).`,
		exactArgs(), func(cmd *cobra.Command, c *client, _ []string) error {
			ctx, cancel := timeoutContext(cmd, defaultRequestTimeout)
			defer cancel()
			var gs []groupInfo
			if err := c.call(ctx, http.MethodGet, "/v1/groups", nil, &gs); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), gs)
			}
			for _, g := range gs {
				state := ""
				if g.Removed {
					state = "\tremoved"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s\tepoch %d\t%s\t%s\t%s%s\n", g.Topic, g.Epoch, members(len(g.Members)), g.Policy, g.Name, state)
			}
			return nil
		})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// errStop ends a message loop without an error.
var errStop = errors.New("stop")

// members says "1 member" or "N members".
func members(n int) string {
	if n == 1 {
		return "1 member"
	}
	return fmt.Sprintf("%d members", n)
}
