package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// What each function may do, written out: the CDK app and template.yaml
// must grant exactly this, so widening a grant anywhere fails here and has
// to be argued for in review (issue 11, finding 7). Keys are resources
// (logical ids; "secret" is the Keycloak client secrets; "/index/*" the
// table's indexes), values the actions allowed on them.
var mayDo = map[string]map[string]string{
	"login": {
		"UsersTable":         ddb("GetItem Query PutItem UpdateItem DeleteItem BatchGetItem ConditionCheckItem"),
		"UsersTable/index/*": ddb("GetItem Query PutItem UpdateItem DeleteItem BatchGetItem ConditionCheckItem"),
		"SessionsTable":      ddb("GetItem BatchGetItem PutItem UpdateItem ConditionCheckItem"),
		"TokensTable":        ddb("GetItem PutItem BatchGetItem"),
		"BreakerTable":       ddb("GetItem PutItem UpdateItem"),
		"AuditTable":         ddb("PutItem"),
		"JournalTable":       ddb("PutItem"),
		"secret":             "secretsmanager:GetSecretValue",
		"SyncQueue":          "sqs:SendMessage sqs:GetQueueUrl",
		"SyncQueueKey":       "kms:GenerateDataKey kms:Decrypt",
		"TokenKey":           "kms:GenerateDataKey kms:Decrypt",
		"AlertsTopic":        "sns:Publish",
		"AlertsKey":          "kms:GenerateDataKey kms:Decrypt",
		workerMappings:       "lambda:UpdateEventSourceMapping",
	},
	"password": {
		"UsersTable":            ddb("GetItem Query PutItem UpdateItem DeleteItem BatchGetItem"),
		"UsersTable/index/*":    ddb("GetItem Query PutItem UpdateItem DeleteItem BatchGetItem"),
		"SessionsTable":         ddb("GetItem Query UpdateItem"),
		"SessionsTable/index/*": ddb("GetItem Query UpdateItem"),
		"TokensTable":           ddb("BatchGetItem DeleteItem"),
		"BreakerTable":          ddb("GetItem PutItem UpdateItem"),
		"AuditTable":            ddb("PutItem"),
		"JournalTable":          ddb("PutItem"),
		"secret":                "secretsmanager:GetSecretValue",
		"SyncQueue":             "sqs:SendMessage sqs:GetQueueUrl",
		"SyncQueueKey":          "kms:GenerateDataKey kms:Decrypt",
		"AlertsTopic":           "sns:Publish",
		"AlertsKey":             "kms:GenerateDataKey kms:Decrypt",
		workerMappings:          "lambda:UpdateEventSourceMapping",
	},
	"sessions": {
		"UsersTable":            ddb("GetItem Query UpdateItem"),
		"UsersTable/index/*":    ddb("GetItem Query UpdateItem"),
		"SessionsTable":         ddb("GetItem Query UpdateItem BatchGetItem"),
		"SessionsTable/index/*": ddb("GetItem Query UpdateItem BatchGetItem"),
		"BreakerTable":          ddb("GetItem PutItem UpdateItem"),
		"AuditTable":            ddb("Query"),
		"AuditTable/index/*":    ddb("Query"),
		"JournalTable":          ddb("PutItem"),
		"secret":                "secretsmanager:GetSecretValue",
		"SyncQueue":             "sqs:SendMessage sqs:GetQueueUrl",
		"SyncQueueKey":          "kms:GenerateDataKey kms:Decrypt",
		"AlertsTopic":           "sns:Publish",
		"AlertsKey":             "kms:GenerateDataKey kms:Decrypt",
		workerMappings:          "lambda:UpdateEventSourceMapping",
	},
	// Reads its session table, nothing else: no secrets, no writes.
	"authorizer": {
		"SessionsTable": ddb("GetItem BatchGetItem"),
	},
	"syncworker": {
		"UsersTable":           ddb("GetItem Query UpdateItem"),
		"UsersTable/index/*":   ddb("GetItem Query UpdateItem"),
		"BreakerTable":         ddb("GetItem PutItem UpdateItem"),
		"JournalTable":         ddb("GetItem Query PutItem"),
		"JournalTable/index/*": ddb("GetItem Query PutItem"),
		"secret":               "secretsmanager:GetSecretValue",
		"SyncQueue":            "sqs:ReceiveMessage sqs:DeleteMessage sqs:ChangeMessageVisibility sqs:GetQueueAttributes sqs:GetQueueUrl sqs:SendMessage",
		"SyncDeadLetterQueue":  "sqs:SendMessage sqs:GetQueueUrl",
		"SyncQueueKey":         "kms:GenerateDataKey kms:Decrypt",
		"AlertsTopic":          "sns:Publish",
		"AlertsKey":            "kms:GenerateDataKey kms:Decrypt",
		workerMappings:         "lambda:UpdateEventSourceMapping",
		"*":                    "lambda:ListEventSourceMappings",
	},
	// Writes only what it cleans or refreshes; users are only read.
	"cleanup": {
		"UsersTable":            ddb("GetItem Query"),
		"UsersTable/index/*":    ddb("GetItem Query"),
		"SessionsTable":         ddb("Query BatchWriteItem"),
		"SessionsTable/index/*": ddb("Query BatchWriteItem"),
		"TokensTable":           ddb("Query PutItem DeleteItem"),
		"TokensTable/index/*":   ddb("Query PutItem DeleteItem"),
		"BreakerTable":          ddb("GetItem PutItem UpdateItem BatchGetItem"),
		"AuditTable":            ddb("Query"),
		"AuditTable/index/*":    ddb("Query"),
		"JournalTable":          ddb("Query PutItem DeleteItem"),
		"JournalTable/index/*":  ddb("Query PutItem DeleteItem"),
		"secret":                "secretsmanager:GetSecretValue",
		"SyncQueue":             "sqs:SendMessage sqs:GetQueueUrl sqs:GetQueueAttributes",
		"SyncDeadLetterQueue":   "sqs:GetQueueAttributes sqs:GetQueueUrl",
		"SyncQueueKey":          "kms:GenerateDataKey kms:Decrypt",
		"TokenKey":              "kms:GenerateDataKey kms:Decrypt",
		"AlertsTopic":           "sns:Publish",
		"AlertsKey":             "kms:GenerateDataKey kms:Decrypt",
		workerMappings:          "lambda:UpdateEventSourceMapping lambda:GetEventSourceMapping",
	},
	// Applies what Keycloak decided: user state, deletions, and the end of
	// a disabled or deleted user's sessions. BreakerTable: its cursors and
	// its last-run record.
	"pull": {
		"UsersTable":            ddb("GetItem Query UpdateItem DeleteItem"),
		"UsersTable/index/*":    ddb("GetItem Query UpdateItem DeleteItem"),
		"SessionsTable":         ddb("Query UpdateItem"),
		"SessionsTable/index/*": ddb("Query UpdateItem"),
		"BreakerTable":          ddb("GetItem PutItem UpdateItem"),
		"secret":                "secretsmanager:GetSecretValue",
	},
	// Reads, never writes; no secrets, no keys (nothing is decrypted).
	"status": {
		"UsersTable":            ddb("GetItem Query"),
		"UsersTable/index/*":    ddb("GetItem Query"),
		"SessionsTable":         ddb("GetItem Query BatchGetItem"),
		"SessionsTable/index/*": ddb("GetItem Query BatchGetItem"),
		"TokensTable":           ddb("Query"),
		"TokensTable/index/*":   ddb("Query"),
		"BreakerTable":          ddb("GetItem BatchGetItem"),
		"AuditTable":            ddb("Query"),
		"AuditTable/index/*":    ddb("Query"),
		"JournalTable":          ddb("GetItem Query"),
		"JournalTable/index/*":  ddb("GetItem Query"),
		"SyncQueue":             "sqs:GetQueueAttributes sqs:GetQueueUrl",
		"SyncDeadLetterQueue":   "sqs:GetQueueAttributes sqs:GetQueueUrl",
	},
}

