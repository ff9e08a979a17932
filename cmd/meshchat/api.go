package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/meshchat/meshchat/gossip"
	"github.com/meshchat/meshchat/node"
)

// Bounds of the control API.
const (
	maxRequestBody     = 1 << 20          // a request body larger than this is refused
	defaultJoinTimeout = 60 * time.Second // join without timeout_ms
	maxJoinTimeout     = 30 * time.Minute
	commitTimeout      = 2 * time.Minute // add, remove, rotate
	sendTimeout        = time.Minute
	subscriberBuffer   = 512 // messages a follower may lag behind
	groupScanInterval  = 500 * time.Millisecond
)

// apiServer serves the control API for one node. Its handlers only call the
// node package's public API.
type apiServer struct {
	n   *node.Node
	log *slog.Logger
	// ctx ends when the daemon shuts down; followed streams end with it.
	ctx context.Context
	hub *hub
}

// newAPIServer returns the control API handler for n and starts the hub that
// fans each group's messages out to followers. The hub's goroutines end when
// ctx ends and n is closed; wait for them with hub.wait.
func newAPIServer(ctx context.Context, n *node.Node, log *slog.Logger) (*apiServer, http.Handler) {
	s := &apiServer{n: n, log: log, ctx: ctx, hub: newHub(ctx, log)}
	s.hub.run(n)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/id", s.handleID)
	mux.HandleFunc("GET /v1/groups", s.handleGroups)
	mux.HandleFunc("POST /v1/groups", s.handleCreate)
	mux.HandleFunc("GET /v1/groups/{topic}", s.handleGroup)
	mux.HandleFunc("POST /v1/groups/{topic}/invites", s.handleInvite)
	mux.HandleFunc("POST /v1/join", s.handleJoin)
	mux.HandleFunc("POST /v1/groups/{topic}/messages", s.handleSend)
	mux.HandleFunc("GET /v1/groups/{topic}/messages", s.handleRead)
	mux.HandleFunc("GET /v1/groups/{topic}/members", s.handleMembers)
	mux.HandleFunc("POST /v1/groups/{topic}/members", s.handleAdd)
	mux.HandleFunc("DELETE /v1/groups/{topic}/members/{peer}", s.handleRemove)
	mux.HandleFunc("POST /v1/groups/{topic}/rotate", s.handleRotate)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Errorf("no such API endpoint: %s %s", r.Method, r.URL.Path))
	})
	return s, mux
}

// apiError is an error with the HTTP status it maps to.
type apiError struct {
	status int
	err    error
}

func (e *apiError) Error() string { return e.err.Error() }
func (e *apiError) Unwrap() error { return e.err }

func statusError(status int, format string, args ...any) error {
	return &apiError{status: status, err: fmt.Errorf(format, args...)}
}

// statusOf maps an error to an HTTP status.
func statusOf(err error) int {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae.status
	case errors.Is(err, node.ErrUnknownGroup):
		return http.StatusNotFound
	case errors.Is(err, node.ErrBadInviteCode), errors.Is(err, gossip.ErrBadTopicID):
		return http.StatusBadRequest
	case errors.Is(err, node.ErrNotMember), errors.Is(err, node.ErrAlreadyMember),
		errors.Is(err, node.ErrPeerNotMember), errors.Is(err, node.ErrRemoveSelf):
		return http.StatusConflict
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, node.ErrClosed):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, errorResponse{Error: oneLine(err)})
}

func (s *apiServer) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	if status >= 500 {
		s.log.Warn("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, status, err)
}

// decode reads a JSON request body into v, strictly.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxRequestBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return statusError(http.StatusBadRequest, "bad request body: %v", err)
	}
	return nil
}

// group finds the group named by the {topic} path segment.
func (s *apiServer) group(r *http.Request) (*node.Group, error) {
	topic, err := gossip.ParseTopicID(r.PathValue("topic"))
	if err != nil {
		return nil, statusError(http.StatusBadRequest, "%q is not a topic ID: %w", r.PathValue("topic"), err)
	}
	g, ok := s.n.Group(topic)
	if !ok {
		return nil, fmt.Errorf("group %s: %w (see 'meshchat groups')", topic, node.ErrUnknownGroup)
	}
	return g, nil
}

// member is like group but also requires that this node is still a member.
func (s *apiServer) member(r *http.Request) (*node.Group, error) {
	g, err := s.group(r)
	if err != nil {
		return nil, err
	}
	if g.Removed() {
		return nil, fmt.Errorf("group %s: this node was removed: %w", g.TopicID(), node.ErrNotMember)
	}
	return g, nil
}

func parsePeer(s string) (peer.ID, error) {
	id, err := peer.Decode(s)
	if err != nil {
		return "", statusError(http.StatusBadRequest, "%q is not a peer ID: %v", s, err)
	}
	return id, nil
}

func (s *apiServer) handleID(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, idInfo{PeerID: s.n.ID().String(), Addrs: s.n.Addrs()})
}

