package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/heraldhq/herald/actors/dispatch/email"
	"github.com/heraldhq/herald/api"
	"github.com/heraldhq/herald/node"
)

func serve(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dev := fs.Bool("dev", false, "development mode: create a secret and an API key if none are configured, print a sample token and curl lines, allow this server's own origins and serve the demo inbox at /demo/")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := checkConfig(environ)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	// hollywood logs through the global logger; route it to ours, at our level.
	slog.SetDefault(log)

	var creds *devCredentials
	if *dev {
		if creds, err = devSetup(&cfg); err != nil {
			return err
		}
	}
	reg := prometheus.NewRegistry()
	// Every metric Herald serves has the herald_ prefix, the runtime's too.
	prometheus.WrapRegistererWithPrefix("herald_", reg).MustRegister(
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newAnonMemory("/proc/self/status"))

	// Listening comes first: --dev allows the origins of the port it got.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("HERALD_ADDR: %w", err)
	}
	if *dev {
		cfg.AllowedOrigins = append(cfg.AllowedOrigins, devOrigins(ln.Addr())...)
	}
	n, err := node.Open(ctx, nodeOptions(&cfg, reg, log))
	if err != nil {
		_ = ln.Close()
		return nodeError(err)
	}
	if cfg.Rules != "" {
		log.Info("event rules loaded", "file", cfg.Rules, "rules", n.RuleCount())
	}
	stopReload := reloadOnHUP(n, log)
	defer stopReload()

	httpSrv, capped, err := n.HTTPServer(ln)
	if err != nil {
		_ = ln.Close()
		_ = n.Close(context.Background())
		return nodeError(err)
	}
	if *dev {
		// The demo inbox and the demo's token endpoint exist under --dev only.
		httpSrv.Handler = devHandler(httpSrv.Handler, creds, cfg.JWTMaxTTL)
	}
	log.Info("connections capped", "max", capped.Max())
	served := make(chan error, 1)
	go func() { served <- httpSrv.Serve(capped) }()
	if cfg.PprofAddr != "" {
		stopPprof, err := servePprof(cfg.PprofAddr, log)
		if err != nil {
			_ = httpSrv.Close()
			_ = n.Close(context.Background())
			return err
		}
		defer stopPprof()
	}

	base := "http://" + ln.Addr().String()
	if c := n.Cluster(); c != "" {
		fmt.Fprintf(stdout, "herald ready: listening on %s (store: %s; cluster: %s)\n", base, n.StoreName(), c)
	} else {
		fmt.Fprintf(stdout, "herald ready: listening on %s (store: %s)\n", base, n.StoreName())
	}
	if creds != nil {
		printDev(stdout, base, demoBase(ln.Addr()), creds)
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case err := <-served:
		serveErr = fmt.Errorf("http server: %w", err)
	}
	log.Info("shutting down: closing sockets, draining requests and pending writes", "within", cfg.ShutdownTimeout)
	// The whole shutdown fits HERALD_SHUTDOWN_TIMEOUT. Requests and sockets get its
	// first half to finish, so that a slow request cannot leave the drain no time at
	// all; pending writes, deliveries in flight and the store's close get what is left.
	shutdownCtx, cancelShutdown := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancelShutdown()
	httpCtx, cancelHTTP := context.WithTimeout(shutdownCtx, cfg.ShutdownTimeout/2)
	defer cancelHTTP()
	socketsDone := make(chan error, 1)
	go func() { socketsDone <- n.CloseSockets(httpCtx) }() // hijacked: Shutdown below does not see them
	if err := httpSrv.Shutdown(httpCtx); err != nil {
		log.Warn("http shutdown incomplete; closing the remaining connections", "err", err)
		_ = httpSrv.Close()
	}
	if err := <-socketsDone; err != nil {
		log.Warn("some sockets did not finish their closing handshake in time; dropped", "err", err)
	}
	if err := n.Close(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown did not finish within HERALD_SHUTDOWN_TIMEOUT (%s): %w", cfg.ShutdownTimeout, err)
	}
	if serveErr != nil {
		return serveErr
	}
	log.Info("stopped")
	return nil
}

