package main

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigateway"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2authorizers"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2integrations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/kcguard/kcguard/pkg/schema"
)

// StackProps configures one kcguard stack.
type StackProps struct {
	awscdk.StackProps
	Stage Stage
	// LambdaDist holds <function>/bootstrap for arm64: the output of
	// `make build-functions` (dist/lambda/arm64), so the deployed binary is
	// the tested one.
	LambdaDist string
	// AlertEmail, when set, subscribes an address to the alerts topic.
	AlertEmail string
}

// Stack is the built stack with the constructs tests look at.
type Stack struct {
	awscdk.Stack
	Functions map[string]awslambda.Function
	Tables    map[string]awsdynamodb.Table
	SyncQueue awssqs.Queue
	DLQ       awssqs.Queue
	Alerts    awssns.Topic
	Dashboard awscloudwatch.Dashboard

	stage Stage
}

// TableLogicalID is the logical id of a table, shared with template.yaml.
func TableLogicalID(envSuffix string) string {
	return strings.ToUpper(envSuffix[:1]) + strings.ToLower(envSuffix[1:]) + "Table"
}

// NewStack builds the kcguard stack.
func NewStack(scope constructs.Construct, id string, props *StackProps) *Stack {
	st := awscdk.NewStack(scope, jsii.String(id), &props.StackProps)
	s := &Stack{Stack: st, Functions: map[string]awslambda.Function{}, Tables: map[string]awsdynamodb.Table{}, stage: props.Stage}
	stage := props.Stage
	removal := awscdk.RemovalPolicy_DESTROY
	if stage.Retain {
		removal = awscdk.RemovalPolicy_RETAIN
	}
	awscdk.Tags_Of(st).Add(jsii.String("app"), jsii.String("kcguard"), nil)
	awscdk.Tags_Of(st).Add(jsii.String("stage"), jsii.String(stage.Name), nil)

	// Parameters with the same names as template.yaml's.
	keycloakURL := awscdk.NewCfnParameter(st, jsii.String("KeycloakUrl"), &awscdk.CfnParameterProps{
		Type:        jsii.String("String"),
		Description: jsii.String("Keycloak base URL (no /realms suffix), e.g. https://sso.example.com"),
		// https only: the functions send client secrets and passwords there
		// (finding 8). Local runs set KCGUARD_KEYCLOAK_URL directly.
		AllowedPattern:        jsii.String("^https://.+"),
		ConstraintDescription: jsii.String("must be an https:// URL"),
	})
	packages := awscdk.NewCfnParameter(st, jsii.String("Packages"), &awscdk.CfnParameterProps{
		Type: jsii.String("String"),
		Description: jsii.String(`Packages (tenants) as JSON: {"<package>": {"realm": "...", "client_id": "..."}}. ` +
			"Client secrets are in the KeycloakClientSecrets secret."),
	})

	adminPrincipals := awscdk.NewCfnParameter(st, jsii.String("AdminPrincipals"), &awscdk.CfnParameterProps{
		Type: jsii.String("String"),
		Description: jsii.String("IAM callers allowed on the admin and status routes (api.admin_principals), " +
			"comma-separated ARNs as API Gateway reports them; a trailing * matches any session of a role " +
			"(arn:aws:sts::ACCOUNT:assumed-role/ROLE/*). Empty: none."),
		Default: jsii.String(""),
	})
	params := stackParams{keycloakURL: keycloakURL, packages: packages, adminPrincipals: adminPrincipals}

	// Token encryption key (envelope encryption of cached Keycloak tokens).
	tokenKey := awskms.NewKey(st, jsii.String("TokenKey"), &awskms.KeyProps{
		Description:       jsii.String("kcguard cached Keycloak tokens (envelope encryption data keys)"),
		EnableKeyRotation: jsii.Bool(true),
		Alias:             jsii.String("alias/kcguard-" + stage.Name + "-tokens"),
		RemovalPolicy:     removal,
	})
	overrideID(tokenKey, "TokenKey")

	// Keycloak client secrets: {"<package>": "<client secret>"}. Created with
	// a placeholder; operators put the real value (README, Deployment).
	secret := awssecretsmanager.NewSecret(st, jsii.String("KeycloakClientSecrets"), &awssecretsmanager.SecretProps{
		Description: jsii.String(`kcguard Keycloak client secrets: {"<package>": "<client secret>"}`),
		GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
			SecretStringTemplate: jsii.String("{}"),
			GenerateStringKey:    jsii.String("placeholder"),
		},
		RemovalPolicy: removal,
	})

	// Tables.
	for _, env := range sortedKeys(schema.Tables) {
		s.Tables[env] = newTable(st, TableLogicalID(env), schema.Tables[env], stage, removal)
	}

	// The sync queues carry password hashes: encrypted with a key of
	// kcguard's own (finding 8), so only roles granted on it can read them.
	queueKey := awskms.NewKey(st, jsii.String("SyncQueueKey"), &awskms.KeyProps{
		Description:       jsii.String("kcguard sync queue and DLQ (queued password hashes)"),
		EnableKeyRotation: jsii.Bool(true),
		Alias:             jsii.String("alias/kcguard-" + stage.Name + "-sync"),
		RemovalPolicy:     removal,
	})
	overrideID(queueKey, "SyncQueueKey")

	// Sync queue and its dead-letter queue (FIFO both).
	q := SyncQueue
	s.DLQ = awssqs.NewQueue(st, jsii.String("SyncDeadLetterQueue"), &awssqs.QueueProps{
		Fifo: jsii.Bool(true), RetentionPeriod: awscdk.Duration_Seconds(jsii.Number(float64(q.DLQRetentionSeconds))),
		Encryption: awssqs.QueueEncryption_KMS, EncryptionMasterKey: queueKey, EnforceSSL: jsii.Bool(true),
	})
	overrideID(s.DLQ, "SyncDeadLetterQueue")
	s.SyncQueue = awssqs.NewQueue(st, jsii.String("SyncQueue"), &awssqs.QueueProps{
		Fifo:                      jsii.Bool(true),
		ContentBasedDeduplication: jsii.Bool(false), // dedup ids come from the change version
		VisibilityTimeout:         awscdk.Duration_Seconds(jsii.Number(float64(q.VisibilityTimeoutSeconds))),
		RetentionPeriod:           awscdk.Duration_Seconds(jsii.Number(float64(q.RetentionSeconds))),
		Encryption:                awssqs.QueueEncryption_KMS, EncryptionMasterKey: queueKey, EnforceSSL: jsii.Bool(true),
		DeadLetterQueue: &awssqs.DeadLetterQueue{
			Queue: s.DLQ, MaxReceiveCount: jsii.Number(float64(q.MaxReceiveCount)),
		},
	})
	overrideID(s.SyncQueue, "SyncQueue")

	// HTTP API with access logs and throttling on its $default stage.
	accessLogs := awslogs.NewLogGroup(st, jsii.String("ApiAccessLogGroup"), &awslogs.LogGroupProps{
		Retention: retentionDays(stage.LogRetentionDays), RemovalPolicy: removal,
	})
	api := awsapigatewayv2.NewHttpApi(st, jsii.String("HttpApi"), &awsapigatewayv2.HttpApiProps{
		ApiName:            jsii.String("kcguard-" + stage.Name),
		CreateDefaultStage: jsii.Bool(false),
	})
	overrideID(api, "HttpApi")
	api.AddStage(jsii.String("DefaultStage"), &awsapigatewayv2.HttpStageOptions{
		StageName:  jsii.String("$default"),
		AutoDeploy: jsii.Bool(true),
		Throttle: &awsapigatewayv2.ThrottleSettings{
			RateLimit: jsii.Number(stage.ApiRateLimit), BurstLimit: jsii.Number(stage.ApiBurstLimit),
		},
		AccessLogSettings: &accessLogSettings{
			dest: awsapigatewayv2.NewLogGroupLogDestination(accessLogs),
			format: awsapigateway.AccessLogFormat_JsonWithStandardFields(&awsapigateway.JsonWithStandardFieldProps{
				Caller: jsii.Bool(true), HttpMethod: jsii.Bool(true), Ip: jsii.Bool(true), Protocol: jsii.Bool(true),
				RequestTime: jsii.Bool(true), ResourcePath: jsii.Bool(true), ResponseLength: jsii.Bool(true),
				Status: jsii.Bool(true), User: jsii.Bool(true),
			}),
		},
	})
	iamAuth := awsapigatewayv2authorizers.NewHttpIamAuthorizer()

	// Alerts: an encrypted topic that the alarms and the winner of each
	// breaker transition publish to. CloudWatch cannot use the AWS-managed
	// SNS key, so the topic has its own.
	alertsKey := awskms.NewKey(st, jsii.String("AlertsKey"), &awskms.KeyProps{
		Description:       jsii.String("kcguard alerts topic"),
		EnableKeyRotation: jsii.Bool(true),
		RemovalPolicy:     awscdk.RemovalPolicy_DESTROY,
	})
	overrideID(alertsKey, "AlertsKey")
	alertsKey.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("CloudWatchAlarmsPublish"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil)},
		Actions:    jsii.Strings("kms:Decrypt", "kms:GenerateDataKey*"),
		Resources:  jsii.Strings("*"),
	}), nil)
	s.Alerts = awssns.NewTopic(st, jsii.String("AlertsTopic"), &awssns.TopicProps{
		DisplayName: jsii.String("kcguard " + stage.Name + " alerts"),
		MasterKey:   alertsKey,
		EnforceSSL:  jsii.Bool(true),
	})
	overrideID(s.Alerts, "AlertsTopic")
	if props.AlertEmail != "" {
		s.Alerts.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(props.AlertEmail), nil))
	}
	alarmAction := awscloudwatchactions.NewSnsAction(s.Alerts)
	alarm := func(id string, m awscloudwatch.IMetric, threshold float64, desc string) {
		a := awscloudwatch.NewAlarm(st, jsii.String(id), &awscloudwatch.AlarmProps{
			Metric:             m,
			Threshold:          jsii.Number(threshold),
			EvaluationPeriods:  jsii.Number(1),
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
			TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
			AlarmDescription:   jsii.String(desc),
		})
		overrideID(a, id)
		a.AddAlarmAction(alarmAction)
		a.AddOkAction(alarmAction)
	}
	fiveMin := &awscloudwatch.MetricOptions{Period: awscdk.Duration_Minutes(jsii.Number(5)), Statistic: jsii.String("Maximum")}
	alarm("SyncDeadLetterQueueNotEmpty", s.DLQ.MetricApproximateNumberOfMessagesVisible(fiveMin), 1, DLQAlarmText)
	alarm("SyncQueueOldestJobAge", s.SyncQueue.MetricApproximateAgeOfOldestMessage(fiveMin),
		stage.OldestSyncJobAlarmSeconds, BacklogAlarmText)

	g := grantTargets{
		tables: s.Tables, secret: secret, queue: s.SyncQueue, dlq: s.DLQ, queueKey: queueKey,
		tokenKey: tokenKey, alerts: s.Alerts, alertsKey: alertsKey,
	}

	// Functions. The worker first: the others name its event source mapping.
	openRoutes := map[string]awsapigatewayv2.HttpRoute{}
	var mappingID *string
	for _, f := range workerFirst(Functions) {
		fn := s.newFunction(st, f, props, s.envOf(f, params, secret, tokenKey, mappingID), removal)
		s.Functions[f.Name] = fn
		for _, stmt := range statementsOf(f, g) {
			fn.AddToRolePolicy(stmt)
		}
		if f.ConsumesSyncQueue {
			// A mapping of our own, not SqsEventSource: that would add its
			// own grants next to the exact ones above.
			m := fn.AddEventSourceMapping(jsii.String("SyncQueueMapping"), &awslambda.EventSourceMappingOptions{
				EventSourceArn:          s.SyncQueue.QueueArn(),
				BatchSize:               jsii.Number(stage.SyncBatchSize),
				MaxConcurrency:          jsii.Number(stage.SyncMaxConcurrency),
				ReportBatchItemFailures: jsii.Bool(true),
			})
			overrideID(m, SyncMappingLogicalID)
			mappingID = m.EventSourceMappingId()
		}
		if f.Schedule != "" {
			rule := awsevents.NewRule(st, jsii.String(strings.TrimSuffix(f.LogicalID, "Function")+"Schedule"), &awsevents.RuleProps{
				Schedule: awsevents.Schedule_Expression(jsii.String(f.Schedule)),
			})
			rule.AddTarget(awseventstargets.NewLambdaFunction(fn, nil))
		}
		if len(schema.RoutesOf(f.Name)) > 0 {
			integration := awsapigatewayv2integrations.NewHttpLambdaIntegration(
				jsii.String(f.LogicalID+"Integration"), fn, nil)
			for _, r := range schema.RoutesOf(f.Name) {
				opts := &awsapigatewayv2.AddRoutesOptions{
					Path: jsii.String(r.Path), Methods: &[]awsapigatewayv2.HttpMethod{awsapigatewayv2.HttpMethod(r.Method)},
					Integration: integration,
				}
				if r.IAM {
					opts.Authorizer = iamAuth
				}
				routes := api.AddRoutes(opts)
				if !r.IAM {
					openRoutes[r.Method+" "+r.Path] = (*routes)[0]
				}
			}
		}
		alarm(strings.TrimSuffix(f.LogicalID, "Function")+"Errors", fn.MetricErrors(sum5m()), 1,
			fmt.Sprintf("kcguard %s: invocation errors (see its log group).", f.Name))
		alarm(strings.TrimSuffix(f.LogicalID, "Function")+"Throttles", fn.MetricThrottles(sum5m()), 1,
			fmt.Sprintf("kcguard %s: throttled invocations (account or reserved concurrency).", f.Name))
	}
	s.Dashboard = newDashboard(st, stage, s)

	awscdk.NewCfnOutput(st, jsii.String("ApiUrl"), &awscdk.CfnOutputProps{
		Description: jsii.String("Base URL of the HTTP API"), Value: api.ApiEndpoint(),
	})
	awscdk.NewCfnOutput(st, jsii.String("AuthorizerFunctionArn"), &awscdk.CfnOutputProps{
		Description: jsii.String("Lambda authorizer for downstream HTTP APIs (grant them lambda:InvokeFunction)"),
		Value:       s.Functions["authorizer"].FunctionArn(),
	})
	awscdk.NewCfnOutput(st, jsii.String("KeycloakClientSecretsArn"), &awscdk.CfnOutputProps{
		Description: jsii.String(`Put {"<package>": "<client secret>"} here after the first deploy`),
		Value:       secret.SecretArn(),
	})
	awscdk.NewCfnOutput(st, jsii.String("SyncQueueUrl"), &awscdk.CfnOutputProps{Value: s.SyncQueue.QueueUrl()})
	awscdk.NewCfnOutput(st, jsii.String("SyncDeadLetterQueueUrl"), &awscdk.CfnOutputProps{Value: s.DLQ.QueueUrl()})
	awscdk.NewCfnOutput(st, jsii.String("AlertsTopicArn"), &awscdk.CfnOutputProps{Value: s.Alerts.TopicArn()})

	suppressNag(s, secret, openRoutes)
	return s
}