func (s *apiServer) handleGroups(w http.ResponseWriter, _ *http.Request) {
	out := []groupInfo{}
	for _, g := range s.n.Groups() {
		out = append(out, groupInfoOf(g))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *apiServer) handleGroup(w http.ResponseWriter, r *http.Request) {
	g, err := s.group(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, groupInfoOf(g))
}

func (s *apiServer) handleCreate(w http.ResponseWriter, r *http.Request) {
	var req createRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	opts := node.GroupOptions{Name: req.Name}
	switch req.Policy {
	case "", "open":
		opts.Policy = node.Open
	case "invite":
		opts.Policy = node.Invite
	default:
		s.fail(w, r, statusError(http.StatusBadRequest, "unknown policy %q (want open or invite)", req.Policy))
		return
	}
	g, err := s.n.CreateGroup(r.Context(), opts)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.hub.watch(g)
	writeJSON(w, http.StatusCreated, groupInfoOf(g))
}

func (s *apiServer) handleInvite(w http.ResponseWriter, r *http.Request) {
	g, err := s.member(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	code, err := g.NewInvite()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, inviteResponse{Code: code})
}

func (s *apiServer) handleJoin(w http.ResponseWriter, r *http.Request) {
	var req joinRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	timeout := defaultJoinTimeout
	if req.TimeoutMS > 0 {
		timeout = min(time.Duration(req.TimeoutMS)*time.Millisecond, maxJoinTimeout)
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	g, err := s.n.Join(ctx, req.Code)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = statusError(http.StatusGatewayTimeout,
				"not admitted within %v: no member let this node in (an invite-only group needs an invite code, or no member is online and reachable)", timeout)
		}
		s.fail(w, r, err)
		return
	}
	s.hub.watch(g)
	writeJSON(w, http.StatusOK, groupInfoOf(g))
}

func (s *apiServer) handleSend(w http.ResponseWriter, r *http.Request) {
	g, err := s.member(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var req sendRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if len(req.Text) > node.MaxMessageSize {
		s.fail(w, r, statusError(http.StatusRequestEntityTooLarge, "message of %d bytes exceeds %d", len(req.Text), node.MaxMessageSize))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), sendTimeout)
	defer cancel()
	id, err := g.Send(ctx, []byte(req.Text))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	m := ownMessage(g, s.n.ID(), id, req.Text)
	s.hub.publish(m)
	writeJSON(w, http.StatusCreated, m)
}

// ownMessage finds a message this node just sent in the group's history; if
// it is not among the latest entries (the history moved on), it rebuilds it.
func ownMessage(g *node.Group, self peer.ID, id [16]byte, text string) messageInfo {
	if hist, err := g.History(64); err == nil {
		for i := len(hist) - 1; i >= 0; i-- {
			if hist[i].Own && hist[i].ID == id {
				return messageInfoOf(hist[i])
			}
		}
	}
	now := time.Now()
	return messageInfo{Topic: g.TopicID().String(), ID: hex.EncodeToString(id[:]), Sender: self.String(), Epoch: g.Epoch(), Time: now, ReceivedAt: now, Own: true, Text: text}
}

func (s *apiServer) handleRead(w http.ResponseWriter, r *http.Request) {
	g, err := s.group(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	follow := q.Get("follow") == "1" || q.Get("follow") == "true"
	limit := 0
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 0 {
			s.fail(w, r, statusError(http.StatusBadRequest, "bad limit %q", v))
			return
		}
	}
	topic := g.TopicID().String()
	var sub *subscriber
	if follow {
		// Subscribe before reading the history, so nothing falls between
		// the two; duplicates are dropped below.
		sub = s.hub.subscribe(topic)
		defer s.hub.unsubscribe(sub)
	}
	hist, err := g.History(limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	seen := make(map[string]bool, len(hist))
	for _, m := range hist {
		mi := messageInfoOf(m)
		seen[mi.Sender+"/"+mi.ID] = true
		if err := enc.Encode(mi); err != nil {
			return
		}
	}
	if !follow {
		return
	}
	flusher, _ := w.(http.Flusher)
	flush := func() {
		if flusher != nil {
			flusher.Flush()
		}
	}
	flush()
	if g.Removed() {
		_ = enc.Encode(streamEvent{Event: "removed", Topic: topic})
		return
	}
	send := func(mi messageInfo) bool {
		if seen[mi.Sender+"/"+mi.ID] {
			return true
		}
		if err := enc.Encode(mi); err != nil {
			return false
		}
		flush()
		return true
	}
	for {
		select {
		case mi := <-sub.ch:
			if !send(mi) {
				return
			}
		case <-sub.end:
			for {
				select {
				case mi := <-sub.ch:
					if !send(mi) {
						return
					}
					continue
				default:
				}
				break
			}
			_ = enc.Encode(streamEvent{Event: sub.reason, Topic: topic})
			flush()
			return
		case <-r.Context().Done():
			return
		case <-s.ctx.Done():
			_ = enc.Encode(streamEvent{Event: "shutdown", Topic: topic})
			flush()
			return
		}
	}
}

func (s *apiServer) handleMembers(w http.ResponseWriter, r *http.Request) {
	g, err := s.group(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, groupInfoOf(g).Members)
}

func (s *apiServer) handleAdd(w http.ResponseWriter, r *http.Request) {
	g, err := s.member(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var req addRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	id, err := parsePeer(req.PeerID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), commitTimeout)
	defer cancel()
	if err := g.Add(ctx, id); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, groupInfoOf(g))
}

