package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/actors/dispatch"
	"github.com/heraldhq/herald/actors/inbox"
	"github.com/heraldhq/herald/actors/persist"
	"github.com/heraldhq/herald/actors/supervise"
	"github.com/heraldhq/herald/api"
	"github.com/heraldhq/herald/api/auth"
	"github.com/heraldhq/herald/api/ws"
	"github.com/heraldhq/herald/internal/email"
	"github.com/heraldhq/herald/internal/events"
	"github.com/heraldhq/herald/internal/rules"
	"github.com/heraldhq/herald/internal/webhook"
	"github.com/heraldhq/herald/persistence"
	"github.com/heraldhq/herald/persistence/embedded"
	"github.com/heraldhq/herald/persistence/postgres"
)

func serve(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dev := fs.Bool("dev", false, "development mode: create a secret and an API key if none are configured, print a sample token and curl lines")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(environ)
	if err != nil {
		return err
	}
	level, _ := cfg.logLevel() // checked by loadConfig
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	// hollywood logs through the global logger; route it to ours, at our level.
	slog.SetDefault(log)

	var creds *devCredentials
	if *dev {
		if creds, err = devSetup(&cfg); err != nil {
			return err
		}
	}
	if cfg.JWTSecret == "" && cfg.JWKS == "" {
		return errors.New("HERALD_JWT_SECRET or HERALD_JWKS is required (or run with --dev)")
	}

	ruleSet, err := loadRules(cfg.Rules, cfg.MaxPayload)
	if err != nil {
		return err
	}
	if cfg.Rules != "" {
		log.Info("event rules loaded", "file", cfg.Rules, "rules", ruleSet.Len())
	}

	store, storeName, err := openStore(ctx, &cfg)
	if err != nil {
		return err
	}
	defer store.Close()

	authn, err := auth.New(auth.Config{
		JWTSecret:     []byte(cfg.JWTSecret),
		JWKS:          cfg.JWKS,
		JWKSMaxAge:    cfg.JWKSMaxAge,
		Audience:      cfg.JWTAudience,
		APIKeys:       cfg.APIKeys,
		WSTokenSecret: []byte(cfg.WSTokenSecret),
		WSTokenTTL:    cfg.WSTokenTTL,
	})
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}

	reg := prometheus.NewRegistry()
	// Every metric Herald serves has the herald_ prefix, the runtime's too.
	prometheus.WrapRegistererWithPrefix("herald_", reg).MustRegister(
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	engine, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		return err
	}
	routerPID := engine.Spawn(inbox.NewRouter(inbox.Options{
		Store:      store,
		MaxSockets: cfg.WSMaxPerUser,
		Metrics:    inbox.NewMetrics(reg),
		Log:        log,
	}), "inbox", actor.WithID("router"), actor.WithMiddleware(supervise.Recover(log, nil)))
	senders, err := channelSenders(&cfg, store)
	if err != nil {
		return err
	}
	dispatchPID := engine.Spawn(dispatch.New(dispatch.Options{
		Outbox:      store,
		Senders:     senders,
		Poll:        cfg.DeliveryPoll,
		Concurrency: cfg.DeliveryWorkers,
		SendTimeout: cfg.DeliveryTimeout,
		MaxAttempts: cfg.DeliveryTries,
		BackoffBase: cfg.DeliveryBackoff,
		BackoffMax:  cfg.DeliveryMaxWait,
		Metrics:     dispatch.NewMetrics(reg),
		Log:         log,
	}), "dispatch", actor.WithID("outbox"), actor.WithMiddleware(supervise.Recover(log, nil)))
	toInboxes := inbox.OnCommit(engine, routerPID)
	writerPID := engine.Spawn(persist.New(store, persist.Options{
		MaxBatch:   cfg.BatchMax,
		FlushDelay: cfg.BatchDelay,
		OnCommit: func(entries []herald.Entry) {
			toInboxes(entries)
			if hasDeliveries(entries) {
				engine.Send(dispatchPID, dispatch.Wake{})
			}
		},
		Metrics: persist.NewMetrics(reg),
		Log:     log,
	}), "persist", actor.WithID("writer"), actor.WithMiddleware(supervise.Recover(log, nil)))
	writer := persist.Client{Engine: engine, PID: writerPID}
	hub := ws.NewHub(ws.Options{
		Engine:       engine,
		Router:       routerPID,
		Writer:       writer,
		ReadLimit:    cfg.WSReadLimit,
		QueueSize:    cfg.WSQueue,
		WriteTimeout: cfg.WSWriteTimeout,
		PingInterval: cfg.WSPingInterval,
		Metrics:      ws.NewMetrics(reg),
		Log:          log,
	})

	emitter := events.New(writer, ruleSet, events.NewMetrics(reg))
	stopReload := reloadRulesOnHUP(cfg.Rules, cfg.MaxPayload, emitter, log)
	defer stopReload()

	srv := api.New(api.Options{
		Store:          store,
		Writer:         writer,
		Auth:           authn,
		MaxPayload:     cfg.MaxPayload,
		UserRate:       api.Rate{Per: cfg.UserRate, Burst: cfg.UserBurst},
		ServiceRate:    api.Rate{Per: cfg.ServiceRate, Burst: cfg.ServiceBurst},
		Registry:       reg,
		Log:            log,
		Hub:            hub,
		AllowedOrigins: cfg.AllowedOrigins,
		Events:         emitter,
		Wake:           func() { engine.Send(dispatchPID, dispatch.Wake{}) },
	})

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	httpSrv := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- httpSrv.Serve(ln) }()
	if cfg.PprofAddr != "" {
		stopPprof, err := servePprof(cfg.PprofAddr, log)
		if err != nil {
			_ = httpSrv.Close()
			return err
		}
		defer stopPprof()
	}

	pruneDone := make(chan struct{})
	pruneCtx, stopPrune := context.WithCancel(context.Background())
	go func() {
		defer close(pruneDone)
		pruneLoop(pruneCtx, store, cfg.LogRetention, log)
	}()

	base := "http://" + ln.Addr().String()
	fmt.Fprintf(stdout, "herald ready: listening on %s (store: %s)\n", base, storeName)
	if creds != nil {
		printDev(stdout, base, creds)
	}

	select {
	case <-ctx.Done():
	case err := <-served:
		stopPrune()
		<-pruneDone
		return fmt.Errorf("http server: %w", err)
	}
	log.Info("shutting down: closing sockets, draining requests and pending writes")
	// Requests and sockets get the shutdown timeout to finish; pending writes get their
	// own, so a slow request cannot leave the drain no time at all.
	httpCtx, cancelHTTP := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancelHTTP()
	hubDone := make(chan error, 1)
	go func() { hubDone <- hub.Shutdown(httpCtx) }() // hijacked sockets: Shutdown below does not see them
	if err := httpSrv.Shutdown(httpCtx); err != nil {
		log.Warn("http shutdown incomplete; closing the remaining connections", "err", err)
		_ = httpSrv.Close()
	}
	if err := <-hubDone; err != nil {
		log.Warn("some sockets did not finish their closing handshake in time; dropped", "err", err)
	}
	stopPrune()
	<-pruneDone
	drainCtx, cancelDrain := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancelDrain()
	drainErr := writer.Drain(drainCtx)
	waitStopped(engine.Poison(writerPID), "persistence actor", log)
	// Sends in flight finish and their outcomes are recorded; anything cut short comes
	// back after its lease.
	dispatchDone := make(chan struct{})
	engine.Send(dispatchPID, dispatch.Drain{Done: dispatchDone})
	select {
	case <-dispatchDone:
	case <-drainCtx.Done():
		log.Warn("deliveries still in flight at shutdown; they will be retried after their lease")
	}
	waitStopped(engine.Poison(dispatchPID), "dispatcher", log)
	waitStopped(engine.Poison(routerPID), "router", log)
	if drainErr != nil {
		return fmt.Errorf("pending writes not flushed within %s: %w", cfg.ShutdownTimeout, drainErr)
	}
	log.Info("stopped")
	return nil
}

