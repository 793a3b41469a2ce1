// Package rietest runs built Lambda bootstraps under the AWS Lambda Runtime
// Interface Emulator (aws-lambda-rie), as `sam local invoke` does inside its
// container, but without Docker: the binary that is shipped is the binary
// that is invoked.
//
// The RIE serves one invoke at a time and breaks on concurrent ones, so each
// Function has its own RIE process with its own two ports (the invoke API
// and the runtime API) and Invoke serialises calls.
package rietest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Function is one bootstrap running under its own RIE.
type Function struct {
	Name string
	// URL is the invoke endpoint (…/2015-03-31/functions/function/invocations).
	URL string

	cmd    *exec.Cmd
	out    *syncBuffer
	mu     sync.Mutex // one invoke at a time: the RIE cannot take more
	closed chan struct{}
}

// Report is what the RIE's REPORT line says about one invoke.
type Report struct {
	// Init is the cold start (runtime start-up up to the first Next call);
	// zero for warm invokes.
	Init time.Duration
	// Duration is the invoke itself.
	Duration time.Duration
	// Wall is the whole HTTP round trip as the caller saw it.
	Wall time.Duration
}

// Options start a Function.
type Options struct {
	// RIE is the aws-lambda-rie binary (.cache/bin/aws-lambda-rie).
	RIE string
	// Bootstrap is the built function (dist/lambda/amd64/<name>/bootstrap).
	Bootstrap string
	// Env is the function's whole environment (nothing is inherited but
	// PATH and HOME): the configuration under test, as Lambda would set it.
	Env map[string]string
	// TimeoutSeconds is the function timeout the RIE enforces (default 30).
	TimeoutSeconds int
	// Log receives the RIE's and the function's output as it comes (optional).
	Log io.Writer
}

