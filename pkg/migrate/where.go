package migrate

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/kcguard/kcguard/pkg/users"
)

// Where selects the local users a migration provisions. The zero Where
// matches every user.
//
// Syntax (ParseWhere): conditions joined by "," (or the word AND), all of
// which must hold. Each condition is FIELD OP VALUE:
//
//	group~ADMIN       the field contains ADMIN (case-insensitive)
//	group=ADMIN       the field equals ADMIN (case-insensitive)
//	group!=ADMIN      the field does not equal ADMIN
//	enabled=true      only enabled (or =false: only disabled) users
//
// FIELD is username, email, enabled, or the name of a user attribute
// (e.g. group). The seed's SQL form is accepted too and mapped:
//
//	UserGroup LIKE '%ADMIN%'   → group~ADMIN
//	UserGroup LIKE 'ADMIN%'    → group starts with ADMIN
//	UserGroup = 'ADMIN'        → group=ADMIN
//	A = 'x' AND B LIKE '%y%'   → both
//
// Column names map as UserGroup → group, UserName/Username → username,
// Email → email, Enabled → enabled; any other name is an attribute,
// lower-cased.
type Where struct {
	Conds []Cond
}

// Op is how a condition compares.
type Op string

const (
	Contains  Op = "~"
	Equals    Op = "="
	NotEquals Op = "!="
	Prefix    Op = "prefix"
	Suffix    Op = "suffix"
)

// Cond is one condition of a Where.
type Cond struct {
	Field string
	Op    Op
	Value string
}

// ErrSyntax marks a --where expression that cannot be parsed.
var ErrSyntax = errors.New("migrate: bad --where expression")

var (
	simpleCond = regexp.MustCompile(`^\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*(!=|~|=)\s*(.*?)\s*$`)
	sqlCond    = regexp.MustCompile(`(?i)^\s*([A-Za-z_][A-Za-z0-9_.-]*)\s+(LIKE|=|!=|<>)\s+'((?:[^']|'')*)'\s*$`)
	sqlAnd     = regexp.MustCompile(`(?i)\s+AND\s+`)
)

// ParseWhere parses the --where syntax documented on Where.
func ParseWhere(expr string) (Where, error) {
	var w Where
	if strings.TrimSpace(expr) == "" {
		return w, nil
	}
	for _, part := range sqlAnd.Split(expr, -1) {
		for _, c := range splitComma(part) {
			cond, err := parseCond(c)
			if err != nil {
				return Where{}, err
			}
			w.Conds = append(w.Conds, cond)
		}
	}
	return w, nil
}

// splitComma splits on commas outside single quotes.
func splitComma(s string) []string {
	var out []string
	quoted, start := false, 0
	for i, r := range s {
		switch {
		case r == '\'':
			quoted = !quoted
		case r == ',' && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func parseCond(s string) (Cond, error) {
	if m := sqlCond.FindStringSubmatch(s); m != nil {
		field, val := column(m[1]), strings.ReplaceAll(m[3], "''", "'")
		switch strings.ToUpper(m[2]) {
		case "=":
			return Cond{field, Equals, val}, nil
		case "!=", "<>":
			return Cond{field, NotEquals, val}, nil
		}
		lead, trail := strings.HasPrefix(val, "%"), strings.HasSuffix(val, "%") && len(val) > 1
		core := strings.TrimSuffix(strings.TrimPrefix(val, "%"), "%")
		if strings.ContainsAny(core, "%_") {
			return Cond{}, fmt.Errorf("%w: %q: only a leading and/or trailing %% is supported in LIKE", ErrSyntax, s)
		}
		switch {
		case lead && trail:
			return Cond{field, Contains, core}, nil
		case lead:
			return Cond{field, Suffix, core}, nil
		case trail:
			return Cond{field, Prefix, core}, nil
		default:
			return Cond{field, Equals, core}, nil
		}
	}
	m := simpleCond.FindStringSubmatch(s)
	if m == nil || m[3] == "" {
		return Cond{}, fmt.Errorf("%w: %q: want FIELD~VALUE, FIELD=VALUE, FIELD!=VALUE or COLUMN LIKE '%%VALUE%%'", ErrSyntax, strings.TrimSpace(s))
	}
	c := Cond{Field: column(m[1]), Op: Op(m[2]), Value: strings.Trim(m[3], "'\"")}
	if c.Field == "enabled" {
		if _, err := strconv.ParseBool(c.Value); err != nil || c.Op == Contains {
			return Cond{}, fmt.Errorf("%w: %q: enabled takes =true or =false", ErrSyntax, s)
		}
	}
	return c, nil
}

func column(name string) string {
	switch strings.ToLower(name) {
	case "usergroup", "group":
		return "group"
	case "username", "user_name":
		return "username"
	case "email":
		return "email"
	case "enabled":
		return "enabled"
	}
	return strings.ToLower(name)
}

// Match reports whether u satisfies every condition.
func (w Where) Match(u users.User) bool {
	for _, c := range w.Conds {
		if !c.match(u) {
			return false
		}
	}
	return true
}

func (c Cond) match(u users.User) bool {
	var got string
	switch c.Field {
	case "username":
		got = u.Username
	case "email":
		got = u.Email
	case "enabled":
		want, _ := strconv.ParseBool(c.Value)
		return (u.Enabled == want) == (c.Op != NotEquals)
	default:
		v, ok := u.Attributes[c.Field]
		if !ok {
			v, ok = u.Attributes[strings.ToLower(c.Field)]
		}
		if !ok {
			return c.Op == NotEquals
		}
		got = v
	}
	g, w := strings.ToLower(got), strings.ToLower(c.Value)
	switch c.Op {
	case Contains:
		return strings.Contains(g, w)
	case Equals:
		return g == w
	case NotEquals:
		return g != w
	case Prefix:
		return strings.HasPrefix(g, w)
	case Suffix:
		return strings.HasSuffix(g, w)
	}
	return false
}

// StoreFilter is the part of w the store can apply while listing (attribute
// substrings, enabled only); Match still decides.
func (w Where) StoreFilter() users.Filter {
	var f users.Filter
	for _, c := range w.Conds {
		switch {
		case c.Field == "enabled" && c.Op == Equals && c.Value == "true":
			f.EnabledOnly = true
		case c.Field == "username" || c.Field == "email" || c.Field == "enabled" || c.Op == NotEquals:
		default:
			if f.Attributes == nil {
				f.Attributes = map[string]string{}
			}
			if _, dup := f.Attributes[c.Field]; !dup {
				f.Attributes[c.Field] = c.Value // every other op implies "contains"
			}
		}
	}
	return f
}

// String renders w in the simple syntax.
func (w Where) String() string {
	var parts []string
	for _, c := range w.Conds {
		switch c.Op {
		case Prefix:
			parts = append(parts, fmt.Sprintf("%s starts with %q", c.Field, c.Value))
		case Suffix:
			parts = append(parts, fmt.Sprintf("%s ends with %q", c.Field, c.Value))
		default:
			parts = append(parts, c.Field+string(c.Op)+c.Value)
		}
	}
	if len(parts) == 0 {
		return "all users"
	}
	return strings.Join(parts, ",")
}
