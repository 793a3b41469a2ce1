package status

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kcguard/kcguard/pkg/ddbitem"
)

// The scheduled jobs whose last run status reports.
const (
	JobCleanup   = "cleanup"
	JobPull      = "pull"
	JobReconcile = "reconcile"
	// JobDailySummary publishes the daily summary reports (cleanup does).
	JobDailySummary = "daily_summary"
)

// Jobs lists them in the order operators read them.
var Jobs = []string{JobCleanup, JobPull, JobReconcile, JobDailySummary}

// Run is one scheduled job's last run.
type Run struct {
	Job        string    `json:"job"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	OK         bool      `json:"ok"`
	// Running: started and not finished (or its instance died).
	Running bool `json:"running,omitempty"`
	// Summary is a short human line ("refreshed 3, deleted 10 sessions");
	// never a secret.
	Summary string `json:"summary,omitempty"`
	Error   string `json:"error,omitempty"`
}

// RunRecorder is the port every scheduled job calls when a run ends
// (cleanup does; `sync pull` and `sync reconcile` should).
type RunRecorder interface {
	RecordRun(ctx context.Context, r Run) error
}

// RunLog keeps the last run of each job as one small item per job in the
// breaker table (pk "run#<job>"): a table every function can already
// reach, with a handful of items, so reading all runs is one BatchGetItem.
type RunLog struct {
	DB    RunDB
	Table string
}

// RunDB is the part of *dynamodb.Client RunLog uses.
type RunDB interface {
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	BatchGetItem(context.Context, *dynamodb.BatchGetItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
}

var (
	_ RunRecorder = (*RunLog)(nil)
	_ RunReader   = (*RunLog)(nil)
)

// runKeyPrefix keeps run items apart from breaker records, whose keys are
// Keycloak URLs.
const runKeyPrefix = "run#"

type runItem struct {
	PK         string `dynamodbav:"pk"`
	Job        string `dynamodbav:"job"`
	StartedAt  string `dynamodbav:"started_at"`
	StartedMS  int64  `dynamodbav:"started_ms"`
	FinishedAt string `dynamodbav:"finished_at"`
	OK         bool   `dynamodbav:"ok"`
	Summary    string `dynamodbav:"summary,omitempty"`
	Error      string `dynamodbav:"error,omitempty"`
}

// RecordRun costs one PutItem.
func (l *RunLog) RecordRun(ctx context.Context, r Run) error {
	if r.Job == "" {
		return fmt.Errorf("record run: no job name")
	}
	av, err := attributevalue.MarshalMap(runItem{PK: runKeyPrefix + r.Job, Job: r.Job,
		StartedAt: r.StartedAt.UTC().Format(time.RFC3339Nano), StartedMS: r.StartedAt.UnixMilli(), FinishedAt: r.FinishedAt.UTC().Format(time.RFC3339Nano),
		OK: r.OK, Summary: r.Summary, Error: r.Error})
	if err != nil {
		return fmt.Errorf("record run %s: %w", r.Job, err)
	}
	if _, err := l.DB.PutItem(ctx, &dynamodb.PutItemInput{TableName: &l.Table, Item: av}); err != nil {
		return fmt.Errorf("record run %s: %w", r.Job, err)
	}
	return nil
}

// Claim starts a run of job at now unless one already started at or after
// due: one conditional PutItem, so of several instances reaching a daily
// job at once exactly one does it.
func (l *RunLog) Claim(ctx context.Context, job string, due, now time.Time) (bool, error) {
	av, err := attributevalue.MarshalMap(runItem{PK: runKeyPrefix + job, Job: job,
		StartedAt: now.UTC().Format(time.RFC3339Nano), StartedMS: now.UnixMilli(), Summary: "running"})
	if err != nil {
		return false, err
	}
	_, err = l.DB.PutItem(ctx, &dynamodb.PutItemInput{TableName: &l.Table, Item: av,
		ConditionExpression:       aws.String("attribute_not_exists(pk) OR started_ms < :due"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":due": ddbitem.N(due.UnixMilli())}})
	if ddbitem.ConditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("claim run %s: %w", job, err)
	}
	return true, nil
}

// LastRuns costs one BatchGetItem; jobs that never ran are left out.
func (l *RunLog) LastRuns(ctx context.Context) ([]Run, error) {
	keys := make([]map[string]types.AttributeValue, 0, len(Jobs))
	for _, j := range Jobs {
		keys = append(keys, map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: runKeyPrefix + j}})
	}
	req := map[string]types.KeysAndAttributes{l.Table: {Keys: keys, ConsistentRead: aws.Bool(true)}}
	byJob := map[string]Run{}
	for len(req) > 0 {
		out, err := l.DB.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
		if err != nil {
			return nil, fmt.Errorf("last runs: %w", err)
		}
		for _, av := range out.Responses[l.Table] {
			var it runItem
			if err := attributevalue.UnmarshalMap(av, &it); err != nil {
				return nil, fmt.Errorf("last runs: %w", err)
			}
			r := Run{Job: it.Job, OK: it.OK, Summary: it.Summary, Error: it.Error}
			r.StartedAt, _ = time.Parse(time.RFC3339Nano, it.StartedAt)
			r.FinishedAt, _ = time.Parse(time.RFC3339Nano, it.FinishedAt)
			r.Running = r.FinishedAt.IsZero()
			byJob[r.Job] = r
		}
		req = out.UnprocessedKeys
	}
	runs := []Run{}
	for _, j := range Jobs {
		if r, ok := byJob[j]; ok {
			runs = append(runs, r)
		}
	}
	return runs, nil
}
