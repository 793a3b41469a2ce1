package main

import (
	"sort"
	"strconv"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/jsii-runtime-go"

	"github.com/kcguard/kcguard/pkg/schema"
)

// Every permission a function has is written here from its entry in
// Functions, as explicit statements: no CDK grant helper, whose action
// lists are wider than kcguard uses (Scan, streams, DescribeTable, ...).
// template.yaml spells out the same statements; the grants test holds both
// to one expected table.

// SyncMappingLogicalID is the worker's SQS event source mapping. The
// functions that run the breaker get its id as
// KCGUARD_SYNC_EVENT_SOURCE_MAPPING (the worker, which cannot Ref its own
// mapping, finds it with ListEventSourceMappings).
const SyncMappingLogicalID = "SyncWorkerQueueMapping"

// The alarm texts say what is wrong and what to run. The DLQ holds only
// poison: while Keycloak is down the breaker pauses the worker's mapping,
// so an outage, however long, burns no receives.
const (
	DLQAlarmText = "A sync job was dead-lettered: it failed on every receive while the breaker was closed, so it is " +
		"poison (Keycloak refuses it, or it cannot be applied), not an outage. The user's change is not lost: the " +
		"user stays ahead of Keycloak in kcguard's store. Run `kcguard sync status` (the journal says why it failed), " +
		"fix the cause, then `kcguard sync redrive`."
	BacklogAlarmText = "The oldest queued sync job is older than the alarm threshold: changes are not reaching " +
		"Keycloak. `kcguard breaker status`: open means Keycloak is down and the worker is paused on purpose; " +
		"it resumes when the breaker closes. Closed: `kcguard sync status` and `kcguard sync test` (Keycloak admin " +
		"access), and the syncworker log group; `kcguard sync now` drains the queue once by hand."
)

// grantTargets are the resources a statement can name.
type grantTargets struct {
	tables                        map[string]awsdynamodb.Table
	secret                        awssecretsmanager.ISecret
	queue, dlq                    awssqs.Queue
	queueKey, tokenKey, alertsKey awskms.Key
	alerts                        awssns.Topic
}

// workerARN is the sync worker's function ARN, built from its fixed name.
func workerARN() *string {
	return awscdk.Fn_Sub(jsii.String("arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:"+workerName), nil)
}

func statement(sid string, actions []string, resources ...*string) awsiam.PolicyStatement {
	return awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid: jsii.String(sid), Actions: jsii.Strings(actions...), Resources: &resources,
	})
}

// statementsOf is everything f may do besides writing its own logs.
func statementsOf(f Function, g grantTargets) []awsiam.PolicyStatement {
	var out []awsiam.PolicyStatement
	for _, name := range sortedKeys(f.Tables) {
		a, t := f.Tables[name], g.tables[name]
		resources := []*string{t.TableArn()}
		if a&Query != 0 && len(schema.Tables[name].Indexes) > 0 {
			resources = append(resources, jsii.String(*t.TableArn()+"/index/*"))
		}
		out = append(out, statement(TableLogicalID(name), a.Actions(), resources...))
	}
	if f.Keycloak {
		out = append(out, statement("KeycloakClientSecrets", []string{"secretsmanager:GetSecretValue"}, g.secret.SecretArn()))
	}
	if f.SendSync {
		out = append(out, statement("SendSyncJobs", []string{"sqs:SendMessage", "sqs:GetQueueUrl"}, g.queue.QueueArn()))
	}
	if f.SendDLQ {
		out = append(out, statement("DeadLetterPoisonJobs", []string{"sqs:SendMessage", "sqs:GetQueueUrl"}, g.dlq.QueueArn()))
	}
	if f.ConsumesSyncQueue {
		// ChangeMessageVisibility: a job received while the breaker is
		// open goes back with its visibility set to the next probe.
		out = append(out, statement("ConsumeSyncJobs", []string{"sqs:ReceiveMessage", "sqs:DeleteMessage",
			"sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"}, g.queue.QueueArn()))
	}
	if f.QueueDepth {
		out = append(out, statement("QueueDepth", []string{"sqs:GetQueueAttributes", "sqs:GetQueueUrl"},
			g.queue.QueueArn(), g.dlq.QueueArn()))
	}
	switch {
	case f.SendSync || f.SendDLQ:
		out = append(out, statement("SyncQueueKey", []string{"kms:GenerateDataKey", "kms:Decrypt"}, g.queueKey.KeyArn()))
	case f.ConsumesSyncQueue:
		out = append(out, statement("SyncQueueKey", []string{"kms:Decrypt"}, g.queueKey.KeyArn()))
	}
	if f.TokenKey {
		out = append(out, statement("TokenCacheDataKeys", []string{"kms:GenerateDataKey", "kms:Decrypt"}, g.tokenKey.KeyArn()))
	}
	if f.Breaker {
		out = append(out,
			statement("BreakerAlerts", []string{"sns:Publish"}, g.alerts.TopicArn()),
			statement("AlertsKey", []string{"kms:GenerateDataKey", "kms:Decrypt"}, g.alertsKey.KeyArn()),
			awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				// Pause and resume the worker's mapping, and no other.
				Sid:     jsii.String("PauseSyncWorker"),
				Actions: jsii.Strings(mappingActions(f)...),
				Resources: &[]*string{awscdk.Fn_Sub(jsii.String(
					"arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:event-source-mapping:*"), nil)},
				Conditions: &map[string]any{"StringEquals": map[string]any{"lambda:FunctionArn": workerARN()}},
			}))
		if f.ConsumesSyncQueue {
			// The worker cannot be given its own mapping's id; it looks it
			// up. ListEventSourceMappings has no resource-level permission.
			out = append(out, statement("FindOwnMapping", []string{"lambda:ListEventSourceMappings"}, jsii.String("*")))
		}
	}
	return out
}

