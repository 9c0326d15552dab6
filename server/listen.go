package server

import (
	"net"
	"sync"
	"sync/atomic"
)

// limitListener accepts at most max concurrent connections; further ones
// wait in the kernel's backlog until one closes. It counts the open ones.
type limitListener struct {
	net.Listener
	slots  chan struct{}
	active *atomic.Int64
}

// LimitListener wraps l so at most max connections are open at once
// (max_connections); active counts the open ones. max <= 0 means no limit.
func LimitListener(l net.Listener, max int, active *atomic.Int64) net.Listener {
	ll := &limitListener{Listener: l, active: active}
	if max > 0 {
		ll.slots = make(chan struct{}, max)
	}
	return ll
}

func (l *limitListener) Accept() (net.Conn, error) {
	if l.slots != nil {
		l.slots <- struct{}{}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		if l.slots != nil {
			<-l.slots
		}
		return nil, err
	}
	l.active.Add(1)
	return &countedConn{Conn: c, release: func() {
		l.active.Add(-1)
		if l.slots != nil {
			<-l.slots
		}
	}}, nil
}

type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
