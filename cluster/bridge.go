package cluster

import (
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/nats-io/nats.go"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/actors/inbox"
)

// committed is a committed batch to publish.
type committed struct {
	entries []herald.Entry
	at      time.Time
}

// interest says the node holds an inbox for user (on), or no longer does.
type interest struct {
	user string
	on   bool
}

// fault is a bus fault: every user's head is checked SpreadWait later.
type fault struct{ kind string }

// uncertain asks the other nodes to check the heads of users.
type uncertain struct{ users []string }

// flush answers once every message before it has been handled.
type flush struct{ done chan struct{} }

// tick looks at the routes and counts towards the sweep.
type tick struct{}

// spreadDue checks the users subscribed to since the last one.
type spreadDue struct{}

// faultDue checks every user after a fault.
type faultDue struct{}

// bridgeActor owns the bus subscriptions, one per user with an inbox here, and
// publishes each committed batch, one message per user.
type bridgeActor struct {
	b      *Bridge
	engine *actor.Engine
	self   *actor.PID
	subs   map[string]*nats.Subscription

	// Publishing: a batch's entries by user, in commit order; reused.
	parts map[string]int
	users []string
	ents  [][]*herald.Entry
	buf   []byte

	fresh      []string // subscribed to since the last spreadDue
	freshArmed bool
	faultArmed bool
	lostPubs   bool // a publish failed: the other nodes are asked to check once connected
	routes     int
	ticks      int
	stopTick   chan struct{}
}

func newBridgeActor(b *Bridge) *bridgeActor {
	return &bridgeActor{b: b, subs: map[string]*nats.Subscription{}, parts: map[string]int{}}
}

func (a *bridgeActor) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		a.engine, a.self = c.Engine(), c.PID()
		a.routes = a.b.routes()
		a.b.countPeers()
		a.stopTick = make(chan struct{})
		t, stop, engine, self := time.NewTicker(tickEvery), a.stopTick, a.engine, a.self
		go func() {
			defer t.Stop()
			for {
				select {
				case <-t.C:
					engine.Send(self, tick{})
				case <-stop:
					return
				}
			}
		}()
	case actor.Stopped:
		close(a.stopTick)
	case committed:
		a.publish(m)
	case interest:
		a.interest(m)
	case fault:
		a.fault(m.kind)
	case faultDue:
		a.faultArmed = false
		c.Send(a.b.opts.Router, inbox.CheckHeads{All: true})
	case spreadDue:
		users := a.fresh
		a.fresh, a.freshArmed = nil, false
		router := a.b.opts.Router
		c.Send(router, inbox.CheckHeads{Users: users})
		// A second look for a spread slower than the wait (a loaded machine).
		engine := a.engine
		time.AfterFunc(8*a.b.opts.SpreadWait, func() { engine.Send(router, inbox.CheckHeads{Users: users}) })
	case uncertain:
		for len(m.users) > 0 { // in messages of at most maxMessage bytes
			n, size := 0, 0
			for n < len(m.users) && (n == 0 || size < maxMessage) {
				size += len(m.users[n]) + 2
				n++
			}
			a.buf = appendUsers(a.buf[:0], m.users[:n])
			if err := a.b.nc.Publish(ctlCheck, a.buf); err != nil {
				a.lostPubs = true
			}
			m.users = m.users[n:]
		}
	case tick:
		a.tick(c)
	case flush:
		close(m.done)
	}
}

func (a *bridgeActor) publish(m committed) {
	for i := range m.entries {
		e := &m.entries[i]
		j, ok := a.parts[e.UserID]
		if !ok {
			j = len(a.users)
			a.parts[e.UserID] = j
			a.users = append(a.users, e.UserID)
			if j == len(a.ents) {
				a.ents = append(a.ents, nil)
			}
		}
		a.ents[j] = append(a.ents[j], e)
	}
	for j, user := range a.users {
		subj, part := subject(user), a.ents[j]
		for len(part) > 0 {
			n, size := 0, 0
			for n < len(part) && (n == 0 || size < maxMessage) {
				size += approxSize(part[n])
				n++
			}
			a.buf = appendMessage(a.buf[:0], user, m.at, part[:n])
			if err := a.b.nc.Publish(subj, a.buf); err != nil {
				a.lostPubs = true
				a.b.opts.Log.Warn("cluster: publish failed; the other nodes will check against the store", "err", err)
			} else {
				a.b.metrics.pubMsgs.Inc()
				a.b.metrics.pubBytes.Add(float64(len(a.buf)))
			}
			part = part[n:]
		}
		clear(a.ents[j])
		a.ents[j] = a.ents[j][:0]
	}
	clear(a.parts)
	a.users = a.users[:0]
	if cap(a.buf) > 4*maxMessage {
		a.buf = nil // a huge batch's buffer is not kept
	}
}

func approxSize(e *herald.Entry) int {
	if e.Notification != nil {
		return 320 + len(e.Notification.Payload)
	}
	return 128
}

func (a *bridgeActor) interest(m interest) {
	sub := a.subs[m.user]
	switch {
	case m.on && sub == nil:
		s, err := a.b.nc.ChanSubscribe(subject(m.user), a.b.msgs)
		if err != nil {
			// Without a subscription only the sweep and the faults' checks bring this
			// user the other nodes' entries.
			a.b.opts.Log.Warn("cluster: subscribing failed", "err", err)
			return
		}
		a.subs[m.user] = s
		a.b.metrics.subscriptions.Inc()
		a.fresh = append(a.fresh, m.user)
		if !a.freshArmed {
			a.freshArmed = true
			engine, self := a.engine, a.self
			time.AfterFunc(a.b.opts.SpreadWait, func() { engine.Send(self, spreadDue{}) })
		}
	case !m.on && sub != nil:
		_ = sub.Unsubscribe()
		delete(a.subs, m.user)
		a.b.metrics.subscriptions.Dec()
	}
}

func (a *bridgeActor) fault(kind string) {
	a.b.metrics.faults.WithLabelValues(kind).Inc()
	if kind == "slow_consumer" {
		a.b.metrics.slow.Inc()
	}
	if kind == "reconnect" && a.lostPubs {
		if err := a.b.nc.Publish(ctlCheck, nil); err == nil {
			a.lostPubs = false
		}
	}
	if !a.faultArmed {
		a.faultArmed = true
		engine, self := a.engine, a.self
		time.AfterFunc(a.b.opts.SpreadWait, func() { engine.Send(self, faultDue{}) })
	}
}

func (a *bridgeActor) tick(c *actor.Context) {
	a.b.countPeers()
	if n := a.b.routes(); n != a.routes {
		kind := "route_added"
		if n < a.routes {
			kind = "route_lost"
		}
		a.b.opts.Log.Info("cluster: routes changed; checking connected users against the store", "routes", n, "was", a.routes)
		a.routes = n
		a.fault(kind)
	}
	a.ticks++
	if time.Duration(a.ticks)*tickEvery >= a.b.opts.Sweep {
		a.ticks = 0
		c.Send(a.b.opts.Router, inbox.CheckHeads{All: true})
	}
}