// workerMappings: any event source mapping, on condition that it is the
// sync worker's (the breaker pauses and resumes it).
const workerMappings = "event-source-mapping:* if lambda:FunctionArn=function:${AWS::StackName}-syncworker"

func ddb(actions string) string {
	var out []string
	for _, a := range strings.Fields(actions) {
		out = append(out, "dynamodb:"+a)
	}
	return strings.Join(out, " ")
}

func TestEachFunctionMayDoExactly(t *testing.T) {
	for name, tpl := range map[string]map[string]any{
		"CDK":           synth(t, "dev").json,
		"template.yaml": loadSAM(t),
	} {
		t.Run(name, func(t *testing.T) {
			got := grantsOf(t, tpl)
			for _, f := range Functions {
				want := map[string]string{}
				for res, actions := range mayDo[f.Name] {
					want[res] = sortedFields(actions)
				}
				compare(t, f.Name, want, got[f.LogicalID])
			}
			if len(got) != len(Functions) {
				t.Errorf("%d roles with grants, %d functions", len(got), len(Functions))
			}
		})
	}
}

// Every function that runs the breaker can do what winning a close makes
// it do: a bounded reconciliation pass (list unsynced users, journal and
// queue their jobs, keep the pass's cursor in the breaker table).
func TestBreakerFunctionsCanReconcileOnClose(t *testing.T) {
	for _, f := range Functions {
		if !f.Breaker {
			continue
		}
		may := mayDo[f.Name]
		for res, act := range map[string]string{
			"UsersTable/index/*": "dynamodb:Query", "JournalTable": "dynamodb:PutItem", "SyncQueue": "sqs:SendMessage",
			"SyncQueueKey": "kms:GenerateDataKey", "BreakerTable": "dynamodb:PutItem",
		} {
			if !strings.Contains(" "+may[res]+" ", " "+act+" ") {
				t.Errorf("%s runs the breaker but may not %s on %s", f.Name, act, res)
			}
		}
	}
}

