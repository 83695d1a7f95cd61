package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// Exit statuses.
const (
	exitOK     = 0
	exitFailed = 1 // a check failed: something lost, duplicated, skipped or not connected
	exitError  = 2 // the run could not be made
)

// Scenario names (-scenario).
const (
	scenarioIdle       = "idle"
	scenarioIdleUnread = "idle-unread"
	scenarioDeliver    = "deliver"
	scenarioBroadcast  = "broadcast"
	scenarioStorm      = "reconnect-storm"
	scenarioEvents     = "events"
)

// options are the command line.
type options struct {
	scenario string

	url         string
	startServer string
	postgres    string
	serverPID   int
	secret      string
	apiKey      string

	n              int
	duration       time.Duration
	rate           float64
	publish        string
	batchSize      int
	publishers     int
	rounds         int
	stormAt        time.Duration
	drain          time.Duration
	connectTimeout time.Duration
	concurrency    int
	sourceIPs      int
	perProcess     int
	maxNotes       int64
	fanout         int
	unread         int
	unreadBytes    int
	nodes          int           // 0: one server, as -url or -start-server says
	serverProcs    int           // -server-procs: GOMAXPROCS of each server started; 0: Go's default
	sockets        int           // -nodes: sockets per user
	killAt         time.Duration // -nodes: when to kill the last node; 0: never
	window         time.Duration // deliver, events: figures per window of publishing; 0: off

	timeout time.Duration // 0: bound()

	out        string
	quiet      bool
	cpuProfile string
	printRules bool
	summarize  bool
	files      []string // -summarize: the JSON results to tabulate
}

