package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// defaultRequestTimeout bounds a control API call that does not wait on the
// network for long (all but join, add, remove, rotate and followed reads).
const defaultRequestTimeout = 30 * time.Second

// clientOptions locate the daemon's control socket.
type clientOptions struct {
	dataDir string
	api     string
}

// clientFlags registers --data-dir and --api on a client command.
func clientFlags(cmd *cobra.Command, opts *clientOptions) {
	dataDirFlag(cmd, &opts.dataDir)
	cmd.Flags().StringVar(&opts.api, "api", "", "daemon's control socket (env "+envAPI+"; default <data dir>/"+apiSocketName+")")
}

// client calls the control API of one daemon.
type client struct {
	dataDir string
	socket  string
	http    *http.Client
}

func newClient(opts clientOptions) (*client, error) {
	dataDir, err := resolveDataDir(opts.dataDir)
	if err != nil {
		return nil, err
	}
	sock := resolveSocket(opts.api, dataDir)
	var dialer net.Dialer
	return &client{
		dataDir: dataDir,
		socket:  sock,
		http: &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, "unix", sock)
			},
			DisableCompression: true,
		}},
	}, nil
}

// notRunning explains a failed connection to the daemon.
func (c *client) notRunning(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("no meshchat daemon is running for %s (no control socket at %s); start one with 'meshchat daemon --data-dir %s'", c.dataDir, c.socket, c.dataDir)
	}
	if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("cannot reach the daemon at %s: permission denied (it belongs to another user)", c.socket)
	}
	return fmt.Errorf("cannot reach the daemon at %s: %w", c.socket, err)
}

// do sends a request; body (if not nil) is sent as JSON. On a 2xx answer it
// returns the response, which the caller closes; otherwise the daemon's
// error message.
func (c *client) do(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://meshchat"+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "dial" {
			return nil, c.notRunning(err)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("no answer from the daemon in time: %w", ctx.Err())
		}
		return nil, fmt.Errorf("control API: %w", err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	var e errorResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&e); err != nil || e.Error == "" {
		return nil, fmt.Errorf("daemon answered %s", resp.Status)
	}
	return nil, errors.New(e.Error)
}

// call sends a request and decodes a JSON answer into out (if not nil).
func (c *client) call(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("bad answer from the daemon: %w", err)
	}
	return nil
}

// groupPath returns the API path of a group resource; the topic ID is
// checked by the daemon.
func groupPath(topic string, rest ...string) string {
	p := "/v1/groups/" + url.PathEscape(topic)
	for _, r := range rest {
		p += "/" + url.PathEscape(r)
	}
	return p
}

// readMessages streams a group's messages (history, then live if follow) and
// calls fn for each, until the stream ends, ctx ends or fn fails. A stream
// ended by an event returns it as an error, except "shutdown" when
// follow is false.
func (c *client) readMessages(ctx context.Context, topic string, follow bool, limit int, fn func(messageInfo, []byte) error) error {
	q := url.Values{}
	if follow {
		q.Set("follow", "1")
	}
	if limit > 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	path := groupPath(topic, "messages")
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	resp, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if ev, ok := isStreamEvent(line); ok {
			return &streamEnded{event: ev.Event}
		}
		var m messageInfo
		if err := json.Unmarshal(line, &m); err != nil {
			return fmt.Errorf("bad message line from the daemon: %w", err)
		}
		if err := fn(m, line); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("message stream: %w", err)
	}
	if follow && ctx.Err() == nil {
		return errors.New("the daemon closed the message stream")
	}
	return nil
}

// streamEnded reports why the daemon ended a followed stream.
type streamEnded struct{ event string }

func (e *streamEnded) Error() string {
	switch e.event {
	case "removed":
		return "this node was removed from the group; it cannot read new messages"
	case "lagged":
		return "fell too far behind the group's messages; read again"
	case "shutdown":
		return "the daemon is shutting down"
	}
	return "message stream ended: " + e.event
}
