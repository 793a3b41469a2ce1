package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"gopkg.in/yaml.v3"

	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/config"
)

// fleet is the kcguard processes of one run: `kcguard serve` instances,
// the sync poller and the cleanup schedule, all with the run's own
// configuration, reaching Keycloak and moto through the run's own proxies.
type fleet struct {
	URLs []string // the serve instances
	Dir  string   // config and logs
	logs []string
}

// buildKcguard builds the CLI the fleet runs, from this tree.
func buildKcguard(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "kcguard")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/kcguard")
	cmd.Dir = testenv.RepoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build kcguard: %v\n%s", err, out)
	}
	return bin
}

// startFleet writes cfg to dir and starts n serve instances, `sync run`
// and `cleanup run --schedule`, each stopped (SIGINT, then kill) when the
// test ends. awsEndpoint is the moto proxy; extraEnv adds KCGUARD_*
// settings the YAML cannot carry.
func startFleet(t *testing.T, dir, bin string, cfg config.Config, n int, awsEndpoint string, extraEnv ...string) *fleet {
	t.Helper()
	data, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "kcguard.yaml")
	if err := os.WriteFile(cfgPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
		"AWS_ENDPOINT_URL=" + awsEndpoint, "KCGUARD_CONFIG=" + cfgPath}
	for _, kv := range os.Environ() { // the stack's own settings must not leak in
		if !strings.HasPrefix(kv, "KCGUARD_") && !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	env = append(env, extraEnv...)
	f := &fleet{Dir: dir}
	start := func(name string, args ...string) {
		logPath := filepath.Join(dir, name+".log")
		lf, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, args...)
		cmd.Env, cmd.Stdout, cmd.Stderr = env, lf, lf
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		f.logs = append(f.logs, logPath)
		t.Cleanup(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
			lf.Close()
		})
	}
	for i := range n {
		addr := freeAddr(t)
		start(fmt.Sprintf("serve-%d", i+1), "serve", "--addr", addr)
		f.URLs = append(f.URLs, "http://"+addr)
	}
	start("sync", "sync", "run")
	start("cleanup", "cleanup", "run", "--schedule")
	for _, u := range f.URLs {
		waitServing(t, u, f)
	}
	return f
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitServing waits until url answers HTTP at all.
func waitServing(t *testing.T, url string, f *fleet) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Post(url+"/login", "application/json", strings.NewReader("{}"))
		if err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("kcguard serve did not answer on %s within 60s; logs in %s", url, f.Dir)
}

// logText is everything the fleet logged.
func (f *fleet) logText(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, p := range f.logs {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
	}
	return b.String()
}

// alertInbox is an SQS queue subscribed to the run's SNS alert topic: the
// test counts breaker alerts the way an operator's subscription sees them.
type alertInbox struct {
	TopicARN string
	q        *sqs.Client
	url      string
}

func newAlertInbox(t *testing.T, awsCfg aws.Config, name string) *alertInbox {
	t.Helper()
	ctx := context.Background()
	sn, q := sns.NewFromConfig(awsCfg), sqs.NewFromConfig(awsCfg)
	topic, err := sn.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(name + "-alerts")})
	if err != nil {
		t.Fatalf("create alert topic: %v", err)
	}
	qu, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name + "-alert-inbox")})
	if err != nil {
		t.Fatalf("create alert inbox: %v", err)
	}
	attrs, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: qu.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Subscribe(ctx, &sns.SubscribeInput{TopicArn: topic.TopicArn, Protocol: aws.String("sqs"),
		Endpoint: aws.String(attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)])}); err != nil {
		t.Fatalf("subscribe the inbox: %v", err)
	}
	t.Cleanup(func() {
		_, _ = q.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: qu.QueueUrl})
		_, _ = sn.DeleteTopic(context.Background(), &sns.DeleteTopicInput{TopicArn: topic.TopicArn})
	})
	return &alertInbox{TopicARN: aws.ToString(topic.TopicArn), q: q, url: aws.ToString(qu.QueueUrl)}
}

// alert is one SNS notification as the subscription received it.
type alert struct {
	At      time.Time
	Event   string // the "event" message attribute: breaker_opened, breaker_closed, ...
	Subject string
}

// kind is "opened", "closed" or "other".
func (a alert) kind() string {
	switch a.Event {
	case "breaker_opened":
		return "opened"
	case "breaker_closed":
		return "closed"
	}
	return "other"
}

// drain reads every alert delivered so far, one per alert_id: SNS
// delivers at least once (a publish retried after a lost answer arrives
// twice), and the alert_id attribute is how a subscriber counts each
// transition once, as an operator's tooling must.
func (in *alertInbox) drain(t *testing.T) []alert {
	t.Helper()
	var out []alert
	seen := map[string]bool{}
	copies := 0
	for empty := 0; empty < 2; {
		r, err := in.q.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &in.url,
			MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatalf("read alert inbox: %v", err)
		}
		if len(r.Messages) == 0 {
			empty++
			continue
		}
		for _, m := range r.Messages {
			var env struct {
				Subject, Timestamp string
				MessageAttributes  map[string]struct{ Value string }
			}
			if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &env); err != nil {
				t.Fatalf("alert inbox: not an SNS notification: %.200s", aws.ToString(m.Body))
			}
			at, _ := time.Parse(time.RFC3339Nano, env.Timestamp)
			_, _ = in.q.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: &in.url, ReceiptHandle: m.ReceiptHandle})
			id := env.MessageAttributes["alert_id"].Value
			if id == "" {
				t.Errorf("alert without an alert_id: %s", env.Subject)
			} else if seen[id] {
				copies++
				continue
			}
			seen[id] = true
			out = append(out, alert{At: at, Subject: env.Subject, Event: env.MessageAttributes["event"].Value})
		}
	}
	if copies > 0 {
		t.Logf("alert inbox: %d copies of alerts already received (same alert_id) not counted again", copies)
	}
	return out
}
