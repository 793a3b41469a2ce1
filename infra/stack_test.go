package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/cxapi"
	"github.com/aws/jsii-runtime-go"

	"github.com/kcguard/kcguard/pkg/metrics"
	"github.com/kcguard/kcguard/pkg/schema"
)

func props(m map[string]any) *map[string]any { return &m }

func TestTablesAreEncryptedRecoverableOnDemand(t *testing.T) {
	for _, stage := range []string{"dev", "prod"} {
		t.Run(stage, func(t *testing.T) {
			s := synth(t, stage)
			s.template.ResourceCountIs(jsii.String("AWS::DynamoDB::Table"), jsii.Number(len(schema.Tables)))
			want := map[string]any{
				"BillingMode":                      "PAY_PER_REQUEST",
				"SSESpecification":                 map[string]any{"SSEEnabled": true},
				"PointInTimeRecoverySpecification": map[string]any{"PointInTimeRecoveryEnabled": true},
			}
			if stage == "prod" {
				want["DeletionProtectionEnabled"] = true
			}
			s.template.AllResourcesProperties(jsii.String("AWS::DynamoDB::Table"), assertions.Match_ObjectLike(props(want)))
			policy := "Delete"
			if stage == "prod" {
				policy = "Retain"
			}
			s.template.AllResources(jsii.String("AWS::DynamoDB::Table"), map[string]any{
				"DeletionPolicy": policy, "UpdateReplacePolicy": policy,
			})
		})
	}
}

func TestSyncQueuesAreFifoEncryptedWithTheQueueKeyTLSOnlyWithDLQ(t *testing.T) {
	s := synth(t, "dev")
	s.template.ResourceCountIs(jsii.String("AWS::SQS::Queue"), jsii.Number(2))
	// The customer key, not SQS-managed encryption (finding 8).
	s.template.AllResourcesProperties(jsii.String("AWS::SQS::Queue"), map[string]any{
		"FifoQueue": true, "KmsMasterKeyId": map[string]any{"Fn::GetAtt": []any{"SyncQueueKey", "Arn"}},
		"SqsManagedSseEnabled": assertions.Match_Absent(),
	})
	s.template.HasResourceProperties(jsii.String("AWS::SQS::Queue"), map[string]any{
		"ContentBasedDeduplication": false,
		"VisibilityTimeout":         SyncQueue.VisibilityTimeoutSeconds,
		"MessageRetentionPeriod":    4 * 86400,
		"RedrivePolicy": map[string]any{
			"deadLetterTargetArn": map[string]any{"Fn::GetAtt": []any{"SyncDeadLetterQueue", "Arn"}},
			"maxReceiveCount":     SyncQueue.MaxReceiveCount,
		},
	})
	// SQS counts a dead-lettered job's age from its first enqueue: the DLQ
	// must keep it longer than the queue did.
	if SyncQueue.DLQRetentionSeconds <= SyncQueue.RetentionSeconds {
		t.Errorf("DLQ retention %ds not above the queue's %ds", SyncQueue.DLQRetentionSeconds, SyncQueue.RetentionSeconds)
	}
	s.template.HasResourceProperties(jsii.String("AWS::SQS::Queue"), map[string]any{
		"MessageRetentionPeriod": SyncQueue.DLQRetentionSeconds, "RedrivePolicy": assertions.Match_Absent(),
	})
	s.template.ResourceCountIs(jsii.String("AWS::SQS::QueuePolicy"), jsii.Number(2))
	s.template.AllResourcesProperties(jsii.String("AWS::SQS::QueuePolicy"), map[string]any{
		"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{
			assertions.Match_ObjectLike(&map[string]any{
				"Effect":    "Deny",
				"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
			}),
		})},
	})
}

func TestKeysRotate(t *testing.T) {
	s := synth(t, "dev")
	s.template.ResourceCountIs(jsii.String("AWS::KMS::Key"), jsii.Number(3)) // tokens, sync queues, alerts
	s.template.AllResourcesProperties(jsii.String("AWS::KMS::Key"), map[string]any{"EnableKeyRotation": true})
	s.template.HasResourceProperties(jsii.String("AWS::KMS::Alias"), map[string]any{"AliasName": "alias/kcguard-dev-tokens"})
	s.template.HasResourceProperties(jsii.String("AWS::KMS::Alias"), map[string]any{"AliasName": "alias/kcguard-dev-sync"})
}

func TestKeycloakMustBeHTTPS(t *testing.T) {
	s := synth(t, "dev")
	s.template.HasParameter(jsii.String("KeycloakUrl"), map[string]any{"AllowedPattern": "^https://.+"})
}

