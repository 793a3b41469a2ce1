package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/kcguard/kcguard/pkg/config"
	"github.com/kcguard/kcguard/pkg/platform"
	"github.com/kcguard/kcguard/pkg/schema"
)

// The parity test: template.yaml (SAM, local) and the synthesized CDK stack
// (AWS) must describe the same system, and both must hold pkg/schema's
// tables and routes and the queue the code expects. It reduces each
// template to the parts that make kcguard work (functions and their
// configuration, routes, tables, queues, event sources, schedules) and
// compares those.

// system is a template reduced to what must not drift.
type system struct {
	// Functions by logical id.
	Functions map[string]function
	// Routes: "POST /login" -> "LoginFunction NONE".
	Routes map[string]string
	// Tables by logical id.
	Tables map[string]table
	// Queues by logical id.
	Queues map[string]queue
	// EventSources: "SyncQueue -> SyncWorkerFunction ...".
	EventSources []string
	// Schedules: function logical id -> schedule expression.
	Schedules map[string]string
	// Alarms on the sync queues: logical id -> metric, threshold, text.
	Alarms map[string]string
}

type function struct {
	Runtime, Handler, Architectures string
	MemorySize, Timeout             string
	// Env holds every KCGUARD_* variable, its value made comparable
	// ("ref:UsersTable", "getatt:SyncQueue.QueueName", "param:KeycloakUrl",
	// "secret", or the literal).
	Env map[string]string
}

type table struct {
	Key        schema.Table
	Billing    string
	PITR, SSE  bool
	TTLEnabled bool
}

type queue struct {
	Fifo, ContentBasedDedup bool
	Visibility, Retention   string
	DLQ                     string // logical id of the dead-letter queue
	MaxReceiveCount         string
	KMSKey                  string
}

func TestParitySAMvsCDK(t *testing.T) {
	sam := reduceSAM(t, loadSAM(t))
	cdk := reduceCFN(t, synth(t, "dev").json)
	compare(t, "functions", sam.Functions, cdk.Functions)
	compare(t, "queues", sam.Queues, cdk.Queues)
	compare(t, "event sources", sam.EventSources, cdk.EventSources)
	compare(t, "schedules", sam.Schedules, cdk.Schedules)
	compare(t, "queue alarms", sam.Alarms, cdk.Alarms)
	// Routes and tables: each template against pkg/schema (TestTemplatesMatchTheCode).
}

// Every function folder is deployed, and nothing else is.
func TestEveryFunctionIsDeployed(t *testing.T) {
	dirs, err := filepath.Glob("../functions/*/main.go")
	if err != nil {
		t.Fatal(err)
	}
	var have, want []string
	for _, d := range dirs {
		want = append(want, filepath.Base(filepath.Dir(d)))
	}
	for _, f := range Functions {
		have = append(have, f.Name)
		if f.LogicalID != logicalIDOf(f.Name) {
			t.Errorf("%s: logical id %s, want %s (sam build runs make build-%s)", f.Name, f.LogicalID, logicalIDOf(f.Name), f.LogicalID)
		}
	}
	sort.Strings(have)
	sort.Strings(want)
	compare(t, "functions/ vs infra Functions", want, have)
}

// logicalIDOf must agree with mk/deploy.mk's build-%Function target, which
// lower-cases the stem to find functions/<name>.
func logicalIDOf(name string) string {
	for _, f := range Functions {
		if f.Name == name && strings.ToLower(strings.TrimSuffix(f.LogicalID, "Function")) == name {
			return f.LogicalID
		}
	}
	return strings.ToUpper(name[:1]) + name[1:] + "Function"
}