// parseOptions reads the command line; defaults for the credentials come from the
// server's own variables.
func parseOptions(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("herald-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: herald-bench -scenario %s|%s|%s|%s|%s|%s [flags]\n       herald-bench -print-rules\n       herald-bench -summarize RESULT.json...\n\n",
			scenarioIdle, scenarioIdleUnread, scenarioDeliver, scenarioBroadcast, scenarioStorm, scenarioEvents)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.scenario, "scenario", "", "what to measure: idle, idle-unread, deliver, broadcast, reconnect-storm or events (see the package doc)")
	fs.StringVar(&o.url, "url", "http://127.0.0.1:8080", "base URL of a running server (ignored with -start-server)")
	fs.StringVar(&o.startServer, "start-server", "", "path of a herald binary to start on loopback for the run")
	fs.StringVar(&o.postgres, "postgres", "", "with -start-server: \"throwaway\" runs the server on a PostgreSQL cluster started for the run (fsync on) and removed after it")
	fs.IntVar(&o.serverPID, "server-pid", 0, "pid of the running server, for its memory and CPU figures")
	// Defaults from the environment are filled in after parsing, so -h never shows them.
	fs.StringVar(&o.secret, "jwt-secret", "", "HS256 secret of user JWTs (default $HERALD_JWT_SECRET; random with -start-server)")
	fs.StringVar(&o.apiKey, "api-key", "", "service API key (default the first of $HERALD_API_KEYS; random with -start-server)")
	fs.IntVar(&o.n, "n", 1000, "connections (idle) or users, one connection each")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to hold the connections (idle) or to publish")
	fs.Float64Var(&o.rate, "rate", 1000, "notifications per second in all (deliver, reconnect-storm), events per second (events); 0: as fast as acknowledged")
	fs.StringVar(&o.publish, "publish", publishSingle, "how to publish: single (POST /notifications), batch (POST /notifications/batch with items), both, or multicast (POST /notifications/batch: one body to -batch-size receiverIds)")
	fs.IntVar(&o.batchSize, "batch-size", 100, "notifications per batch request (1..1000)")
	fs.IntVar(&o.publishers, "publishers", 32, "concurrent publishing requests")
	fs.IntVar(&o.rounds, "rounds", 1, "broadcasts, one after the other (broadcast)")
	fs.DurationVar(&o.stormAt, "storm-at", 0, "when every client drops and reconnects, from the start of publishing (default half of -duration)")
	fs.DurationVar(&o.drain, "drain", 10*time.Second, "how long to wait for outstanding notifications once publishing stops")
	fs.DurationVar(&o.connectTimeout, "connect-timeout", 2*time.Minute, "how long all connections may take to open")
	fs.IntVar(&o.concurrency, "concurrency", 128, "WebSocket handshakes in flight at once (per process)")
	fs.IntVar(&o.sourceIPs, "source-ips", 0, "spread connections over source addresses 127.0.0.1..127.0.0.N (default one per 5,000 connections)")
	fs.IntVar(&o.perProcess, "per-process", 18000, "most connections one process holds; idle uses child processes above it")
	fs.Int64Var(&o.maxNotes, "max-notifications", 5_000_000, "most notifications one run publishes")
	fs.IntVar(&o.fanout, "fanout", 10, "receivers of each event (events; 1..1000, at most -n)")
	fs.IntVar(&o.unread, "unread", 100, "unread notifications seeded for each user before connecting (idle-unread)")
	fs.IntVar(&o.unreadBytes, "unread-bytes", 500, "payload size in bytes of each seeded notification (idle-unread; 12..16384)")
	fs.IntVar(&o.serverProcs, "server-procs", 0, "with -start-server: GOMAXPROCS of each server the bench starts (0: Go's default, one per CPU); nodes that share a machine share its CPUs, so give each its share")
	fs.IntVar(&o.nodes, "nodes", 0, "with -start-server: start this many herald nodes as one cluster (above 1 with -postgres throwaway) and run deliver or idle across them (see the package doc)")
	fs.IntVar(&o.sockets, "sockets", 1, "with -nodes (deliver): sockets per user, each on another node, none on its publisher's")
	fs.DurationVar(&o.killAt, "kill-at", 0, "with -nodes (deliver): SIGKILL the last node this long after publishing starts")
	fs.DurationVar(&o.window, "window", 0, "deliver and events on one server: also report the figures of every window of publishing this long (e.g. 1m), and the drift of the last from the first; 0: off")
	fs.DurationVar(&o.timeout, "timeout", 0, "bound of the whole run, stopping the server and PostgreSQL excepted (default the sum of the phases' limits)")
	fs.BoolVar(&o.summarize, "summarize", false, "print one Markdown table of the JSON results (-out files) named as arguments, and exit")
	fs.BoolVar(&o.printRules, "print-rules", false, "print the rules file the events scenario needs on a server the bench does not start, and exit")
	fs.StringVar(&o.out, "out", "", "also write the results as JSON to this file")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress lines")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write the bench's own CPU profile (go tool pprof) to this file")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.summarize {
		if fs.NArg() == 0 {
			return nil, errors.New("-summarize needs the JSON results to tabulate as arguments")
		}
		o.files = fs.Args()
		return o, nil
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if o.secret == "" {
		o.secret = os.Getenv("HERALD_JWT_SECRET")
	}
	if o.apiKey == "" {
		o.apiKey = firstKey(os.Getenv("HERALD_API_KEYS"))
	}
	if o.sourceIPs == 0 {
		o.sourceIPs = min(max((o.n+4999)/5000, 1), 254)
	}
	if o.stormAt == 0 {
		o.stormAt = o.duration / 2
	}
	return o, o.validate()
}