func (s *Stack) newFunction(st awscdk.Stack, f Function, props *StackProps, env *map[string]*string, removal awscdk.RemovalPolicy) awslambda.Function {
	logs := awslogs.NewLogGroup(st, jsii.String(strings.TrimSuffix(f.LogicalID, "Function")+"LogGroup"), &awslogs.LogGroupProps{
		Retention: retentionDays(props.Stage.LogRetentionDays), RemovalPolicy: removal,
	})
	fn := awslambda.NewFunction(st, jsii.String(f.LogicalID), &awslambda.FunctionProps{
		Description:  jsii.String(f.Description),
		Runtime:      awslambda.Runtime_PROVIDED_AL2023(),
		Architecture: awslambda.Architecture_ARM_64(),
		Handler:      jsii.String("bootstrap"),
		Code:         awslambda.Code_FromAsset(jsii.String(filepath.Join(props.LambdaDist, f.Name)), nil),
		MemorySize:   jsii.Number(f.MemoryMB),
		Timeout:      awscdk.Duration_Seconds(jsii.Number(f.TimeoutSec)),
		Environment:  env,
		LogGroup:     logs,
	})
	if f.ConsumesSyncQueue {
		fn.Node().DefaultChild().(awslambda.CfnFunction).SetFunctionName(awscdk.Fn_Sub(jsii.String(workerName), nil))
	}
	overrideID(fn, f.LogicalID)
	return fn
}