func TestFunctionsRunTheBootstrapOnGravitonWithConfigFromTheEnvironment(t *testing.T) {
	s := synth(t, "dev")
	s.template.ResourceCountIs(jsii.String("AWS::Lambda::Function"), jsii.Number(len(Functions)))
	s.template.AllResourcesProperties(jsii.String("AWS::Lambda::Function"), map[string]any{
		"Runtime": "provided.al2023", "Architectures": []any{"arm64"}, "Handler": "bootstrap",
		"Environment": map[string]any{"Variables": assertions.Match_ObjectLike(&map[string]any{
			"KCGUARD_KMS_KEY_ID": map[string]any{"Fn::GetAtt": []any{"TokenKey", "Arn"}},
			"KCGUARD_LOG_FORMAT": "json",
		})},
	})
	// Only the functions that talk to Keycloak learn where its client
	// secrets are; only those that run the breaker where to alert.
	fns := resourcesOfType(s.json, "AWS::Lambda::Function")
	for _, f := range Functions {
		vars := fns[f.LogicalID]["Properties"].(map[string]any)["Environment"].(map[string]any)["Variables"].(map[string]any)
		secretRef, _ := json.Marshal(vars["KCGUARD_KEYCLOAK_SECRETS_ID"])
		if got := strings.Contains(string(secretRef), `"KeycloakClientSecrets`); got != f.Keycloak {
			t.Errorf("%s: KCGUARD_KEYCLOAK_SECRETS_ID %s, want it iff it talks to Keycloak (%v)", f.Name, secretRef, f.Keycloak)
		}
		topic, _ := json.Marshal(vars["KCGUARD_ALERTS_TOPIC_ARN"])
		if got := string(topic) == `{"Ref":"AlertsTopic"}`; got != f.Breaker {
			t.Errorf("%s: KCGUARD_ALERTS_TOPIC_ARN %s, want the topic iff it runs the breaker (%v)", f.Name, topic, f.Breaker)
		}
		mapping, _ := json.Marshal(vars["KCGUARD_SYNC_EVENT_SOURCE_MAPPING"])
		if got := string(mapping) == `{"Ref":"`+SyncMappingLogicalID+`"}`; got != (f.Breaker && !f.ConsumesSyncQueue) {
			t.Errorf("%s: KCGUARD_SYNC_EVENT_SOURCE_MAPPING %s", f.Name, mapping)
		}
	}
	// No client secret is ever in the template: only the secret's ARN.
	for id, r := range resourcesOfType(s.json, "AWS::Lambda::Function") {
		env, _ := json.Marshal(r["Properties"].(map[string]any)["Environment"])
		for _, bad := range []string{"client_secret", "CLIENT_SECRET", "KCGUARD_KEYCLOAK_SECRET_"} {
			if strings.Contains(string(env), bad) {
				t.Errorf("%s: environment mentions %s: %s", id, bad, env)
			}
		}
	}
}

func TestOnlyAdminRoutesUseIAMAndEveryOpenRouteIsJustified(t *testing.T) {
	s := synth(t, "dev")
	iam := map[string]bool{}
	for _, f := range Functions {
		for _, r := range schema.RoutesOf(f.Name) {
			iam[r.Method+" "+r.Path] = r.IAM
			if strings.HasPrefix(r.Path, "/admin/") && !r.IAM {
				t.Errorf("%s %s: an admin route without IAM", r.Method, r.Path)
			}
		}
	}
	for _, r := range resourcesOfType(s.json, "AWS::ApiGatewayV2::Route") {
		p := r["Properties"].(map[string]any)
		key := p["RouteKey"].(string)
		auth, _ := p["AuthorizationType"].(string)
		admin := iam[key]
		switch {
		case admin && auth != "AWS_IAM":
			t.Errorf("%s: AuthorizationType %q, want AWS_IAM", key, auth)
		case !admin && auth != "" && auth != "NONE":
			t.Errorf("%s: AuthorizationType %q, want none", key, auth)
		case !admin && openRouteReason[key] == "":
			t.Errorf("%s: open route without a reason in openRouteReason", key)
		}
	}
}

func TestApiStageLogsAndThrottles(t *testing.T) {
	s := synth(t, "dev")
	s.template.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Stage"), map[string]any{
		"StageName": "$default", "AutoDeploy": true,
		"AccessLogSettings": assertions.Match_ObjectLike(&map[string]any{
			"DestinationArn": assertions.Match_AnyValue(),
		}),
		"DefaultRouteSettings": map[string]any{"ThrottlingBurstLimit": 200, "ThrottlingRateLimit": 100},
	})
}