// nodeOptions maps the configuration to the node's options, field by field (see
// config). A variable has its README default (envDefault) where the option's zero means
// the same default, so a 0 reaching here was set; given and noLimit say what it means.
func nodeOptions(cfg *config, reg *prometheus.Registry, log *slog.Logger) node.Options {
	return node.Options{
		DatabaseURL: cfg.DatabaseURL, DataDir: cfg.DataDir, DBMaxConns: given(cfg.DBMaxConns),
		LogRetention: given(cfg.LogRetention),
		JWTSecret:    []byte(cfg.JWTSecret), JWKS: cfg.JWKS, JWKSMaxAge: given(cfg.JWKSMaxAge),
		JWTAudience: cfg.JWTAudience, JWTMaxTTL: cfg.JWTMaxTTL, APIKeys: cfg.APIKeys,
		WSTokenSecret: []byte(cfg.WSTokenSecret), WSTokenTTL: given(cfg.WSTokenTTL),
		AllowedOrigins: cfg.AllowedOrigins,
		MaxPayload:     given(cfg.MaxPayload), BatchMax: given(cfg.BatchMax), BatchDelay: cfg.BatchDelay,
		CommitsInFlight: cfg.CommitsInFlight,
		UserRate:        noLimit(cfg.UserRate), UserBurst: given(cfg.UserBurst),
		ServiceRate: noLimit(cfg.ServiceRate), ServiceBurst: given(cfg.ServiceBurst),
		UserReadRate: noLimit(cfg.UserReadRate), UserReadBurst: given(cfg.UserReadBurst),
		BodyBytesInFlight: given(cfg.BodyBytesInFlight),
		WSMaxPerUser:      given(cfg.WSMaxPerUser), WSQueue: given(cfg.WSQueue),
		WSWriteTimeout: given(cfg.WSWriteTimeout), WSPingInterval: given(cfg.WSPingInterval),
		WSReadLimit: given(cfg.WSReadLimit), WSFrameRate: noLimit(cfg.WSFrameRate), WSFrameBurst: given(cfg.WSFrameBurst),
		HTTPReadTimeout: given(cfg.HTTPReadTimeout), HTTPIdleTimeout: given(cfg.HTTPIdleTimeout),
		HTTPWriteTimeout:   given(cfg.HTTPWriteTimeout),
		HTTPMaxHeaderBytes: given(cfg.HTTPMaxHeaderBytes), MaxConns: cfg.MaxConns,
		RulesFile: cfg.Rules,
		SMTP: email.Options{Addr: cfg.SMTPAddr, From: cfg.SMTPFrom, Username: cfg.SMTPUsername,
			Password: cfg.SMTPPassword, StartTLS: cfg.SMTPStartTLS},
		WebhookURLs: cfg.WebhookURLs, WebhookSecret: cfg.WebhookSecret,
		DeliveryMaxAttempts: given(cfg.DeliveryMaxAttempts), DeliveryBackoff: given(cfg.DeliveryBackoff),
		DeliveryBackoffMax: given(cfg.DeliveryBackoffMax), DeliveryTimeout: given(cfg.DeliveryTimeout),
		DeliveryConcurrency: given(cfg.DeliveryConcurrency), DeliveryPoll: given(cfg.DeliveryPoll),
		ClusterAddr: cfg.ClusterAddr, ClusterPeers: cfg.ClusterPeers, NATSURL: cfg.NATSURL, NodeID: cfg.NodeID,
		Registry: reg,
		Log:      log,
	}
}

// given passes on a variable whose 0 the README gives no meaning (the option's zero is
// its default, which the variable already has): 0 goes on as -1, and the node refuses
// it as it refuses every negative value, naming the option.
func given[T ~int | ~int32 | ~int64](v T) T {
	if v == 0 {
		return -1
	}
	return v
}

// noLimit passes on a rate variable, whose 0 means no limit: the node's infinite rate.
func noLimit(perSecond float64) float64 {
	if perSecond == 0 {
		return math.Inf(1)
	}
	return perSecond
}

// reloadOnHUP reloads the rules file on each SIGHUP. A file that fails to load is
// logged and changes nothing: the rules in force stay.
func reloadOnHUP(n *node.Node, log *slog.Logger) (stop func()) {
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
			if err := n.Reload(); err != nil {
				log.Error("SIGHUP: rules not reloaded; the previous rules stay in force", "err", err)
				continue
			}
			log.Info("SIGHUP: event rules reloaded", "rules", n.RuleCount())
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
	}
}

// pprofMaxConns caps the connections of the profiles' listener.
const pprofMaxConns = 64

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
	// The same read, idle and header limits as the public listener, and a small cap of
	// its own: a profile is a few connections at a time. No write timeout: a CPU
	// profile or a trace streams for as long as it was asked to.
	srv, capped, err := api.NewHTTPServer(ln, mux, api.HTTPOptions{MaxConns: pprofMaxConns, WriteTimeout: -1, Log: log})
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("HERALD_PPROF_ADDR: %w", err)
	}
	go func() { _ = srv.Serve(capped) }()
	log.Info("profiles served", "addr", "http://"+ln.Addr().String()+"/debug/pprof/")
	return func() { _ = srv.Close() }, nil
}
