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
	/* Stands in for a node of a document whose tree was dropped after decoding (see
	 * node_load_file_each); only the fields up to and including `doc` exist.  Every function
	 * of this module takes one and works on node_real() of it. */
	NODE_GHOST,
};

struct node_rebuild;

/* One YAML document (one `---` section): what the resource context of errors comes from. */
struct node_doc {
	const char *file;
	int index;        /* 0-based document number in the file */
	const char *kind; /* set by the loader once known; NULL before */
	const char *ns;
	const char *name;
	struct node *root; /* NULL once the tree was dropped */
	/* The document's text in its file, to rebuild a dropped tree for a report: bytes
	 * [off, end) starting at the beginning of 0-based line line0, and their hash. */
	size_t off, end;
	int line0;
	uint64_t hash;
	struct node_rebuild *rb; /* set when the tree was dropped */
	struct node **byord;     /* the rebuilt tree's nodes by ord (rb's pool), or NULL */
	uint32_t nord;
};

struct node {
	enum node_type type;
	int line, col; /* 1-based */
	uint32_t ord;  /* creation order in its document: the same node in a rebuilt tree */
	struct node_doc *doc;
	/* a NODE_GHOST ends here */
	struct node *parent;
	const char *key; /* this node's key in its parent map, or NULL */
	int index;       /* this node's index in its parent sequence, or -1 */
	bool used;       /* read through node_get / node_seq_item (for unknown-field checks) */
	/* NODE_SCALAR */
	const char *str; /* NUL-terminated, pool-owned */
	size_t len;
	bool quoted; /* '..' or ".." or block scalar: never a number/bool/null */
	char style;  /* '\'' or '"' quoted, '|' or '>' block, 0 plain: how str was written */
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

/* Streaming load for large configs: fn(arg, doc) is called for each document as soon as it
 * is parsed, and the document's tree is dropped when fn returns (doc->root becomes NULL; the
 * document is rebuilt from the file on demand through rb, see node_real) unless fn called
 * node_doc_keep() before taking any pointer into it.  So a dropped document must leave no
 * pointers into its tree except node_ghost() copies.  Strings of scalars (n->str) and the
 * node_doc are always allocated from p.  Diagnostics come in the same order as node_load_file
 * followed by fn on each document: the file's YAML errors first. */
int node_load_file_each(struct pool *p, struct diag *d, const char *path, struct node_rebuild *rb,
			void (*fn)(void *arg, struct node_doc *doc), void *arg);
/* Inside fn: keep this document's tree (doc->root becomes a copy in p). */
void node_doc_keep(struct pool *p, struct node_doc *doc);
/* Inside fn: true when the document's tree will be dropped after fn (nodes to keep must be
 * turned into ghosts). */
static inline bool node_doc_dropped(const struct node_doc *doc)
{
	return doc != NULL && doc->rb != NULL;
}

/* The rebuild cache of dropped documents: created per load, its rebuilt trees freed by
 * node_rebuild_release() (or with p, whichever comes first). */
struct node_rebuild *node_rebuild_new(struct pool *p);
void node_rebuild_release(struct node_rebuild *rb);
/* A small stand-in for n (NULL for NULL) allocated from p, valid after n's tree is dropped. */
struct node *node_ghost(struct pool *p, struct node *n);
/* The full node a ghost stands for (n itself otherwise), rebuilding its document when needed.
 * When the file changed since it was loaded, a childless node at the ghost's position.
 * Inline: every getter starts with it. */
struct node *node_rebuilt(const struct node *ghost);
static inline struct node *node_real(const struct node *n)
{
	if (n == NULL || n->type != NODE_GHOST)
		return (struct node *)n;
	return node_rebuilt(n);
}

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