func openStore(ctx context.Context, cfg *config) (persistence.Store, string, error) {
	if cfg.DatabaseURL == "" {
		s, err := embedded.Open(cfg.DataDir, embedded.Options{Retention: cfg.LogRetention})
		if err != nil {
			return nil, "", fmt.Errorf("embedded store in %s: %w", cfg.DataDir, err)
		}
		return s, "embedded " + cfg.DataDir, nil
	}
	s, err := postgres.OpenAndMigrate(ctx, cfg.DatabaseURL, postgres.Options{Retention: cfg.LogRetention, MaxConns: cfg.DBMaxConns})
	if err != nil {
		return nil, "", fmt.Errorf("postgres: %w", err)
	}
	return s, "postgres", nil
}

// pruneLoop deletes log entries past the retention, at start and then hourly.
func pruneLoop(ctx context.Context, store persistence.Store, retention time.Duration, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		n, err := store.Prune(ctx, time.Now().Add(-retention))
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("log pruning failed; will retry", "err", err)
		case n > 0:
			log.Info("pruned event log", "entries", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// servePprof serves the runtime profiles (/debug/pprof/) on their own listener, never
// on the public address.
func servePprof(addr string, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("HERALD_PPROF_ADDR: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info("profiles served", "addr", "http://"+ln.Addr().String()+"/debug/pprof/")
	return func() { _ = srv.Close() }, nil
}

// loadRules loads the rules file at path; no path means no rules.
func loadRules(path string, maxPayload int) (*rules.Set, error) {
	if path == "" {
		return nil, nil
	}
	set, err := rules.Load(path)
	if err != nil {
		return nil, fmt.Errorf("HERALD_RULES: %w", err)
	}
	return set.WithMaxPayload(maxPayload), nil
}

// reloadRulesOnHUP reloads the rules file on each SIGHUP. A file that fails to load is
// logged and changes nothing: the rules in force stay.
func reloadRulesOnHUP(path string, maxPayload int, e *events.Emitter, log *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-hup:
			}
			if path == "" {
				log.Warn("SIGHUP: no rules file to reload (HERALD_RULES is not set)")
				continue
			}
			set, err := loadRules(path, maxPayload)
			if err != nil {
				log.Error("SIGHUP: rules not reloaded; the previous rules stay in force", "err", err)
				continue
			}
			e.SetRules(set)
			log.Info("SIGHUP: event rules reloaded", "file", path, "rules", set.Len())
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
	}
}

// channelSenders builds the email and webhook senders that are configured.
func channelSenders(cfg *config, store persistence.Store) (map[herald.Channel]dispatch.Sender, error) {
	senders := map[herald.Channel]dispatch.Sender{}
	if cfg.SMTPAddr != "" {
		s, err := email.New(email.Options{Addr: cfg.SMTPAddr, From: cfg.SMTPFrom, Username: cfg.SMTPUsername,
			Password: cfg.SMTPPassword, StartTLS: cfg.SMTPStartTLS, Timeout: cfg.DeliveryTimeout})
		if err != nil {
			return nil, fmt.Errorf("HERALD_SMTP_*: %w", err)
		}
		senders[herald.ChannelEmail] = dispatch.Email{Sender: s, Contacts: store}
	}
	if len(cfg.WebhookURLs) > 0 {
		secret, err := webhook.ParseSecret(cfg.WebhookSecret)
		if err != nil {
			return nil, fmt.Errorf("HERALD_WEBHOOK_SECRET: %w", err)
		}
		s, err := webhook.New(webhook.Options{Secret: secret, Timeout: cfg.DeliveryTimeout})
		if err != nil {
			return nil, fmt.Errorf("HERALD_WEBHOOK_*: %w", err)
		}
		senders[herald.ChannelWebhook] = dispatch.Webhook{Sender: s, URLs: cfg.WebhookURLs}
	}
	return senders, nil
}

// hasDeliveries reports whether a committed batch created a notification for email or
// webhook (escalations are due later: the dispatcher's poll finds them).
func hasDeliveries(entries []herald.Entry) bool {
	for i := range entries {
		if n := entries[i].Notification; entries[i].Event == herald.EventCreated && n != nil {
			for _, c := range n.Channels {
				if c != herald.ChannelRealtime {
					return true
				}
			}
		}
	}
	return false
}

// waitStopped waits a little for a poisoned actor: its work is already drained, and an
// exit must not hang on it.
func waitStopped(stopped context.Context, what string, log *slog.Logger) {
	select {
	case <-stopped.Done():
	case <-time.After(5 * time.Second):
		log.Warn("actor did not stop within 5s; exiting anyway", "actor", what)
	}
}