// Both templates hold exactly pkg/schema's tables (template.yaml's are
// generated, the CDK app builds its own) and the queue the code expects,
// wired to the variables pkg/config reads (pkg/platform's
// TestResourcesAreTheSchemaTablesUnderTheirSettings: the same tables).
func TestTemplatesMatchTheCode(t *testing.T) {
	res := platform.ResourcesOf(config.Default())
	// KCGUARD_TABLE_* variable -> the table it names.
	want := map[string]schema.Table{}
	for suffix, tb := range schema.Tables {
		want["KCGUARD_TABLE_"+suffix] = normalizeTable(tb)
	}
	// "POST /login" -> "LoginFunction NONE".
	routes := map[string]string{}
	for _, r := range schema.Routes {
		routes[r.Key()] = logicalIDOf(r.Function) + map[bool]string{false: " NONE", true: " AWS_IAM"}[r.IAM]
	}
	for name, sys := range map[string]system{
		"template.yaml": reduceSAM(t, loadSAM(t)),
		"CDK":           reduceCFN(t, synth(t, "dev").json),
	} {
		t.Run(name, func(t *testing.T) {
			compare(t, "routes", routes, sys.Routes)
			if len(sys.Tables) != len(want) {
				t.Errorf("%d tables, the code has %d", len(sys.Tables), len(want))
			}
			// Every function is configured alike (the SAM/CDK parity test
			// compares their variables); check the tables once.
			for env, tb := range want {
				seen := map[string]bool{}
				for fnID, fn := range sys.Functions {
					id, ok := strings.CutPrefix(fn.Env[env], "ref:")
					if !ok {
						t.Errorf("%s: %s = %q, want a Ref to a table", fnID, env, fn.Env[env])
						continue
					}
					if seen[id] {
						continue
					}
					seen[id] = true
					got := sys.Tables[id]
					compare(t, fmt.Sprintf("table %s (%s)", id, env), tb, got.Key)
					if !got.PITR || !got.SSE || got.Billing != "PAY_PER_REQUEST" || (tb.TTLAttribute != "" && !got.TTLEnabled) {
						t.Errorf("table %s: want on-demand, PITR, encryption and TTL; got %+v", id, got)
					}
				}
			}
			for fnID, fn := range sys.Functions {
				qid, ok := strings.CutPrefix(fn.Env["KCGUARD_SYNC_QUEUE"], "getatt:")
				qid, _ = strings.CutSuffix(qid, ".QueueName")
				q := sys.Queues[qid]
				if !ok || !q.Fifo || q.MaxReceiveCount != strconv.Itoa(res.Queue.MaxReceiveCount) ||
					q.Visibility != strconv.Itoa(res.Queue.VisibilityTimeoutSeconds) {
					t.Errorf("%s: KCGUARD_SYNC_QUEUE %q: queue %+v, want FIFO with %+v", fnID, fn.Env["KCGUARD_SYNC_QUEUE"], q, res.Queue)
				}
				if dlq := "getatt:" + q.DLQ + ".QueueName"; fn.Env["KCGUARD_SYNC_DLQ"] != dlq || !sys.Queues[q.DLQ].Fifo {
					t.Errorf("%s: KCGUARD_SYNC_DLQ %q, want %q (the queue's FIFO redrive target)", fnID, fn.Env["KCGUARD_SYNC_DLQ"], dlq)
				}
				for _, v := range []struct{ env, want string }{
					{"KCGUARD_SYNC_MAX_RECEIVE_COUNT", strconv.Itoa(res.Queue.MaxReceiveCount)},
					{"KCGUARD_SYNC_VISIBILITY_TIMEOUT_SECONDS", strconv.Itoa(res.Queue.VisibilityTimeoutSeconds)},
				} {
					if fn.Env[v.env] != v.want {
						t.Errorf("%s: %s = %q, want %q", fnID, v.env, fn.Env[v.env], v.want)
					}
				}
			}
		})
	}
}