func TestWorkerReportsPartialBatchFailuresWithBoundedConcurrency(t *testing.T) {
	s := synth(t, "dev")
	s.template.ResourceCountIs(jsii.String("AWS::Lambda::EventSourceMapping"), jsii.Number(1))
	if resourcesOfType(s.json, "AWS::Lambda::EventSourceMapping")[SyncMappingLogicalID] == nil {
		t.Errorf("the mapping's logical id is not %s", SyncMappingLogicalID)
	}
	s.template.HasResourceProperties(jsii.String("AWS::Lambda::EventSourceMapping"), map[string]any{
		"FunctionName":          map[string]any{"Ref": "SyncWorkerFunction"},
		"EventSourceArn":        map[string]any{"Fn::GetAtt": []any{"SyncQueue", "Arn"}},
		"FunctionResponseTypes": []any{"ReportBatchItemFailures"},
		"BatchSize":             5,
		"ScalingConfig":         map[string]any{"MaximumConcurrency": 2},
	})
}

func TestAlarmsPublishToTheEncryptedAlertsTopic(t *testing.T) {
	s := synth(t, "dev")
	s.template.HasResourceProperties(jsii.String("AWS::SNS::Topic"), map[string]any{
		"KmsMasterKeyId": assertions.Match_AnyValue(),
	})
	s.template.HasResourceProperties(jsii.String("AWS::SNS::Subscription"), map[string]any{
		"Protocol": "email", "Endpoint": "ops@example.com",
	})
	s.template.HasResourceProperties(jsii.String("AWS::CloudWatch::Alarm"), map[string]any{
		"AlarmDescription": DLQAlarmText})
	s.template.HasResourceProperties(jsii.String("AWS::CloudWatch::Alarm"), map[string]any{
		"AlarmDescription": BacklogAlarmText, "Threshold": 900})
	// DLQ not empty, oldest job age, and errors + throttles per function.
	want := 2 + 2*len(Functions)
	s.template.ResourceCountIs(jsii.String("AWS::CloudWatch::Alarm"), jsii.Number(want))
	topic := map[string]any{"Ref": assertions.Match_StringLikeRegexp(jsii.String("^AlertsTopic"))}
	s.template.AllResourcesProperties(jsii.String("AWS::CloudWatch::Alarm"), map[string]any{
		"AlarmActions": []any{topic}, "OKActions": []any{topic},
	})
	for _, m := range []map[string]any{
		{"MetricName": "ApproximateNumberOfMessagesVisible", "Namespace": "AWS/SQS", "Threshold": 1,
			"Dimensions": []any{map[string]any{"Name": "QueueName", "Value": map[string]any{"Fn::GetAtt": []any{"SyncDeadLetterQueue", "QueueName"}}}}},
		{"MetricName": "ApproximateAgeOfOldestMessage", "Namespace": "AWS/SQS",
			"Dimensions": []any{map[string]any{"Name": "QueueName", "Value": map[string]any{"Fn::GetAtt": []any{"SyncQueue", "QueueName"}}}}},
		{"MetricName": "Errors", "Namespace": "AWS/Lambda", "Dimensions": []any{map[string]any{"Name": "FunctionName", "Value": map[string]any{"Ref": "LoginFunction"}}}},
		{"MetricName": "Throttles", "Namespace": "AWS/Lambda", "Dimensions": []any{map[string]any{"Name": "FunctionName", "Value": map[string]any{"Ref": "SyncWorkerFunction"}}}},
	} {
		s.template.HasResourceProperties(jsii.String("AWS::CloudWatch::Alarm"), m)
	}
}

// The grants are least privilege: a function can touch only the tables its
// entry in Functions names, never with a wildcard action or resource.
func TestFunctionPoliciesAreLeastPrivilege(t *testing.T) {
	s := synth(t, "dev")
	for _, f := range Functions {
		stmts := policyStatements(t, s.json, f.LogicalID)
		touched := map[string]bool{}
		for _, st := range stmts {
			for _, a := range asList(st["Action"]) {
				if a == "*" || strings.HasSuffix(a.(string), ":*") {
					t.Errorf("%s: wildcard action %v", f.Name, a)
				}
			}
			for _, r := range asList(st["Resource"]) {
				// ListEventSourceMappings has no resource-level permission.
				if r == "*" && st["Action"] != "lambda:ListEventSourceMappings" {
					t.Errorf("%s: statement on every resource: %v", f.Name, st)
				}
				ref, _ := json.Marshal(r)
				for name := range schema.Tables {
					if strings.Contains(string(ref), `"`+TableLogicalID(name)+`"`) {
						touched[name] = true
					}
				}
			}
		}
		var got, want []string
		for name := range touched {
			got = append(got, name)
		}
		for name := range f.Tables {
			want = append(want, name)
		}
		sort.Strings(got)
		sort.Strings(want)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s touches tables %v, its entry names %v", f.Name, got, want)
		}
	}
}

