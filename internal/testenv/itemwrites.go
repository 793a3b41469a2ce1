package testenv

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"
)

// SerialItemWrites is a DynamoDB client option that sends writes touching
// the same item one at a time, the guarantee DynamoDB gives and moto does
// not. Measured against moto 5.2.5: its threaded server reads an item,
// evaluates the ConditionExpression and applies the update as separate
// Python steps, so of 200 parallel conditional ADDs on one item 8 of 40
// runs let one or two more through than the condition allows, and two
// writers can even both create the item and read the same count.
//
// With this option a moto test can prove logic that relies on DynamoDB's
// per-item serialisation (the lockout's reservation): every condition,
// ADD and return value is still moto's, evaluated under real concurrency of
// the code under test; only overlapping writes to one item queue here, and
// writes to different items still run in parallel. Reads are not held up.
func SerialItemWrites() func(*dynamodb.Options) {
	w := &itemWrites{locks: map[string]*sync.Mutex{}}
	return func(o *dynamodb.Options) { o.APIOptions = append(o.APIOptions, w.register) }
}

type itemWrites struct {
	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

func (w *itemWrites) register(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("serial-item-writes",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			keys := writtenItems(in.Parameters)
			sort.Strings(keys) // one order: no deadlock between transactions
			for _, k := range keys {
				w.lock(k).Lock()
			}
			defer func() {
				for _, k := range keys {
					w.lock(k).Unlock()
				}
			}()
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
}

func (w *itemWrites) lock(k string) *sync.Mutex {
	w.mu.Lock()
	defer w.mu.Unlock()
	m, ok := w.locks[k]
	if !ok {
		m = &sync.Mutex{}
		w.locks[k] = m
	}
	return m
}

// writtenItems names the items a write touches ("table|key"), deduplicated.
func writtenItems(params any) []string {
	seen := map[string]bool{}
	add := func(table *string, key map[string]types.AttributeValue) {
		if table != nil {
			seen[*table+"|"+keyString(key)] = true
		}
	}
	switch p := params.(type) {
	case *dynamodb.UpdateItemInput:
		add(p.TableName, p.Key)
	case *dynamodb.DeleteItemInput:
		add(p.TableName, p.Key)
	case *dynamodb.PutItemInput:
		add(p.TableName, itemKey(p.Item))
	case *dynamodb.TransactWriteItemsInput:
		for _, it := range p.TransactItems {
			switch {
			case it.Update != nil:
				add(it.Update.TableName, it.Update.Key)
			case it.Delete != nil:
				add(it.Delete.TableName, it.Delete.Key)
			case it.Put != nil:
				add(it.Put.TableName, itemKey(it.Put.Item))
			case it.ConditionCheck != nil:
				add(it.ConditionCheck.TableName, it.ConditionCheck.Key)
			}
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	return out
}

// itemKey picks the key attributes of a whole item. kcguard's tables key on
// pk (and sk); anything else serialises on the whole table, which is only
// stricter.
func itemKey(item map[string]types.AttributeValue) map[string]types.AttributeValue {
	key := map[string]types.AttributeValue{}
	for _, name := range []string{"pk", "sk"} {
		if v, ok := item[name]; ok {
			key[name] = v
		}
	}
	return key
}

func keyString(key map[string]types.AttributeValue) string {
	names := make([]string, 0, len(key))
	for n := range key {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		switch v := key[n].(type) {
		case *types.AttributeValueMemberS:
			fmt.Fprintf(&b, "%s=S:%s;", n, v.Value)
		case *types.AttributeValueMemberN:
			fmt.Fprintf(&b, "%s=N:%s;", n, v.Value)
		case *types.AttributeValueMemberB:
			fmt.Fprintf(&b, "%s=B:%x;", n, v.Value)
		}
	}
	return b.String()
}