func (o *options) validate() error {
	if o.printRules {
		return nil
	}
	switch {
	case o.scenario != scenarioIdle && o.scenario != scenarioIdleUnread && o.scenario != scenarioDeliver && o.scenario != scenarioBroadcast &&
		o.scenario != scenarioStorm && o.scenario != scenarioEvents:
		return fmt.Errorf("-scenario: %q is not idle, idle-unread, deliver, broadcast, reconnect-storm or events", o.scenario)
	case o.n < 1 || o.n > 1_000_000:
		return errors.New("-n must be within 1..1000000")
	case o.duration <= 0 || o.duration > 24*time.Hour:
		return errors.New("-duration must be within (0, 24h]")
	case o.rate < 0:
		return errors.New("-rate must not be negative")
	case o.serverProcs < 0 || o.serverProcs > 1024:
		return errors.New("-server-procs must be within 0..1024")
	case o.serverProcs > 0 && o.startServer == "":
		return errors.New("-server-procs needs -start-server")
	case o.publish != publishSingle && o.publish != publishBatch && o.publish != publishBoth && o.publish != publishMulticast:
		return fmt.Errorf("-publish: %q is not single, batch, both or multicast", o.publish)
	case o.publish == publishMulticast && o.scenario != scenarioDeliver:
		return errors.New("-publish multicast applies to the deliver scenario")
	case o.publish == publishMulticast && o.batchSize > o.n:
		return errors.New("-publish multicast sends each body to -batch-size distinct users: it must not exceed -n")
	case o.batchSize < 1 || o.batchSize > 1000:
		return errors.New("-batch-size must be within 1..1000")
	case o.publishers < 1 || o.publishers > 4096:
		return errors.New("-publishers must be within 1..4096")
	case o.rounds < 1 || o.rounds > 10000:
		return errors.New("-rounds must be within 1..10000")
	case o.stormAt <= 0 || o.stormAt >= o.duration:
		return errors.New("-storm-at must fall within -duration")
	case o.drain <= 0 || o.connectTimeout <= 0:
		return errors.New("-drain and -connect-timeout must be positive")
	case o.concurrency < 1:
		return errors.New("-concurrency must be positive")
	case o.sourceIPs < 1 || o.sourceIPs > 254:
		return errors.New("-source-ips must be within 1..254")
	case o.perProcess < 1:
		return errors.New("-per-process must be positive")
	case o.scenario != scenarioIdle && o.scenario != scenarioIdleUnread && o.nodes == 0 && o.n > o.perProcess:
		return fmt.Errorf("-n %d exceeds -per-process %d: only idle and idle-unread spread over processes", o.n, o.perProcess)
	case o.unread < 1 || o.unread > 10000:
		return errors.New("-unread must be within 1..10000")
	case o.unreadBytes < 12 || o.unreadBytes > 16<<10:
		return errors.New("-unread-bytes must be within 12..16384 (herald's default payload limit is 16 KiB)")
	case o.maxNotes < 1:
		return errors.New("-max-notifications must be positive")
	case o.fanout < 1 || o.fanout > 1000:
		return errors.New("-fanout must be within 1..1000 (herald stores at most 1,000 notifications per event)")
	case o.scenario == scenarioEvents && o.fanout > o.n:
		return fmt.Errorf("-fanout %d exceeds -n %d: an event's receivers are distinct users", o.fanout, o.n)
	case o.postgres != "" && o.postgres != postgresThrowaway:
		return fmt.Errorf("-postgres: %q is not %s", o.postgres, postgresThrowaway)
	case o.postgres != "" && o.startServer == "":
		return errors.New("-postgres needs -start-server: the bench starts PostgreSQL only for a server it starts")
	case o.window < 0:
		return errors.New("-window must not be negative")
	case o.window > 0 && (o.scenario != scenarioDeliver && o.scenario != scenarioEvents || o.nodes > 0):
		return errors.New("-window applies to deliver and events on one server (without -nodes)")
	case o.window > o.duration:
		return fmt.Errorf("-window %s exceeds -duration %s", o.window, o.duration)
	case o.timeout < 0:
		return errors.New("-timeout must not be negative")
	case o.startServer == "" && o.secret == "":
		return errors.New("-jwt-secret (or HERALD_JWT_SECRET) is required to mint user tokens")
	case o.startServer == "" && o.apiKey == "" && o.scenario != scenarioIdle:
		return errors.New("-api-key (or HERALD_API_KEYS) is required to publish")
	}
	return o.validateNodes()
}

// bound is the longest a run may take: -timeout, or all phases at their limits.
func (o *options) bound() time.Duration {
	if o.timeout > 0 {
		return o.timeout
	}
	b := o.connectTimeout + o.duration + time.Duration(o.rounds)*o.drain + o.connectTimeout + 2*time.Minute
	if o.postgres != "" {
		b += pgStartBound
	}
	if o.nodes > 0 {
		b += time.Duration(o.nodes)*serverReadyTimeout + clusterJoinTimeout + clusterResumeTimeout
	}
	return b
}

func firstKey(keys string) string {
	k, _, _ := strings.Cut(keys, ",")
	return strings.TrimSpace(k)
}