// Every KCGUARD_* variable the templates set is one pkg/config reads.
func TestTemplateVariablesAreConfigSettings(t *testing.T) {
	known := map[string]bool{}
	var walk func(reflect.Type)
	walk = func(rt reflect.Type) {
		for i := 0; i < rt.NumField(); i++ {
			f := rt.Field(i)
			if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() == rt.PkgPath() {
				walk(f.Type)
			}
			if env := f.Tag.Get("env"); env != "" {
				known[env] = true
			}
		}
	}
	walk(reflect.TypeOf(config.Config{}))
	for id, fn := range reduceSAM(t, loadSAM(t)).Functions {
		for env := range fn.Env {
			if !known[env] {
				t.Errorf("template.yaml %s sets %s, which pkg/config does not read", id, env)
			}
		}
	}
}

// --- SAM ------------------------------------------------------------------------

func loadSAM(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile("../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var n yaml.Node
	if err := yaml.Unmarshal(data, &n); err != nil {
		t.Fatalf("template.yaml: %v", err)
	}
	return fromYAML(n.Content[0]).(map[string]any)
}

// fromYAML turns CloudFormation YAML into the JSON form: !Ref X becomes
// {"Ref": X}, !GetAtt A.B becomes {"Fn::GetAtt": [A, B]}, !Sub s becomes
// {"Fn::Sub": s}.
func fromYAML(n *yaml.Node) any {
	var v any
	switch n.Kind {
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i < len(n.Content); i += 2 {
			m[n.Content[i].Value] = fromYAML(n.Content[i+1])
		}
		v = m
	case yaml.SequenceNode:
		l := []any{}
		for _, c := range n.Content {
			l = append(l, fromYAML(c))
		}
		v = l
	case yaml.AliasNode:
		return fromYAML(n.Alias)
	default:
		var s any
		if custom(n.Tag) {
			s = n.Value
		} else if err := n.Decode(&s); err != nil {
			s = n.Value
		}
		v = s
	}
	switch tag := n.Tag; {
	case tag == "!Ref":
		return map[string]any{"Ref": v}
	case tag == "!GetAtt":
		if s, ok := v.(string); ok {
			a, b, _ := strings.Cut(s, ".")
			return map[string]any{"Fn::GetAtt": []any{a, b}}
		}
		return map[string]any{"Fn::GetAtt": v}
	case custom(tag):
		return map[string]any{"Fn::" + tag[1:]: v}
	}
	return v
}

// custom tells CloudFormation's short forms (!Ref) from YAML's own (!!str).
func custom(tag string) bool { return strings.HasPrefix(tag, "!") && !strings.HasPrefix(tag, "!!") }

func reduceSAM(t *testing.T, tpl map[string]any) system {
	t.Helper()
	sys := newSystem()
	params, _ := tpl["Parameters"].(map[string]any)
	globals := dig(tpl, "Globals", "Function")
	resources := tpl["Resources"].(map[string]any)
	for id, r := range resources {
		r := r.(map[string]any)
		props, _ := r["Properties"].(map[string]any)
		switch r["Type"] {
		case "AWS::Serverless::Function":
			merged := merge(globals, props)
			fn := function{
				Runtime: str(merged["Runtime"]), Handler: str(merged["Handler"]),
				Architectures: fmt.Sprint(merged["Architectures"]),
				MemorySize:    str(merged["MemorySize"]), Timeout: str(merged["Timeout"]), Env: map[string]string{},
			}
			for k, v := range dig(merged, "Environment", "Variables") {
				if strings.HasPrefix(k, "KCGUARD_") {
					fn.Env[k] = value(v, params, resources)
				}
			}
			sys.Functions[id] = fn
			for _, ev := range dig(props, "Events") {
				ev := ev.(map[string]any)
				p, _ := ev["Properties"].(map[string]any)
				switch ev["Type"] {
				case "HttpApi":
					auth := "NONE"
					if str(dig(p, "Auth")["Authorizer"]) == "AWS_IAM" {
						auth = "AWS_IAM"
					}
					sys.Routes[strings.ToUpper(str(p["Method"]))+" "+str(p["Path"])] = id + " " + auth
				case "SQS":
					sys.EventSources = append(sys.EventSources, eventSource(
						value(p["Queue"], params, resources), id, value(p["BatchSize"], params, resources),
						value(dig(p, "ScalingConfig")["MaximumConcurrency"], params, resources), p["FunctionResponseTypes"]))
				case "Schedule", "ScheduleV2":
					expr := p["Schedule"]
					if expr == nil {
						expr = p["ScheduleExpression"]
					}
					sys.Schedules[id] = value(expr, params, resources)
				default:
					t.Errorf("%s: event type %v: teach the parity test about it", id, ev["Type"])
				}
			}
		default:
			reduceShared(&sys, id, r, props, params, resources)
		}
	}
	sort.Strings(sys.EventSources)
	return sys
}

// --- CloudFormation (CDK output) -----------------------------------------------

func reduceCFN(t *testing.T, tpl map[string]any) system {
	t.Helper()
	sys := newSystem()
	params, _ := tpl["Parameters"].(map[string]any)
	resources := tpl["Resources"].(map[string]any)
	for id, r := range resources {
		r := r.(map[string]any)
		props, _ := r["Properties"].(map[string]any)
		switch r["Type"] {
		case "AWS::Lambda::Function":
			fn := function{
				Runtime: str(props["Runtime"]), Handler: str(props["Handler"]),
				Architectures: fmt.Sprint(props["Architectures"]),
				MemorySize:    str(props["MemorySize"]), Timeout: str(props["Timeout"]), Env: map[string]string{},
			}
			for k, v := range dig(props, "Environment", "Variables") {
				if strings.HasPrefix(k, "KCGUARD_") {
					fn.Env[k] = value(v, params, resources)
				}
			}
			sys.Functions[id] = fn
		case "AWS::ApiGatewayV2::Route":
			auth := str(props["AuthorizationType"])
			if auth == "" {
				auth = "NONE"
			}
			target, _ := json.Marshal(props["Target"])
			fn := "?"
			for iid, ir := range resources {
				if strings.Contains(string(target), `"`+iid+`"`) {
					uri := dig(ir.(map[string]any), "Properties")["IntegrationUri"]
					fn = strings.TrimSuffix(strings.TrimPrefix(value(uri, params, resources), "getatt:"), ".Arn")
				}
			}
			sys.Routes[str(props["RouteKey"])] = fn + " " + auth
		case "AWS::Events::Rule":
			for _, tg := range props["Targets"].([]any) {
				fn := strings.TrimSuffix(strings.TrimPrefix(value(tg.(map[string]any)["Arn"], params, resources), "getatt:"), ".Arn")
				sys.Schedules[fn] = str(props["ScheduleExpression"])
			}
		default:
			reduceShared(&sys, id, r, props, params, resources)
		}
	}
	sort.Strings(sys.EventSources)
	return sys
}

// --- shared -----------------------------------------------------------------------

// reduceShared reduces the resources both templates declare the same way.
func reduceShared(sys *system, id string, r, props, params, resources map[string]any) {
	switch r["Type"] {
	case "AWS::DynamoDB::Table":
		sys.Tables[id] = reduceTable(props)
	case "AWS::SQS::Queue":
		sys.Queues[id] = reduceQueue(props, params, resources)
	case "AWS::Lambda::EventSourceMapping":
		sys.EventSources = append(sys.EventSources, id+": "+eventSource(
			value(props["EventSourceArn"], params, resources),
			strings.TrimPrefix(value(props["FunctionName"], params, resources), "ref:"),
			value(props["BatchSize"], params, resources),
			value(dig(props, "ScalingConfig")["MaximumConcurrency"], params, resources), props["FunctionResponseTypes"]))
	case "AWS::CloudWatch::Alarm":
		if id == "SyncDeadLetterQueueNotEmpty" || id == "SyncQueueOldestJobAge" {
			dims, _ := json.Marshal(props["Dimensions"])
			sys.Alarms[id] = fmt.Sprintf("%s/%s %s %s>=%s actions=%v/%v: %s", str(props["Namespace"]), str(props["MetricName"]),
				dims, str(props["Statistic"]), value(props["Threshold"], params, resources), props["AlarmActions"], props["OKActions"], str(props["AlarmDescription"]))
		}
	}
}

func newSystem() system {
	return system{Functions: map[string]function{}, Routes: map[string]string{}, Tables: map[string]table{},
		Queues: map[string]queue{}, Schedules: map[string]string{}, Alarms: map[string]string{}}
}

func eventSource(queueArn, fn, batch, concurrency string, types any) string {
	q := strings.TrimSuffix(strings.TrimPrefix(queueArn, "getatt:"), ".Arn")
	return fmt.Sprintf("%s -> %s batch=%s max_concurrency=%s response_types=%v", q, fn, batch, concurrency, types)
}

func reduceTable(props map[string]any) table {
	types := map[string]schema.AttrType{}
	for _, a := range props["AttributeDefinitions"].([]any) {
		a := a.(map[string]any)
		types[str(a["AttributeName"])] = schema.AttrType(str(a["AttributeType"]))
	}
	keys := func(ks any) (schema.Key, *schema.Key) {
		var pk schema.Key
		var sk *schema.Key
		for _, k := range ks.([]any) {
			k := k.(map[string]any)
			key := schema.Key{Name: str(k["AttributeName"]), Type: types[str(k["AttributeName"])]}
			if k["KeyType"] == "HASH" {
				pk = key
			} else {
				sk = &key
			}
		}
		return pk, sk
	}
	var tb schema.Table
	tb.PartitionKey, tb.SortKey = keys(props["KeySchema"])
	if gsis, ok := props["GlobalSecondaryIndexes"].([]any); ok {
		for _, g := range gsis {
			g := g.(map[string]any)
			ix := schema.Index{Name: str(g["IndexName"]), KeysOnly: dig(g, "Projection")["ProjectionType"] == "KEYS_ONLY"}
			ix.PartitionKey, ix.SortKey = keys(g["KeySchema"])
			tb.Indexes = append(tb.Indexes, ix)
		}
	}
	ttl := dig(props, "TimeToLiveSpecification")
	tb.TTLAttribute = str(ttl["AttributeName"])
	return table{
		Key:        normalizeTable(tb),
		Billing:    str(props["BillingMode"]),
		PITR:       dig(props, "PointInTimeRecoverySpecification")["PointInTimeRecoveryEnabled"] == true,
		SSE:        dig(props, "SSESpecification")["SSEEnabled"] == true,
		TTLEnabled: ttl["Enabled"] == true,
	}
}

// normalizeTable orders indexes by name so declaration order does not matter.
func normalizeTable(tb schema.Table) schema.Table {
	tb.Indexes = append([]schema.Index(nil), tb.Indexes...)
	sort.Slice(tb.Indexes, func(i, j int) bool { return tb.Indexes[i].Name < tb.Indexes[j].Name })
	if len(tb.Indexes) == 0 {
		tb.Indexes = nil
	}
	return tb
}

func reduceQueue(props, params, resources map[string]any) queue {
	q := queue{
		Fifo:              props["FifoQueue"] == true,
		ContentBasedDedup: props["ContentBasedDeduplication"] == true,
		Visibility:        str(props["VisibilityTimeout"]),
		Retention:         str(props["MessageRetentionPeriod"]),
		KMSKey:            value(props["KmsMasterKeyId"], params, resources),
	}
	if rp := dig(props, "RedrivePolicy"); rp != nil {
		q.DLQ = strings.TrimSuffix(strings.TrimPrefix(value(rp["deadLetterTargetArn"], params, resources), "getatt:"), ".Arn")
		q.MaxReceiveCount = str(rp["maxReceiveCount"])
	}
	return q
}

// value makes a property value comparable across the two templates.
func value(v any, params, resources map[string]any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return str(v)
	}
	if ref, ok := m["Ref"].(string); ok {
		if p, ok := params[ref].(map[string]any); ok {
			if ref == "KeycloakSecretArn" {
				return "secret"
			}
			if d, ok := p["Default"]; ok {
				return str(d)
			}
			return "param:" + ref
		}
		if r, ok := resources[ref].(map[string]any); ok && r["Type"] == "AWS::SecretsManager::Secret" {
			return "secret"
		}
		return "ref:" + ref
	}
	if ga, ok := m["Fn::GetAtt"].([]any); ok && len(ga) == 2 {
		return "getatt:" + str(ga[0]) + "." + str(ga[1])
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func str(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case int:
		return strconv.Itoa(x)
	default:
		return fmt.Sprint(x)
	}
}

func dig(m map[string]any, path ...string) map[string]any {
	for _, p := range path {
		next, ok := m[p].(map[string]any)
		if !ok {
			return nil
		}
		m = next
	}
	return m
}

// merge applies SAM's Globals: the function's own properties win, maps merge.
func merge(globals, own map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range globals {
		out[k] = v
	}
	for k, v := range own {
		if gm, ok := out[k].(map[string]any); ok {
			if om, ok := v.(map[string]any); ok {
				out[k] = merge(gm, om)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// compare fails with the differing entries when got and want differ.
func compare(t *testing.T, what string, want, got any) {
	t.Helper()
	if reflect.DeepEqual(want, got) {
		return
	}
	wj, _ := json.Marshal(want)
	gj, _ := json.Marshal(got)
	var w, g any
	_ = json.Unmarshal(wj, &w)
	_ = json.Unmarshal(gj, &g)
	diff(t, what, w, g)
}

// diff reports the innermost differing entries of two JSON values.
func diff(t *testing.T, path string, w, g any) {
	t.Helper()
	wm, ok1 := w.(map[string]any)
	gm, ok2 := g.(map[string]any)
	if ok1 && ok2 {
		for _, k := range sortedKeys(union(wm, gm)) {
			if !reflect.DeepEqual(wm[k], gm[k]) {
				diff(t, path+" / "+k, wm[k], gm[k])
			}
		}
		return
	}
	a, _ := json.Marshal(w)
	b, _ := json.Marshal(g)
	t.Errorf("drift at %s:\n  first:  %s\n  second: %s", path, a, b)
}

func union(a, b map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// `sam local invoke --env-vars local/env.json` overrides only variables the
// template declares: a function's own section must set only variables that
// function declares, and each one of the Parameters section (applied to
// every function that declares it, like the client secrets' id, which the
// authorizer does not get) must be declared by some function, or it
// silently does nothing.
func TestLocalEnvOnlyOverridesDeclaredVariables(t *testing.T) {
	data, err := os.ReadFile("../local/env.json")
	if err != nil {
		t.Fatal(err)
	}
	var file map[string]map[string]string
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatalf("local/env.json: %v", err)
	}
	tpl := loadSAM(t)
	globals := dig(tpl, "Globals", "Function")
	declaredSomewhere := map[string]bool{}
	for id, r := range tpl["Resources"].(map[string]any) {
		r := r.(map[string]any)
		if r["Type"] != "AWS::Serverless::Function" {
			continue
		}
		props, _ := r["Properties"].(map[string]any)
		declared := dig(merge(globals, props), "Environment", "Variables")
		for k := range declared {
			declaredSomewhere[k] = true
		}
		for k := range file[id] {
			if _, ok := declared[k]; !ok {
				t.Errorf("local/env.json sets %s for %s, but template.yaml does not declare it there", k, id)
			}
		}
	}
	for k := range file["Parameters"] {
		if !declaredSomewhere[k] {
			t.Errorf("local/env.json sets %s, which no function in template.yaml declares", k)
		}
	}
}