func newTable(st awscdk.Stack, id string, t schema.Table, stage Stage, removal awscdk.RemovalPolicy) awsdynamodb.Table {
	props := &awsdynamodb.TableProps{
		PartitionKey: attr(t.PartitionKey),
		BillingMode:  awsdynamodb.BillingMode_PAY_PER_REQUEST,
		Encryption:   awsdynamodb.TableEncryption_AWS_MANAGED,
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: jsii.Bool(true),
		},
		DeletionProtection: jsii.Bool(stage.Retain),
		RemovalPolicy:      removal,
	}
	if t.SortKey != nil {
		props.SortKey = attr(*t.SortKey)
	}
	if t.TTLAttribute != "" {
		props.TimeToLiveAttribute = jsii.String(t.TTLAttribute)
	}
	table := awsdynamodb.NewTable(st, jsii.String(id), props)
	for _, ix := range t.Indexes {
		gsi := &awsdynamodb.GlobalSecondaryIndexProps{
			IndexName:      jsii.String(ix.Name),
			PartitionKey:   attr(ix.PartitionKey),
			ProjectionType: awsdynamodb.ProjectionType_ALL,
		}
		if ix.SortKey != nil {
			gsi.SortKey = attr(*ix.SortKey)
		}
		if ix.KeysOnly {
			gsi.ProjectionType = awsdynamodb.ProjectionType_KEYS_ONLY
		}
		table.AddGlobalSecondaryIndex(gsi)
	}
	overrideID(table, id)
	return table
}