// run is main without the process, for the tests.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o, err := parseOptions(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "herald-bench:", err)
		return exitError
	}
	if o.printRules {
		if _, err := io.WriteString(stdout, fanoutRules); err != nil {
			fmt.Fprintln(stderr, "herald-bench:", err)
			return exitError
		}
		return exitOK
	}
	if o.summarize {
		if err := summarize(o.files, stdout); err != nil {
			fmt.Fprintln(stderr, "herald-bench -summarize:", err)
			return exitError
		}
		return exitOK
	}
	ctx, cancel := context.WithTimeout(ctx, o.bound())
	defer cancel()
	if o.cpuProfile != "" && os.Getenv(childEnv) == "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "herald-bench: -cpuprofile:", err)
			return exitError
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "herald-bench: -cpuprofile:", err)
			return exitError
		}
		defer pprof.StopCPUProfile()
	}
	if spec := os.Getenv(childEnv); spec != "" {
		if err := runChild(ctx, o, spec, stdin, stdout); err != nil {
			fmt.Fprintln(stderr, "herald-bench child:", err)
			return exitError
		}
		return exitOK
	}

	t, nodes, err := connectTargets(ctx, o, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "herald-bench:", err)
		return exitError
	}
	defer func() {
		if err := stopTargets(t, nodes); err != nil {
			fmt.Fprintln(stderr, "herald-bench:", err)
		}
	}()
	var progress io.Writer = stderr
	if o.quiet {
		progress = nil
	}
	s := &session{o: o, t: t, nodes: nodes, progress: progress, stderr: stderr, run: newRunID()}
	res, err := s.runScenario(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "herald-bench %s: %v\n", o.scenario, err)
		return exitError
	}
	if err := res.writeMarkdown(stdout); err != nil {
		fmt.Fprintln(stderr, "herald-bench:", err)
		return exitError
	}
	if o.out != "" {
		if err := res.writeJSON(o.out); err != nil {
			fmt.Fprintln(stderr, "herald-bench:", err)
			return exitError
		}
	}
	if !res.passed() {
		return exitFailed
	}
	return exitOK
}

// connectTarget starts the server (-start-server) or describes the running one.
func connectTarget(ctx context.Context, o *options, logs io.Writer) (*target, error) {
	if o.startServer == "" {
		return &target{
			base: strings.TrimRight(o.url, "/"), pid: o.serverPID,
			secret: []byte(o.secret), apiKey: o.apiKey, desc: o.url,
		}, nil
	}
	if o.secret == "" {
		o.secret = randomSecret()
	}
	if o.apiKey == "" {
		o.apiKey = "bench-" + randomSecret()
	}
	var rules []byte
	if o.scenario == scenarioEvents {
		rules = []byte(fanoutRules)
	}
	if o.postgres != postgresThrowaway {
		return startServer(ctx, o.startServer, o.secret, o.apiKey, rules, o.serverEnv(), logs)
	}
	pg, err := startPostgres(ctx)
	if err != nil {
		return nil, err
	}
	t, err := startServer(ctx, o.startServer, o.secret, o.apiKey, rules, o.serverEnv("HERALD_DATABASE_URL="+pg.url), logs)
	if err != nil {
		if cerr := pg.close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, err
	}
	t.pg, t.store = pg, pg.store
	return t, nil
}

// session is one scenario run against one target.
type session struct {
	o        *options
	t        *target
	progress io.Writer // nil: quiet
	stderr   io.Writer // where child processes write their errors
	run      string    // run id: the users are bench-<run>-<i>
	nodes    *nodeSet  // -nodes: every node (t is the first)
}

func (s *session) runScenario(ctx context.Context) (*Result, error) {
	r := &Result{Scenario: s.o.scenario, Started: time.Now().UTC(), Store: s.t.store, Params: s.o.params()}
	if s.nodes == nil {
		r.cond("server", s.t.desc)
	}
	if s.t.store != "" {
		r.cond("store", s.t.store)
	}
	if s.t.pg != nil {
		r.cond("postgres", s.t.pg.desc)
	}
	r.cond("run", s.run)
	r.cond("bench GOMAXPROCS", runtime.GOMAXPROCS(0))
	r.cond("server GOMAXPROCS", s.serverProcs(ctx))
	r.cond("CPUs", runtime.NumCPU())
	if s.nodes != nil {
		return r, s.runOnNodes(ctx, r)
	}
	var err error
	switch s.o.scenario {
	case scenarioIdle, scenarioIdleUnread:
		err = s.idle(ctx, r)
	case scenarioDeliver:
		err = s.deliver(ctx, r)
	case scenarioBroadcast:
		err = s.broadcast(ctx, r)
	case scenarioStorm:
		err = s.storm(ctx, r)
	case scenarioEvents:
		err = s.events(ctx, r)
	}
	return r, err
}

// serverEnv returns env with what -server-procs sets for every server the bench starts.
func (o *options) serverEnv(env ...string) []string {
	if o.serverProcs > 0 {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(o.serverProcs))
	}
	return env
}