func TestNoUnsuppressedNagFindings(t *testing.T) {
	for _, stage := range []string{"dev", "prod"} {
		t.Run(stage, func(t *testing.T) {
			s := synth(t, stage)
			a := assertions.Annotations_FromStack(s.stack.Stack)
			for kind, found := range map[string]*[]*map[string]any{
				"error":   ptrSlice(a.FindError(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*")))),
				"warning": ptrSlice(a.FindWarning(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*")))),
			} {
				for _, m := range *found {
					t.Errorf("cdk-nag %s: %v", kind, *m)
				}
			}
		})
	}
}

func ptrSlice(in *[]*cxapi.SynthesisMessage) *[]*map[string]any {
	out := []*map[string]any{}
	for _, m := range *in {
		out = append(out, &map[string]any{"id": *m.Id, "data": m.Entry.Data})
	}
	return &out
}

func resourcesOfType(tpl map[string]any, typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range tpl["Resources"].(map[string]any) {
		if rm := r.(map[string]any); rm["Type"] == typ {
			out[id] = rm
		}
	}
	return out
}

// policyStatements are the statements of the policies attached to a
// function's role.
func policyStatements(t *testing.T, tpl map[string]any, fnID string) []map[string]any {
	t.Helper()
	fn := tpl["Resources"].(map[string]any)[fnID].(map[string]any)
	role := fn["Properties"].(map[string]any)["Role"].(map[string]any)["Fn::GetAtt"].([]any)[0].(string)
	var out []map[string]any
	for _, p := range resourcesOfType(tpl, "AWS::IAM::Policy") {
		props := p["Properties"].(map[string]any)
		attached := false
		for _, r := range props["Roles"].([]any) {
			if rm, ok := r.(map[string]any); ok && rm["Ref"] == role {
				attached = true
			}
		}
		if !attached {
			continue
		}
		for _, st := range props["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			out = append(out, st.(map[string]any))
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no policy statements found for role %s", fnID, role)
	}
	return out
}

func asList(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	return []any{v}
}

// The operators' dashboard plots every metric the code emits (and, being
// built from metrics.Catalog, nothing else of kcguard's), the queues and
// each function's errors and duration.
func TestDashboardShowsEveryEmittedMetric(t *testing.T) {
	s := synth(t, "dev")
	dashboards := resourcesOfType(s.json, "AWS::CloudWatch::Dashboard")
	if len(dashboards) != 1 {
		t.Fatalf("%d dashboards", len(dashboards))
	}
	body, _ := json.Marshal(dashboards["OperatorsDashboard"]["Properties"].(map[string]any)["DashboardBody"])
	text := strings.ReplaceAll(string(body), `\"`, `"`)
	// The body as CloudWatch gets it (CloudFormation tokens left out).
	var raw strings.Builder
	for _, part := range dashboards["OperatorsDashboard"]["Properties"].(map[string]any)["DashboardBody"].(map[string]any)["Fn::Join"].([]any)[1].([]any) {
		if s, ok := part.(string); ok {
			raw.WriteString(s)
		}
	}
	for _, m := range metrics.Catalog {
		shown := strings.Contains(raw.String(), `["kcguard","`+m.Name+`","Function","`+m.Dimensions["Function"]+`"`)
		if m.Dimensions["Package"] == metrics.AnyValue {
			shown = strings.Contains(raw.String(), `SEARCH('{kcguard,Package} MetricName=\"`+m.Name+`\"'`)
		}
		if !shown || len(m.Dimensions) != 1 {
			t.Errorf("dashboard lacks %s %v", m.Name, m.Dimensions)
		}
	}
	for _, f := range Functions {
		for _, metric := range []string{"Errors", "Duration"} {
			if !strings.Contains(text, `["AWS/Lambda","`+metric+`","FunctionName","`) || !strings.Contains(text, `"label":"`+f.Name+`"`) {
				t.Errorf("dashboard lacks %s of %s", metric, f.Name)
			}
		}
	}
	for _, q := range []string{"SyncQueue", "SyncDeadLetterQueue"} {
		if !strings.Contains(text, `{"Fn::GetAtt":["`+q+`","QueueName"]}`) {
			t.Errorf("dashboard lacks the %s", q)
		}
	}
}
