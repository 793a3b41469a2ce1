// Package schema describes, as plain data, the DynamoDB tables, the SQS
// queue and the HTTP API routes kcguard needs: each is written once, here.
//
// The stores read and write the tables (users.Table and the like are these
// tables under their configured names); `kcguard config fix` creates them
// and `kcguard config validate` checks them (pkg/platform.ResourcesOf);
// the CDK app in infra/ builds the tables and routes from this package and
// template.yaml's tables are generated from it (`make template-tables`), its
// routes checked against it (infra's parity test); pkg/platform binds a
// handler to each route.
package schema

// AttrType is a DynamoDB key attribute type.
type AttrType string

const (
	String AttrType = "S"
	Number AttrType = "N"
	Binary AttrType = "B"
)

// Key is one key attribute of a table or index.
type Key struct {
	Name string
	Type AttrType
}

// Index is a global secondary index. Indexes are always sparse-friendly: an
// item without the index's partition key attribute is simply not in it.
type Index struct {
	Name         string
	PartitionKey Key
	SortKey      *Key // nil: partition key only
	// KeysOnly projects only the keys (cheaper); false projects ALL.
	KeysOnly bool
}

// Table is the physical description of one table. Billing is always
// on-demand (PAY_PER_REQUEST): login traffic is spiky and outage-driven.
type Table struct {
	// Name is the physical table name (from config).
	Name         string
	PartitionKey Key
	SortKey      *Key
	Indexes      []Index
	// TTLAttribute, when set, is the epoch-seconds attribute DynamoDB's TTL
	// deletes items by.
	TTLAttribute string
}

// Queue is the description of an SQS FIFO queue with its FIFO dead-letter queue.
type Queue struct {
	// Name is the queue name; FIFO names end in ".fifo".
	Name string
	// DLQName is the dead-letter queue's name (also ".fifo").
	DLQName string
	// MaxReceiveCount is how many receives before a message moves to the DLQ.
	MaxReceiveCount int
	// VisibilityTimeoutSeconds should exceed the worker's timeout.
	VisibilityTimeoutSeconds int
}