func (s *apiServer) handleRemove(w http.ResponseWriter, r *http.Request) {
	g, err := s.member(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	id, err := parsePeer(r.PathValue("peer"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), commitTimeout)
	defer cancel()
	if err := g.Remove(ctx, id); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, groupInfoOf(g))
}

func (s *apiServer) handleRotate(w http.ResponseWriter, r *http.Request) {
	g, err := s.member(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), commitTimeout)
	defer cancel()
	if err := g.Rotate(ctx); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, groupInfoOf(g))
}

// hub drains every group's message channel (a node.Group has one consumer)
// and fans the messages out to the API's followers, so that any number of
// "read --follow" and "chat" clients can watch the same group.
type hub struct {
	ctx     context.Context // ends the hub's goroutines
	log     *slog.Logger
	wg      sync.WaitGroup
	mu      sync.Mutex
	watched map[*node.Group]bool
	subs    map[string]map[*subscriber]bool // by topic ID
}

// subscriber is one follower of one group.
type subscriber struct {
	topic  string
	ch     chan messageInfo
	end    chan struct{} // closed when the stream must end; see reason
	reason string        // a streamEvent name; set before end is closed
}

func newHub(ctx context.Context, log *slog.Logger) *hub {
	return &hub{ctx: ctx, log: log, watched: make(map[*node.Group]bool), subs: make(map[string]map[*subscriber]bool)}
}

// run watches the node's groups: those it is in now, and every group it
// joins later (by Join, by being added, or created through the API), until
// the hub's context ends.
func (h *hub) run(n *node.Node) {
	ctx := h.ctx
	for _, g := range n.Groups() {
		h.watch(g)
	}
	h.wg.Go(func() {
		t := time.NewTicker(groupScanInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case g := <-n.NewGroups():
				h.log.Info("added to a group", "topic", g.TopicID(), "name", g.Name(), "epoch", g.Epoch())
				h.watch(g)
			case <-t.C:
				// NewGroups drops announcements when its buffer is
				// full; the scan catches those.
				for _, g := range n.Groups() {
					h.watch(g)
				}
			}
		}
	})
}

// watch starts draining g's messages, once per group handle.
func (h *hub) watch(g *node.Group) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.watched[g] {
		return
	}
	h.watched[g] = true
	msgs := g.Messages()
	h.wg.Go(func() {
		for {
			select {
			case m, ok := <-msgs:
				if ok {
					h.publish(messageInfoOf(m))
					continue
				}
				// The channel closes when this node is removed
				// from the group.
				h.log.Info("removed from group", "topic", g.TopicID())
				h.endTopic(g.TopicID().String(), "removed")
			case <-h.ctx.Done():
				h.endTopic(g.TopicID().String(), "shutdown")
			}
			return
		}
	})
}

// publish hands m to every follower of its group; one that cannot keep up is
// dropped with "lagged".
func (h *hub) publish(m messageInfo) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs[m.Topic] {
		select {
		case s.ch <- m:
		default:
			h.endLocked(s, "lagged")
		}
	}
}

func (h *hub) subscribe(topic string) *subscriber {
	s := &subscriber{topic: topic, ch: make(chan messageInfo, subscriberBuffer), end: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs[topic] == nil {
		h.subs[topic] = make(map[*subscriber]bool)
	}
	h.subs[topic][s] = true
	return s
}

func (h *hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs[s.topic], s)
	if len(h.subs[s.topic]) == 0 {
		delete(h.subs, s.topic)
	}
}

// endTopic ends every follower of topic with reason.
func (h *hub) endTopic(topic, reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs[topic] {
		h.endLocked(s, reason)
	}
}

func (h *hub) endLocked(s *subscriber, reason string) {
	delete(h.subs[s.topic], s)
	if s.reason == "" {
		s.reason = reason
		close(s.end)
	}
}

// wait returns once every goroutine of the hub has ended (after its
// context ended).
func (h *hub) wait() { h.wg.Wait() }

// isStreamEvent reports whether a JSON line of a message stream is an event
// rather than a message.
func isStreamEvent(line []byte) (streamEvent, bool) {
	if !strings.Contains(string(line), `"event"`) {
		return streamEvent{}, false
	}
	var ev streamEvent
	if err := json.Unmarshal(line, &ev); err != nil || ev.Event == "" {
		return streamEvent{}, false
	}
	return ev, true
}