func attr(k schema.Key) *awsdynamodb.Attribute {
	types := map[schema.AttrType]awsdynamodb.AttributeType{
		schema.String: awsdynamodb.AttributeType_STRING,
		schema.Number: awsdynamodb.AttributeType_NUMBER,
		schema.Binary: awsdynamodb.AttributeType_BINARY,
	}
	return &awsdynamodb.Attribute{Name: jsii.String(k.Name), Type: types[k.Type]}
}

func sum5m() *awscloudwatch.MetricOptions {
	return &awscloudwatch.MetricOptions{Period: awscdk.Duration_Minutes(jsii.Number(5)), Statistic: jsii.String("Sum")}
}

func retentionDays(days float64) awslogs.RetentionDays {
	switch days {
	case 365:
		return awslogs.RetentionDays_ONE_YEAR
	case 90:
		return awslogs.RetentionDays_THREE_MONTHS
	default:
		return awslogs.RetentionDays_ONE_MONTH
	}
}

// overrideID gives the construct's CloudFormation resource the logical id
// template.yaml uses, so the two templates read (and diff) alike.
func overrideID(c constructs.IConstruct, id string) {
	c.Node().DefaultChild().(awscdk.CfnResource).OverrideLogicalId(jsii.String(id))
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// accessLogSettings implements awsapigatewayv2.IAccessLogSettings (an
// interface without a props struct in the Go bindings).
type accessLogSettings struct {
	dest   awsapigatewayv2.IAccessLogDestination
	format awsapigateway.AccessLogFormat
}

func (a *accessLogSettings) Destination() awsapigatewayv2.IAccessLogDestination { return a.dest }
func (a *accessLogSettings) Format() awsapigateway.AccessLogFormat              { return a.format }
