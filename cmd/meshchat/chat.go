package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
)

// chatEchoWait bounds how long a chat that ends waits for its own last
// messages to come back on the stream.
const chatEchoWait = 3 * time.Second

// echoTracker matches the messages a chat sent with their echo on the
// message stream.
type echoTracker struct {
	mu      sync.Mutex
	seen    map[string]bool // own message IDs seen on the stream
	pending []string        // IDs sent by this chat
}

func (e *echoTracker) echoed(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seen[id] = true
}

func (e *echoTracker) sent(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.pending = append(e.pending, id)
}

// done reports whether every sent message was echoed.
func (e *echoTracker) done() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, id := range e.pending {
		if !e.seen[id] {
			return false
		}
	}
	return true
}

const chatHelp = "commands: /members, /rotate, /info, /help, /quit (or end of input)"

func newChatCommand() *cobra.Command {
	var history int
	cmd, _ := clientCommand("chat TOPIC_ID", "Chat in a group interactively",
		`Open an interactive chat in the group: the last messages, then new ones as
they arrive, and a prompt. Each line you type is sent as a message; lines
starting with / are commands: /members, /rotate, /info, /help, /quit.

Works with a pipe too: each line of stdin is one message or command, and the
chat ends at the end of input. Messages go to stdout, status lines to stderr.`,
		exactArgs("TOPIC_ID"), func(cmd *cobra.Command, c *client, args []string) error {
			if history < 1 {
				return usagef("--history must be at least 1")
			}
			return runChat(cmd, c, args[0], history)
		})
	cmd.Flags().IntVar(&history, "history", 20, "how many stored messages to show first")
	return cmd
}

// chatUI serializes output to the terminal and redraws the prompt.
type chatUI struct {
	mu     sync.Mutex
	out    io.Writer
	errOut io.Writer
	tty    bool
}

func (u *chatUI) prompt() {
	if u.tty {
		fmt.Fprint(u.out, "> ")
	}
}

// line prints a line above the prompt.
func (u *chatUI) line(w io.Writer, s string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.tty {
		fmt.Fprint(u.out, "\r\033[K")
	}
	fmt.Fprintln(w, s)
	u.prompt()
}

func (u *chatUI) message(s string) { u.line(u.out, s) }
func (u *chatUI) status(s string)  { u.line(u.errOut, s) }

// isTerminal reports whether r is a character device (an interactive
// terminal).
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

func runChat(cmd *cobra.Command, c *client, topic string, history int) error {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	rctx, rcancel := context.WithTimeout(ctx, defaultRequestTimeout)
	var g groupInfo
	err := c.call(rctx, http.MethodGet, groupPath(topic), nil, &g)
	rcancel()
	if err != nil {
		return err
	}
	ui := &chatUI{out: cmd.OutOrStdout(), errOut: cmd.ErrOrStderr(), tty: isTerminal(cmd.InOrStdin())}
	fmt.Fprintf(ui.errOut, "group %q (%s), epoch %d, %s — %s\n", g.Name, g.Policy, g.Epoch, members(len(g.Members)), chatHelp)
	if g.Removed {
		return errors.New("this node was removed from the group; its history: 'meshchat read " + topic + "'")
	}

	// Messages: history, then live, until the stream ends.
	echoes := &echoTracker{seen: make(map[string]bool)}
	streamDone := make(chan error, 1)
	go func() {
		streamDone <- c.readMessages(ctx, topic, true, history, func(m messageInfo, _ []byte) error {
			ui.message(formatMessage(m))
			if m.Own {
				echoes.echoed(m.ID)
			}
			return nil
		})
	}()
	// Before leaving, show what this chat sent (so that a piped chat's
	// output is complete), unless the stream ended.
	finish := func() error {
		deadline := time.Now().Add(chatEchoWait)
		for !echoes.done() && time.Now().Before(deadline) {
			select {
			case err := <-streamDone:
				if ctx.Err() == nil && err != nil {
					return err
				}
				return nil
			case <-time.After(20 * time.Millisecond):
			}
		}
		return nil
	}

	// Input: one line at a time.
	lines := make(chan string)
	inputDone := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(cmd.InOrStdin())
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
		inputDone <- sc.Err()
	}()

	ui.mu.Lock()
	ui.prompt()
	ui.mu.Unlock()
	for {
		select {
		case err := <-streamDone:
			if ctx.Err() != nil {
				return nil
			}
			return err
		case err := <-inputDone:
			if err != nil {
				return fmt.Errorf("read input: %w", err)
			}
			if ui.tty {
				fmt.Fprintln(ui.out)
			}
			return finish()
		case <-ctx.Done():
			return nil
		case line := <-lines:
			quit, err := chatLine(ctx, c, ui, echoes, topic, strings.TrimSpace(line))
			if err != nil {
				ui.status("error: " + oneLine(err))
			}
			if quit {
				return finish()
			}
			if err == nil {
				ui.mu.Lock()
				ui.prompt()
				ui.mu.Unlock()
			}
		}
	}
}

// chatLine handles one input line; it reports whether the chat should end.
func chatLine(ctx context.Context, c *client, ui *chatUI, echoes *echoTracker, topic, line string) (bool, error) {
	if line == "" {
		return false, nil
	}
	if !strings.HasPrefix(line, "/") {
		sctx, cancel := context.WithTimeout(ctx, sendTimeout+10*time.Second)
		defer cancel()
		var m messageInfo
		if err := c.call(sctx, http.MethodPost, groupPath(topic, "messages"), sendRequest{Text: line}, &m); err != nil {
			return false, err
		}
		echoes.sent(m.ID)
		return false, nil
	}
	rctx, cancel := context.WithTimeout(ctx, commitTimeout+10*time.Second)
	defer cancel()
	switch strings.Fields(line)[0] {
	case "/quit", "/exit":
		return true, nil
	case "/help":
		ui.status(chatHelp)
	case "/members":
		var ms []memberInfo
		if err := c.call(rctx, http.MethodGet, groupPath(topic, "members"), nil, &ms); err != nil {
			return false, err
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s:", members(len(ms)))
		for _, m := range ms {
			fmt.Fprintf(&b, "\n  leaf %d  %s", m.Leaf, m.PeerID)
			if m.Self {
				b.WriteString("  (you)")
			}
		}
		ui.status(b.String())
	case "/rotate":
		var g groupInfo
		if err := c.call(rctx, http.MethodPost, groupPath(topic, "rotate"), nil, &g); err != nil {
			return false, err
		}
		ui.status(fmt.Sprintf("rotated keys: epoch %d, epoch authenticator %s", g.Epoch, shortHex(g.EpochAuthenticator)))
	case "/info":
		var g groupInfo
		if err := c.call(rctx, http.MethodGet, groupPath(topic), nil, &g); err != nil {
			return false, err
		}
		ui.status(fmt.Sprintf("group %q (%s) %s: epoch %d, %s, %d peers on the topic, epoch authenticator %s", g.Name, g.Policy, g.Topic, g.Epoch, members(len(g.Members)), len(g.TopicPeers), shortHex(g.EpochAuthenticator)))
	default:
		return false, fmt.Errorf("unknown command %s (%s)", line, chatHelp)
	}
	return false, nil
}
