package server

import (
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Timeouts of the HTTP API. A client gets readHeaderTimeout to send its
// request line and headers, readTimeout for the whole request with its
// body, and writeTimeout for the response (streaming handlers lift it, see
// API.rows); a keep-alive connection idle for idleTimeout is closed.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 60 * time.Second
	// anonymousWait bounds how long a request past max_connections waits
	// for a slot before a 503.
	anonymousWait = 10 * time.Second
)

// openConnections is how many API connections may be open at once for a
// max_connections of max: room for max busy anonymous requests, as many
// connections being read or idle, and some for health checks and
// authenticated clients.
func openConnections(max int) int {
	if max <= 0 {
		return 0
	}
	return 2*max + 100
}

// limitListener accepts at most max connections at once. When that many
// are open it closes an idle keep-alive connection to make room, else the
// next one waits in the kernel's backlog until one closes. It counts the
// open ones.
type limitListener struct {
	net.Listener
	max    int
	active *atomic.Int64

	mu    sync.Mutex
	open  int // accepted or being accepted
	conns map[*countedConn]struct{}
	freed chan struct{} // signalled when a connection closes
}

// LimitListener wraps l so at most max connections are open at once,
// idle keep-alive ones being closed first to make room (their state comes
// from TrackState); active counts the open ones. max <= 0 means no limit.
func LimitListener(l net.Listener, max int, active *atomic.Int64) net.Listener {
	return &limitListener{Listener: l, max: max, active: active,
		conns: map[*countedConn]struct{}{}, freed: make(chan struct{}, 1)}
}

// TrackState is an http.Server ConnState hook recording whether each
// connection of a LimitListener is idle.
func TrackState(c net.Conn, st http.ConnState) {
	if cc, ok := c.(*countedConn); ok {
		cc.idle.Store(st == http.StateIdle)
	}
}

func (l *limitListener) Accept() (net.Conn, error) {
	if err := l.reserve(); err != nil {
		return nil, err
	}
	c, err := l.Listener.Accept()
	if err != nil {
		l.release(nil)
		return nil, err
	}
	l.active.Add(1)
	cc := &countedConn{Conn: c}
	cc.release = func() { l.active.Add(-1); l.release(cc) }
	l.mu.Lock()
	l.conns[cc] = struct{}{}
	l.mu.Unlock()
	return cc, nil
}

// reserve takes a slot for the next connection, closing an idle one or
// waiting when none is free.
func (l *limitListener) reserve() error {
	for {
		l.mu.Lock()
		if l.max <= 0 || l.open < l.max {
			l.open++
			l.mu.Unlock()
			return nil
		}
		var idle *countedConn
		for c := range l.conns {
			if c.idle.Load() {
				idle = c
				break
			}
		}
		l.mu.Unlock()
		if idle != nil {
			idle.idle.Store(false)
			_ = idle.Close() // releases its slot
			continue
		}
		<-l.freed
	}
}

func (l *limitListener) release(c *countedConn) {
	l.mu.Lock()
	l.open--
	delete(l.conns, c)
	l.mu.Unlock()
	select {
	case l.freed <- struct{}{}:
	default:
	}
}

type countedConn struct {
	net.Conn
	idle    atomic.Bool
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// admit serves health checks and requests carrying the token at once and
// at most max other requests at a time: further ones wait up to
// anonymousWait for a slot, then get a 503. max <= 0 means no limit.
func admit(h http.Handler, token string, max int) http.Handler {
	if max <= 0 {
		return h
	}
	slots := make(chan struct{}, max)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		health := r.URL.Path == "/healthz" || r.URL.Path == "/readyz"
		if health || token != "" && Authorized(token, r.Header.Get("Authorization")) {
			h.ServeHTTP(w, r)
			return
		}
		t := time.NewTimer(anonymousWait)
		defer t.Stop()
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
			h.ServeHTTP(w, r)
		case <-t.C:
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, errBusy)
		case <-r.Context().Done():
		}
	})
}

var errBusy = errors.New("max_connections requests are being served; try again")