// mappingActions are what f may do to the worker's event source mapping.
func mappingActions(f Function) []string {
	if f.EnsuresMapping {
		return []string{"lambda:UpdateEventSourceMapping", "lambda:GetEventSourceMapping"}
	}
	return []string{"lambda:UpdateEventSourceMapping"}
}

// envOf is pkg/config's variables for one function: what every function
// needs to load its configuration, plus what its grants let it use.
func (s *Stack) envOf(f Function, p stackParams, secret awssecretsmanager.ISecret,
	tokenKey awskms.Key, mappingID *string) *map[string]*string {
	keycloakURL, packages := p.keycloakURL, p.packages
	q := SyncQueue
	stage := s.stage
	env := map[string]*string{
		"KCGUARD_KEYCLOAK_URL":                          keycloakURL.ValueAsString(),
		"KCGUARD_PACKAGES":                              packages.ValueAsString(),
		"KCGUARD_SYNC_QUEUE":                            s.SyncQueue.QueueName(),
		"KCGUARD_SYNC_DLQ":                              s.DLQ.QueueName(),
		"KCGUARD_SYNC_MAX_RECEIVE_COUNT":                jsii.String(strconv.Itoa(q.MaxReceiveCount)),
		"KCGUARD_SYNC_VISIBILITY_TIMEOUT_SECONDS":       jsii.String(strconv.Itoa(q.VisibilityTimeoutSeconds)),
		"KCGUARD_KMS_KEY_ID":                            tokenKey.KeyArn(),
		"KCGUARD_RESILIENCE_FAILURE_THRESHOLD":          jsii.String(strconv.Itoa(stage.Resilience.FailureThreshold)),
		"KCGUARD_RESILIENCE_COOLDOWN_SECONDS":           jsii.String(strconv.Itoa(stage.Resilience.CooldownSeconds)),
		"KCGUARD_RESILIENCE_TOKEN_GRACE_PERIOD_HOURS":   jsii.String(strconv.Itoa(stage.Resilience.TokenGracePeriodHours)),
		"KCGUARD_RESILIENCE_ALLOW_OFFLINE_MODE":         jsii.String(strconv.FormatBool(stage.Resilience.AllowOfflineMode)),
		"KCGUARD_RESILIENCE_HEALTH_CHECK_CACHE_SECONDS": jsii.String(strconv.Itoa(stage.Resilience.HealthCheckCacheSeconds)),
		"KCGUARD_LOG_LEVEL":                             jsii.String(stage.LogLevel),
		"KCGUARD_LOG_FORMAT":                            jsii.String("json"),
	}
	for name, t := range s.Tables {
		env["KCGUARD_TABLE_"+name] = t.TableName()
	}
	if f.Keycloak {
		env["KCGUARD_KEYCLOAK_SECRETS_ID"] = secret.SecretArn()
	}
	if f.Admin {
		env["KCGUARD_ADMIN_PRINCIPALS"] = p.adminPrincipals.ValueAsString()
	}
	if f.Breaker {
		env["KCGUARD_ALERTS_TOPIC_ARN"] = s.Alerts.TopicArn()
		env["KCGUARD_SYNC_WORKER_FUNCTION"] = awscdk.Fn_Sub(jsii.String(workerName), nil)
		if !f.ConsumesSyncQueue {
			env["KCGUARD_SYNC_EVENT_SOURCE_MAPPING"] = mappingID
		}
	}
	return &env
}

// stackParams are the CloudFormation parameters the functions' environment
// is made of (the same names as template.yaml's).
type stackParams struct {
	keycloakURL, packages, adminPrincipals awscdk.CfnParameter
}

// workerFirst orders fns so the sync worker (and its mapping) comes first.
func workerFirst(fns []Function) []Function {
	out := append([]Function(nil), fns...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].ConsumesSyncQueue && !out[j].ConsumesSyncQueue })
	return out
}
