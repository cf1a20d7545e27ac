package db

import (
	"net"
	"time"
)

// A database server whose machine is gone (power lost, the network cut)
// closes nothing: what tlsrpt sent stays unacknowledged, an idle
// connection looks healthy, and Linux gives up on such a connection only
// after its retransmissions (about 15 minutes) or Go's default keepalive
// (15 s idle, 9 probes 15 s apart). Every pool's TCP connections are told
// sooner (deadPeerDialer): keepalive probes after 5 s of silence, 5 s
// apart, three unanswered ones end the connection, and data unacknowledged
// for 15 s (TCP_USER_TIMEOUT) ends it too. So a query on a vanished
// primary fails within about 15 to 20 s instead of hanging, and the pool
// connects anew to whichever host is the primary (failover.go); a live
// server's kernel answers the probes however long a query runs.
const (
	deadPeerIdle        = 5 * time.Second
	deadPeerInterval    = 5 * time.Second
	deadPeerCount       = 3
	deadPeerUserTimeout = 15 * time.Second
)

// deadPeerDialer is the dialer of every pool's connections (openPool).
func deadPeerDialer() *net.Dialer {
	return &net.Dialer{
		KeepAliveConfig: net.KeepAliveConfig{
			Enable:   true,
			Idle:     deadPeerIdle,
			Interval: deadPeerInterval,
			Count:    deadPeerCount,
		},
		Control: setUserTimeout,
	}
}
