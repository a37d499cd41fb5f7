/* The config node tree: libyaml events turned into maps, sequences and scalars that each
 * remember file:line:col, their parent and their key, so any later stage can report an
 * error as `file:line:col: Kind ns/name: spec.http[0].route[1].destination.host: why`.
 *
 * Typed getters check the type and report through struct diag; they return false on a
 * type error (already reported).  Every map key read through node_get() is marked used,
 * so node_check_unknown() can report the keys nobody asked for (unknown field = error). */
#ifndef MG_NODE_H
#define MG_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pool;
struct diag;

enum node_type {
	NODE_NULL = 0, /* `~`, `null`, empty value */
	NODE_SCALAR,
	NODE_MAP,
	NODE_SEQ,
};

/* One YAML document (one `---` section): what the resource context of errors comes from. */
struct node_doc {
	const char *file;
	int index;        /* 0-based document number in the file */
	const char *kind; /* set by the loader once known; NULL before */
	const char *ns;
	const char *name;
	struct node *root;
};

struct node {
	enum node_type type;
	int line, col; /* 1-based */
	struct node_doc *doc;
	struct node *parent;
	const char *key; /* this node's key in its parent map, or NULL */
	int index;       /* this node's index in its parent sequence, or -1 */
	bool used;       /* read through node_get / node_seq_item (for unknown-field checks) */
	/* NODE_SCALAR */
	const char *str; /* NUL-terminated, pool-owned */
	size_t len;
	bool quoted; /* '..' or ".." or block scalar: never a number/bool/null */
	/* NODE_MAP: keys[i] (scalars) -> vals[i]; NODE_SEQ: vals[i] */
	size_t n;
	struct node **keys;
	struct node **vals;
	/* NODE_MAP with many keys (built by the loader): 2 * n entries, key/value pairs sorted
	 * by key name, so node_get() is a binary search; NULL means a linear scan. */
	struct node **sorted;
};

/* Parse a file into documents.  On YAML syntax errors, duplicate keys, anchors/aliases
 * (refused: they make positions ambiguous) or unreadable files, reports through d and
 * returns -1; documents parsed before the error are still returned.  Empty documents
 * are skipped.  *docs is a pool-allocated array of *ndocs pointers. */
int node_load_file(struct pool *p, struct diag *d, const char *path, struct node_doc ***docs,
		   size_t *ndocs);
/* Same from memory (file names the source in messages). */
int node_load_buffer(struct pool *p, struct diag *d, const char *file, const char *buf, size_t len,
		     struct node_doc ***docs, size_t *ndocs);

/* Map lookup: returns the value or NULL when absent; marks the key used.
 * map may be NULL (returns NULL) so optional sub-objects chain naturally. */
struct node *node_get(struct node *map, const char *key);
/* Report every key of map not marked used as "unknown field". */
void node_check_unknown(struct diag *d, const struct node *map);
/* Mark every key of map (recursively) as used: for sub-trees deliberately ignored. */
void node_mark_used(struct node *n);

/* Type checks that report "expected a map/sequence/string, got ...". NULL n -> false, no report. */
bool node_want_map(struct diag *d, struct node *n);
bool node_want_seq(struct diag *d, struct node *n);
/* Strings: any unquoted or quoted scalar; `null` yields false with an error. */
bool node_str(struct diag *d, struct node *n, const char **out);
/* Integer in [min, max]; accepts plain decimal scalars only (quoted "80" is an error, as in
 * Kubernetes' strict decoding). */
bool node_int(struct diag *d, struct node *n, int64_t min, int64_t max, int64_t *out);
/* Number (int or float) in [min, max], e.g. percentage.value. */
bool node_double(struct diag *d, struct node *n, double min, double max, double *out);
bool node_bool(struct diag *d, struct node *n, bool *out);
/* Protobuf Duration strings as Istio accepts them: "10s", "1.5s", "100ms", "1m", "1h",
 * "500us", "0s"; result in microseconds; bounded by max_us. */
bool node_duration(struct diag *d, struct node *n, uint64_t max_us, uint64_t *out_us);
/* One of a fixed set of upper-case enum names; returns the index in names[] (NULL-ended). */
bool node_enum(struct diag *d, struct node *n, const char *const *names, int *out);

/* Dotted field path of n within its document ("spec.http[0].match[1].uri"),
 * written into buf (truncated safely). Returns buf. */
char *node_path(const struct node *n, char *buf, size_t size);
/* Short description of a node's type for messages: "map", "sequence", "string", "null". */
const char *node_type_name(const struct node *n);

#endif