// Nobody may do anything to every resource, with one exception AWS
// forces: ListEventSourceMappings has no resource-level permission.
func TestNoWildcardsBeyondTheOneAWSForces(t *testing.T) {
	for name, actions := range mayDo {
		for res, a := range actions {
			for _, act := range strings.Fields(a) {
				if strings.HasSuffix(act, "*") || (res == "*" && act != "lambda:ListEventSourceMappings") {
					t.Errorf("%s: %s on %s", name, act, res)
				}
			}
		}
	}
}

// grantsOf reduces a template (CloudFormation JSON form) to function logical
// id -> resource -> sorted actions, from the role policies (CDK: the
// AWS::IAM::Policy attached to the function's role; SAM: the function's
// Policies statements).
func grantsOf(t *testing.T, tpl map[string]any) map[string]map[string]string {
	t.Helper()
	resources := tpl["Resources"].(map[string]any)
	out := map[string]map[string]string{}
	add := func(fn string, stmts []any) {
		for _, st := range stmts {
			st := st.(map[string]any)
			if st["Effect"] != "Allow" {
				t.Errorf("%s: statement %v is not an Allow", fn, st)
			}
			cond := ""
			if c, ok := st["Condition"].(map[string]any); ok {
				for op, kv := range c {
					if op != "StringEquals" {
						t.Errorf("%s: condition operator %s", fn, op)
					}
					for k, v := range kv.(map[string]any) {
						cond += " if " + k + "=" + normResource(v)
					}
				}
			}
			for _, r := range asList(st["Resource"]) {
				res := normResource(r) + cond
				if out[fn] == nil {
					out[fn] = map[string]string{}
				}
				have := strings.Fields(out[fn][res])
				for _, a := range asList(st["Action"]) {
					have = append(have, a.(string))
				}
				out[fn][res] = sortedFields(strings.Join(have, " "))
			}
		}
	}
	for id, r := range resources {
		r := r.(map[string]any)
		props, _ := r["Properties"].(map[string]any)
		switch r["Type"] {
		case "AWS::Serverless::Function":
			for _, p := range asList(props["Policies"]) {
				pm, ok := p.(map[string]any)
				if !ok || len(pm) != 1 || pm["Statement"] == nil {
					t.Errorf("%s: policy %v: only inline Statement lists (SAM policy templates grant more than they say)", id, p)
					continue
				}
				add(id, asList(pm["Statement"]))
			}
		case "AWS::IAM::Policy":
			for _, role := range props["Roles"].([]any) {
				for fid, fr := range resources {
					fr := fr.(map[string]any)
					if fr["Type"] != "AWS::Lambda::Function" {
						continue
					}
					rr, _ := json.Marshal(dig(fr, "Properties")["Role"])
					ref, _ := role.(map[string]any)["Ref"].(string)
					if ref != "" && strings.Contains(string(rr), `"`+ref+`"`) {
						add(fid, props["PolicyDocument"].(map[string]any)["Statement"].([]any))
					}
				}
			}
		}
	}
	return out
}

var subRef = regexp.MustCompile(`\$\{([A-Za-z0-9]+)(\.Arn)?\}`)

// normResource names a policy resource the same way whichever template
// wrote it.
func normResource(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case map[string]any:
		if ga, ok := x["Fn::GetAtt"].([]any); ok {
			return fmt.Sprint(ga[0])
		}
		if ref, ok := x["Ref"].(string); ok {
			if strings.HasPrefix(ref, "KeycloakClientSecrets") || ref == "KeycloakSecretArn" {
				return "secret"
			}
			return ref
		}
		if sub, ok := x["Fn::Sub"].(string); ok {
			sub = strings.ReplaceAll(sub, "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:", "")
			return subRef.ReplaceAllString(sub, "$1")
		}
		if j, ok := x["Fn::Join"].([]any); ok {
			var parts []string
			for _, p := range j[1].([]any) {
				parts = append(parts, normResource(p))
			}
			return strings.Join(parts, fmt.Sprint(j[0]))
		}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func sortedFields(s string) string {
	f := strings.Fields(s)
	sort.Strings(f)
	out := f[:0]
	for i, a := range f {
		if i == 0 || a != f[i-1] {
			out = append(out, a)
		}
	}
	return strings.Join(out, " ")
}