// Start launches the RIE for one bootstrap on free loopback ports and waits
// until it accepts invokes. Stop it with Stop.
func Start(name string, o Options) (*Function, error) {
	for _, p := range []string{o.RIE, o.Bootstrap} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("rietest: %w", err)
		}
	}
	invokePort, err := freePort()
	if err != nil {
		return nil, err
	}
	apiPort, err := freePort()
	if err != nil {
		return nil, err
	}
	if o.TimeoutSeconds == 0 {
		o.TimeoutSeconds = 30
	}
	bootstrap, _ := filepath.Abs(o.Bootstrap)
	rie, _ := filepath.Abs(o.RIE)
	cmd := exec.Command(rie,
		"--runtime-interface-emulator-address", fmt.Sprintf("127.0.0.1:%d", invokePort),
		"--runtime-api-address", fmt.Sprintf("127.0.0.1:%d", apiPort),
		bootstrap)
	cmd.Dir = filepath.Dir(bootstrap) // Lambda's working directory is the code's (/var/task)
	env := map[string]string{
		"PATH": os.Getenv("PATH"), "HOME": os.Getenv("HOME"),
		"AWS_LAMBDA_FUNCTION_NAME":        name,
		"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
		"AWS_LAMBDA_FUNCTION_TIMEOUT":     strconv.Itoa(o.TimeoutSeconds),
		"LOG_LEVEL":                       "warn", // the RIE's own chatter
	}
	for k, v := range o.Env {
		env[k] = v
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"="+env[k])
	}
	f := &Function{Name: name, URL: fmt.Sprintf("http://127.0.0.1:%d/2015-03-31/functions/function/invocations", invokePort),
		cmd: cmd, out: &syncBuffer{tee: o.Log}, closed: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = f.out, f.out
	// Its own process group, so Stop ends the RIE and the bootstrap it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("rietest: start %s: %w", o.RIE, err)
	}
	go func() { _ = cmd.Wait(); close(f.closed) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", invokePort), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return f, nil
		}
		select {
		case <-f.closed:
			return nil, fmt.Errorf("rietest: the RIE for %s exited at start:\n%s", name, f.out.String())
		default:
		}
		if time.Now().After(deadline) {
			f.Stop()
			return nil, fmt.Errorf("rietest: the RIE for %s did not listen within 10s:\n%s", name, f.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Invoke sends one event and returns the function's response payload.
func (f *Function) Invoke(ctx context.Context, event []byte) ([]byte, Report, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	mark := f.out.Len()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.URL, bytes.NewReader(event))
	if err != nil {
		return nil, Report{}, err
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, Report{}, fmt.Errorf("invoke %s: %w\n%s", f.Name, err, f.out.String()[mark:])
	}
	defer resp.Body.Close()
	payload, err := io.ReadAll(resp.Body)
	rep := Report{Wall: time.Since(start)}
	if err != nil {
		return nil, rep, err
	}
	if resp.StatusCode != http.StatusOK {
		return payload, rep, fmt.Errorf("invoke %s: HTTP %d: %s", f.Name, resp.StatusCode, payload)
	}
	// The REPORT line follows the response; give it a moment.
	for i := 0; i < 50; i++ {
		if r, ok := parseReport(f.out.String()[mark:]); ok {
			r.Wall = rep.Wall
			rep = r
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	var fnErr struct {
		ErrorType    string `json:"errorType"`
		ErrorMessage string `json:"errorMessage"`
	}
	if json.Unmarshal(payload, &fnErr) == nil && fnErr.ErrorType != "" {
		return payload, rep, &FunctionError{Type: fnErr.ErrorType, Message: fnErr.ErrorMessage, Output: f.out.String()[mark:]}
	}
	return payload, rep, nil
}

// FunctionError is a function that failed (an init error, a panic or a
// returned error), as Lambda reports it.
type FunctionError struct {
	Type, Message string
	Output        string // what the function and RIE printed meanwhile
}

func (e *FunctionError) Error() string {
	return fmt.Sprintf("function error %s: %s\n%s", e.Type, e.Message, e.Output)
}

// Output is everything the RIE and the function printed so far.
func (f *Function) Output() string { return f.out.String() }

// Stop ends the RIE and its bootstrap.
func (f *Function) Stop() {
	if f.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-f.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-f.closed:
	case <-time.After(3 * time.Second):
		_ = syscall.Kill(-f.cmd.Process.Pid, syscall.SIGKILL)
		<-f.closed
	}
}

var (
	reportLine = regexp.MustCompile(`REPORT RequestId: \S+\s+(?:Init Duration: ([\d.]+) ms\s+)?Duration: ([\d.]+) ms`)
)

func parseReport(out string) (Report, bool) {
	m := reportLine.FindStringSubmatch(out)
	if m == nil {
		return Report{}, false
	}
	ms := func(s string) time.Duration {
		v, _ := strconv.ParseFloat(s, 64)
		return time.Duration(v * float64(time.Millisecond))
	}
	r := Report{Duration: ms(m[2])}
	if m[1] != "" {
		r.Init = ms(m[1])
	}
	return r, true
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("rietest: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// LocalEnv reads local/env.json (the file `sam local invoke --env-vars`
// takes): its "Parameters" for every function, then the entry named after
// the function's logical id.
func LocalEnv(path, logicalID string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var file map[string]map[string]string
	if err := json.Unmarshal(data, &file); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	env := map[string]string{}
	for _, section := range []string{"Parameters", logicalID} {
		for k, v := range file[section] {
			env[k] = v
		}
	}
	if len(env) == 0 {
		return nil, errors.New(path + ": no variables")
	}
	return env, nil
}

// StackEnv reads KEY=VALUE lines (local/stack.env): the AWS variables that
// point the SDK at moto.
func StackEnv(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if k, v, ok := bytes.Cut(line, []byte("=")); ok {
			env[string(k)] = string(v)
		}
	}
	return env, sc.Err()
}

// syncBuffer collects output from the RIE's two streams.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	tee io.Writer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tee != nil {
		_, _ = b.tee.Write(p)
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}
