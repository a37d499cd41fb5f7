#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "pool.h"
#include "diag.h"
#include "node.h"

/* Bounds on untrusted input: a config file is small; these only stop a runaway. */
#define YAML_MAX_BYTES (64u * 1024 * 1024)
#define YAML_MAX_DEPTH 64
/* Maps with more keys than this get a hash table for duplicate detection while loading and
 * a sorted index for node_get() afterwards; below it a linear scan is cheaper. */
#define YAML_SMALL_MAP 16

#define YAML_TAG_PREFIX "tag:yaml.org,2002:"

/* Nodes are carved from blocks of this many: one pool allocation each, and no per-node
 * rounding to the pool's alignment. */
#define YAML_SLAB 16
/* Scalars up to this length are interned per load: keys and values such as "name",
 * "default" or "VirtualService" repeat in every document of a large config. */
#define YAML_INTERN_MAX 32
/* Streamed files are read through libyaml's own buffer; what the loader needs of the bytes
 * afterwards (line starts, a document's hash) it reads again through a window this big. */
#define YAML_WINDOW (64 * 1024)

struct yaml_str {
	const char *s;
	size_t len;
};

struct yaml_frame {
	struct node *node;
	size_t base;      /* first slot of this container's children in the scratch stack */
	struct node *key; /* map: key whose value comes next, or NULL */
	bool drop;        /* map: the pending key was a duplicate; discard its value */
	size_t *ht;       /* map with many keys: (relative slot + 1) of each key, open addressing */
	size_t htcap;
};

struct yaml_load {
	struct pool *p;  /* strings, documents and kept trees */
	struct pool *tp; /* nodes and their arrays: p, or a scratch pool per document */
	struct diag *d;
	const char *file; /* pool copy */
	const char *buf;  /* the text, or NULL when streaming from fd */
	size_t len;
	int fd;    /* streaming: the file, read by libyaml and through win */
	char *win; /* streaming: bytes [win_off, win_off + win_len) of the file */
	size_t win_off, win_len;
	size_t nread;         /* streaming: bytes libyaml has read */
	int read_errno;       /* streaming: the read that failed */
	bool too_big;         /* streaming: the file grew past YAML_MAX_BYTES */
	struct node_doc *doc; /* document being built */
	struct yaml_frame stack[YAML_MAX_DEPTH];
	int depth;
	/* Children of every open container, innermost last; a container's children are copied
	 * into exactly-sized pool arrays when it ends, so nothing is grown in the pool. */
	struct node **scratch;
	size_t nscratch, capscratch;
	struct node_doc **docs;
	size_t ndocs, capdocs;
	struct node *slab;
	size_t slab_left;
	struct yaml_str *strs; /* intern table, open addressing */
	size_t nstrs, capstrs;
	bool failed; /* some error was reported: the load returns -1 */
	int line0;   /* rebuilding one document: the line its text starts at */
	uint32_t ord;
	/* node_load_file_each */
	void (*fn)(void *arg, struct node_doc *doc);
	void *arg;
	struct node_rebuild *rb;
	size_t diag0, nparse, mark; /* diagnostics: first of this file, YAML ones, next new */
	size_t cur_off;             /* byte offset of the start of line cur_line */
	int cur_line;
};

/* Dropped documents rebuilt for reports live in p until release. */
struct node_rebuild {
	struct pool *owner;
	struct pool *p;
	struct yaml_rebuilt *docs;
};

struct yaml_rebuilt {
	struct yaml_rebuilt *next;
	struct node_doc *doc;
};

static void *yaml_xrealloc(void *old, size_t n, size_t size)
{
	void *p;

	if (size != 0 && n > SIZE_MAX / size)
		abort();
	p = realloc(old, n * size);
	if (p == NULL)
		abort(); /* control thread: allocation failure is fatal, as in pool.c */
	return p;
}

static void yaml_push(struct yaml_load *l, struct node *n)
{
	if (l->nscratch == l->capscratch) {
		l->capscratch *= 2;
		l->scratch = yaml_xrealloc(l->scratch, l->capscratch, sizeof(*l->scratch));
	}
	l->scratch[l->nscratch++] = n;
}

static bool yaml_key_eq(const struct node *a, const struct node *b)
{
	return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
}

#define YAML_HASH_INIT 14695981039346656037ull /* FNV-1a */

static uint64_t yaml_hash_more(uint64_t h, const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

static uint64_t yaml_hash(const char *s, size_t len)
{
	return yaml_hash_more(YAML_HASH_INIT, s, len);
}

/* The bytes from offset off on (*avail of them; 0 at the end of the file): the buffer, or
 * the window over a streamed file, moved to hold off (near its end when scanning back). */
static const char *yaml_at(struct yaml_load *l, size_t off, bool back, size_t *avail)
{
	size_t start;
	ssize_t got;

	if (l->buf != NULL) {
		*avail = off < l->len ? l->len - off : 0;
		return *avail ? l->buf + off : NULL;
	}
	if (off < l->win_off || off >= l->win_off + l->win_len) {
		start = !back ? off : off + 1 > YAML_WINDOW ? off + 1 - YAML_WINDOW : 0;
		do
			got = pread(l->fd, l->win, YAML_WINDOW, (off_t)start);
		while (got == -1 && errno == EINTR);
		l->win_off = start;
		l->win_len = got > 0 ? (size_t)got : 0;
		if (off < start || off >= start + l->win_len) {
			*avail = 0;
			return NULL;
		}
	}
	*avail = l->win_off + l->win_len - off;
	return l->win + (off - l->win_off);
}

static uint64_t yaml_hash_range(struct yaml_load *l, size_t off, size_t end)
{
	uint64_t h = YAML_HASH_INIT;
	const char *p;
	size_t av;

	while (off < end && (p = yaml_at(l, off, false, &av)) != NULL) {
		if (av > end - off)
			av = end - off;
		h = yaml_hash_more(h, p, av);
		off += av;
	}
	return h;
}

/* Insert key slot `rel` (relative to f->base) unless an equal key is there; returns the
 * existing key or NULL. */
static struct node *yaml_ht_insert(struct yaml_load *l, struct yaml_frame *f, size_t rel)
{
	struct node *k = l->scratch[f->base + rel];
	size_t mask = f->htcap - 1;
	size_t i = yaml_hash(k->str, k->len) & mask;

	while (f->ht[i] != 0) {
		struct node *o = l->scratch[f->base + f->ht[i] - 1];

		if (yaml_key_eq(o, k))
			return o;
		i = (i + 1) & mask;
	}
	f->ht[i] = rel + 1;
	return NULL;
}

static void yaml_ht_rebuild(struct yaml_load *l, struct yaml_frame *f, size_t cap)
{
	size_t rel, end = l->nscratch - f->base;

	free(f->ht);
	f->ht = yaml_xrealloc(NULL, cap, sizeof(*f->ht));
	memset(f->ht, 0, cap * sizeof(*f->ht));
	f->htcap = cap;
	for (rel = 0; rel < end; rel += 2)
		(void)yaml_ht_insert(l, f, rel);
}

/* Returns the earlier key equal to k among the keys of map frame f, or NULL.  Hashed maps
 * (ht != NULL on return) already have k pushed when it is new. */
static struct node *yaml_find_dup(struct yaml_load *l, struct yaml_frame *f, struct node *k)
{
	size_t nkeys = (l->nscratch - f->base) / 2;
	size_t i;

	if (nkeys < YAML_SMALL_MAP && f->ht == NULL) {
		for (i = 0; i < nkeys; i++)
			if (yaml_key_eq(l->scratch[f->base + 2 * i], k))
				return l->scratch[f->base + 2 * i];
		return NULL;
	}
	/* Keep the load factor under 1/2. */
	if (f->ht == NULL || (nkeys + 1) * 2 > f->htcap)
		yaml_ht_rebuild(l, f, f->htcap ? f->htcap * 2 : 64);
	yaml_push(l, k);
	if ((k = yaml_ht_insert(l, f, 2 * nkeys)) != NULL)
		l->nscratch--; /* duplicate: not kept */
	return k;
}

static int yaml_cmp_key(const void *a, const void *b)
{
	const struct node *x = *(struct node *const *)a, *y = *(struct node *const *)b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->str, y->str, n);

	if (c != 0)
		return c;
	return (x->len > y->len) - (x->len < y->len);
}

static void yaml_error(struct yaml_load *l, const yaml_mark_t *m, const char *msg)
{
	diag_error_at(l->d, l->file, (int)m->line + 1 + l->line0, (int)m->column + 1, "%s", msg);
	l->failed = true;
}

static struct node *yaml_node_new(struct yaml_load *l, enum node_type t, const yaml_mark_t *m)
{
	struct node *n;

	if (l->slab_left == 0) {
		l->slab = pool_calloc(l->tp, YAML_SLAB, sizeof(*l->slab));
		l->slab_left = YAML_SLAB;
	}
	n = l->slab++;
	l->slab_left--;
	n->type = t;
	n->line = (int)m->line + 1 + l->line0;
	n->col = (int)m->column + 1;
	n->ord = l->ord++;
	n->doc = l->doc;
	n->index = -1;
	return n;
}

/* Link a new node into the open container (or make it the document root).  Returns false
 * on a fatal error (already reported). */
static bool yaml_attach(struct yaml_load *l, struct node *n, const yaml_mark_t *m)
{
	struct yaml_frame *f;
	struct node *first;

	if (l->depth == 0) {
		l->doc->root = n;
		return true;
	}
	f = &l->stack[l->depth - 1];
	n->parent = f->node;
	if (f->node->type == NODE_SEQ) {
		n->index = (int)(l->nscratch - f->base);
		yaml_push(l, n);
		return true;
	}
	if (f->key != NULL) {
		/* A value. */
		n->key = f->key->str;
		if (!f->drop)
			yaml_push(l, n);
		f->key = NULL;
		f->drop = false;
		return true;
	}
	if (n->type != NODE_SCALAR) {
		yaml_error(l, m, "map keys must be strings");
		return false;
	}
	n->key = n->str;
	f->key = n;
	if ((first = yaml_find_dup(l, f, n)) != NULL) {
		diag_error_at(l->d, l->file, n->line, n->col,
			      "duplicate key \"%s\" (first at %d:%d)", n->str, first->line,
			      first->col);
		l->failed = true;
		f->drop = true;
	} else if (f->ht == NULL) {
		yaml_push(l, n); /* hashed maps pushed it in yaml_find_dup() */
	}
	return true;
}

/* "tag:yaml.org,2002:binary" is written "!!binary" in the file: say it that way. */
static void yaml_bad_tag(struct yaml_load *l, const struct node *n, const char *tag)
{
	if (strncmp(tag, YAML_TAG_PREFIX, strlen(YAML_TAG_PREFIX)) == 0)
		diag_error_at(l->d, l->file, n->line, n->col, "unsupported tag \"!!%s\"",
			      tag + strlen(YAML_TAG_PREFIX));
	else
		diag_error_at(l->d, l->file, n->line, n->col, "unsupported tag \"%s\"", tag);
	l->failed = true;
}

/* Tags: the standard ones say how to read a scalar; anything else is refused. */
static void yaml_scalar_tag(struct yaml_load *l, const yaml_event_t *ev, struct node *n)
{
	const char *tag = (const char *)ev->data.scalar.tag;
	const char *t;

	if (tag == NULL)
		return;
	/* `!` and `!!str` force a string, even for `null` or `80`. */
	if (strcmp(tag, "!") == 0) {
		n->type = NODE_SCALAR;
		n->quoted = true;
		return;
	}
	if (strncmp(tag, YAML_TAG_PREFIX, strlen(YAML_TAG_PREFIX)) == 0) {
		t = tag + strlen(YAML_TAG_PREFIX);
		if (strcmp(t, "str") == 0) {
			n->type = NODE_SCALAR;
			n->quoted = true;
			return;
		}
		if (strcmp(t, "null") == 0) {
			n->type = NODE_NULL;
			return;
		}
		/* `!!int "80"`: the value is meant as a number, whatever its quoting. */
		if (strcmp(t, "int") == 0 || strcmp(t, "float") == 0 || strcmp(t, "bool") == 0) {
			n->type = NODE_SCALAR;
			n->quoted = false;
			return;
		}
	}
	yaml_bad_tag(l, n, tag); /* then read as a string, keep going */
}

static void yaml_container_tag(struct yaml_load *l, const char *tag, const char *want,
			       const struct node *n)
{
	if (tag == NULL || strcmp(tag, "!") == 0)
		return;
	if (strncmp(tag, YAML_TAG_PREFIX, strlen(YAML_TAG_PREFIX)) == 0 &&
	    strcmp(tag + strlen(YAML_TAG_PREFIX), want) == 0)
		return;
	yaml_bad_tag(l, n, tag);
}

static const char *yaml_intern(struct yaml_load *l, const char *s, size_t len)
{
	struct yaml_str *e;
	size_t i, mask;

	if (len > YAML_INTERN_MAX)
		return pool_strndup(l->p, s, len);
	if ((l->nstrs + 1) * 2 > l->capstrs) {
		struct yaml_str *old = l->strs;
		size_t oldcap = l->capstrs, j;

		l->capstrs = oldcap ? oldcap * 2 : 256;
		l->strs = yaml_xrealloc(NULL, l->capstrs, sizeof(*l->strs));
		memset(l->strs, 0, l->capstrs * sizeof(*l->strs));
		for (j = 0; j < oldcap; j++) {
			if (old[j].s == NULL)
				continue;
			i = yaml_hash(old[j].s, old[j].len) & (l->capstrs - 1);
			while (l->strs[i].s != NULL)
				i = (i + 1) & (l->capstrs - 1);
			l->strs[i] = old[j];
		}
		free(old);
	}
	mask = l->capstrs - 1;
	for (i = yaml_hash(s, len) & mask;; i = (i + 1) & mask) {
		e = &l->strs[i];
		if (e->s == NULL)
			break;
		if (e->len == len && memcmp(e->s, s, len) == 0)
			return e->s;
	}
	e->s = pool_strndup(l->p, s, len);
	e->len = len;
	l->nstrs++;
	return e->s;
}

static bool yaml_is_null(const char *s, size_t len)
{
	return len == 0 || (len == 1 && s[0] == '~') ||
	       (len == 4 && (memcmp(s, "null", 4) == 0 || memcmp(s, "Null", 4) == 0 ||
			     memcmp(s, "NULL", 4) == 0));
}

static bool yaml_scalar(struct yaml_load *l, const yaml_event_t *ev)
{
	const char *s = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	bool is_key;
	struct node *n;

	is_key = l->depth > 0 && l->stack[l->depth - 1].node->type == NODE_MAP &&
		 l->stack[l->depth - 1].key == NULL;
	n = yaml_node_new(l, NODE_SCALAR, &ev->start_mark);
	n->str = yaml_intern(l, s, len);
	n->len = len;
	n->quoted = !plain;
	switch (ev->data.scalar.style) {
	case YAML_SINGLE_QUOTED_SCALAR_STYLE:
		n->style = '\'';
		break;
	case YAML_DOUBLE_QUOTED_SCALAR_STYLE:
		n->style = '"';
		break;
	case YAML_LITERAL_SCALAR_STYLE:
		n->style = '|';
		break;
	case YAML_FOLDED_SCALAR_STYLE:
		n->style = '>';
		break;
	default:
		break;
	}
	/* A key is always a name: `null: x` has the key "null". */
	if (!is_key) {
		if (plain && yaml_is_null(s, len))
			n->type = NODE_NULL;
		yaml_scalar_tag(l, ev, n);
		if (n->type == NODE_NULL) {
			n->str = NULL;
			n->len = 0;
			n->quoted = false;
		}
	}
	return yaml_attach(l, n, &ev->start_mark);
}

static bool yaml_start(struct yaml_load *l, const yaml_event_t *ev, enum node_type t)
{
	struct yaml_frame *f;
	struct node *n;
	const char *tag;

	if (l->depth == YAML_MAX_DEPTH) {
		yaml_error(l, &ev->start_mark, "nesting deeper than 64 levels");
		return false;
	}
	n = yaml_node_new(l, t, &ev->start_mark);
	if (t == NODE_MAP)
		tag = (const char *)ev->data.mapping_start.tag;
	else
		tag = (const char *)ev->data.sequence_start.tag;
	yaml_container_tag(l, tag, t == NODE_MAP ? "map" : "seq", n);
	if (!yaml_attach(l, n, &ev->start_mark))
		return false;
	f = &l->stack[l->depth++];
	memset(f, 0, sizeof(*f));
	f->node = n;
	f->base = l->nscratch;
	return true;
}

static void yaml_end(struct yaml_load *l)
{
	struct yaml_frame *f = &l->stack[--l->depth];
	struct node *n = f->node;
	struct node **c = l->scratch + f->base;
	size_t cnt = l->nscratch - f->base, i;

	if (n->type == NODE_SEQ) {
		n->n = cnt;
		n->vals = pool_calloc(l->tp, cnt, sizeof(*n->vals));
		memcpy(n->vals, c, cnt * sizeof(*c));
	} else {
		n->n = cnt / 2;
		n->keys = pool_calloc(l->tp, 2 * n->n, sizeof(*n->keys));
		n->vals = n->keys + n->n;
		for (i = 0; i < n->n; i++) {
			n->keys[i] = c[2 * i];
			n->vals[i] = c[2 * i + 1];
		}
		if (n->n > YAML_SMALL_MAP) {
			/* Keys are unique (duplicates were dropped): any sort is stable. */
			n->sorted = pool_calloc(l->tp, 2 * n->n, sizeof(*n->sorted));
			memcpy(n->sorted, c, 2 * n->n * sizeof(*c));
			qsort(n->sorted, n->n, 2 * sizeof(*n->sorted), yaml_cmp_key);
		}
	}
	free(f->ht);
	f->ht = NULL;
	l->nscratch = f->base;
}

/* Byte offset of the start of 0-based line `line` (or the end of the buffer): lines are asked
 * for in increasing order but for a step back of one, so a cursor walks the buffer once. */
static size_t yaml_line_off(struct yaml_load *l, int line)
{
	const char *p, *nl;
	size_t av;

	/* A document ending at a `---` line starts the next one on that same line. */
	while (l->cur_line > line && l->cur_off > 0) {
		l->cur_off--; /* onto the previous line's '\n' */
		while (l->cur_off > 0 && (p = yaml_at(l, l->cur_off - 1, true, &av)) != NULL &&
		       *p != '\n')
			l->cur_off--;
		l->cur_line--;
	}
	while (l->cur_line < line) {
		if ((p = yaml_at(l, l->cur_off, false, &av)) == NULL) {
			l->cur_line = line; /* the end of the file */
			break;
		}
		if ((nl = memchr(p, '\n', av)) == NULL) {
			l->cur_off += av;
			continue;
		}
		l->cur_off += (size_t)(nl - p) + 1;
		l->cur_line++;
	}
	return l->cur_off;
}

/* Move the diagnostics YAML added since the last document was handed out before that
 * document's own: node_load_file reports every YAML error of a file before decoding. */
static void yaml_hoist(struct yaml_load *l)
{
	struct diag *d = l->d;
	size_t cnt, at = l->diag0 + l->nparse;
	struct diag_entry *tmp;

	if (d == NULL || d->n <= l->mark) {
		l->mark = d != NULL ? d->n : 0;
		return;
	}
	cnt = d->n - l->mark;
	if (at < l->mark) {
		tmp = yaml_xrealloc(NULL, cnt, sizeof(*tmp));
		memcpy(tmp, d->v + l->mark, cnt * sizeof(*tmp));
		memmove(d->v + at + cnt, d->v + at, (l->mark - at) * sizeof(*tmp));
		memcpy(d->v + at, tmp, cnt * sizeof(*tmp));
		free(tmp);
	}
	l->nparse += cnt;
	l->mark = d->n;
}

static struct node *yaml_copy(struct pool *p, const struct node *n, struct node *parent)
{
	struct node *c = pool_alloc(p, sizeof(*c));
	size_t i;

	*c = *n;
	c->parent = parent;
	if (n->type == NODE_SEQ) {
		c->vals = pool_calloc(p, n->n, sizeof(*c->vals));
		for (i = 0; i < n->n; i++)
			c->vals[i] = yaml_copy(p, n->vals[i], c);
	} else if (n->type == NODE_MAP) {
		c->keys = pool_calloc(p, 2 * n->n, sizeof(*c->keys));
		c->vals = c->keys + n->n;
		for (i = 0; i < n->n; i++) {
			c->keys[i] = yaml_copy(p, n->keys[i], c);
			c->vals[i] = yaml_copy(p, n->vals[i], c);
		}
		if (n->sorted != NULL) {
			c->sorted = pool_calloc(p, 2 * n->n, sizeof(*c->sorted));
			for (i = 0; i < n->n; i++) {
				c->sorted[2 * i] = c->keys[i];
				c->sorted[2 * i + 1] = c->vals[i];
			}
			qsort(c->sorted, n->n, 2 * sizeof(*c->sorted), yaml_cmp_key);
		}
	}
	return c;
}

void node_doc_keep(struct pool *p, struct node_doc *doc)
{
	if (doc->rb == NULL || doc->root == NULL)
		return; /* kept already */
	doc->root = yaml_copy(p, doc->root, NULL);
	doc->rb = NULL;
}

/* node_load_file_each: hand the document out, then drop its tree unless fn kept it. */
static void yaml_doc_out(struct yaml_load *l, struct node_doc *doc)
{
	yaml_hoist(l);
	doc->rb = l->rb;
	l->fn(l->arg, doc);
	if (doc->rb != NULL)
		doc->root = NULL;
	l->mark = l->d != NULL ? l->d->n : 0;
}

static void yaml_doc_end(struct yaml_load *l, const yaml_event_t *ev)
{
	struct node_doc *doc = l->doc;

	l->doc = NULL;
	if (doc == NULL || doc->root == NULL || doc->root->type == NODE_NULL)
		goto out; /* empty document: `---` with nothing after it, or only comments */
	doc->end = yaml_line_off(l, (int)ev->end_mark.line + 1);
	doc->hash = yaml_hash_range(l, doc->off, doc->end);
	if (l->fn != NULL) {
		doc->index = (int)l->ndocs++;
		yaml_doc_out(l, doc);
		goto out;
	}
	if (l->ndocs == l->capdocs) {
		size_t cap = l->capdocs ? l->capdocs * 2 : 8;

		l->docs = pool_grow(l->p, l->docs, l->ndocs, cap, sizeof(*l->docs));
		l->capdocs = cap;
	}
	doc->index = (int)l->ndocs;
	l->docs[l->ndocs++] = doc;
out:
	if (l->tp != l->p) {
		pool_reset(l->tp);
		l->slab_left = 0; /* the slab was in it */
	}
}

/* Position of a byte offset, for reader errors (invalid UTF-8, control characters) that
 * libyaml reports by offset only. */
static void yaml_offset_pos(struct yaml_load *l, size_t off, int *line, int *col)
{
	const char *p;
	size_t i = 0, k, av;

	*line = 1;
	*col = 1;
	while (i < off && (p = yaml_at(l, i, false, &av)) != NULL) {
		for (k = 0; k < av && i < off; k++, i++) {
			if (p[k] == '\n') {
				(*line)++;
				*col = 1;
			} else if (((unsigned char)p[k] & 0xc0) != 0x80) {
				(*col)++;
			}
		}
	}
}

static void yaml_parser_error(struct yaml_load *l, const yaml_parser_t *yp)
{
	const char *problem = yp->problem ? yp->problem : "invalid YAML";
	int line, col;

	l->failed = true;
	if (l->read_errno != 0) {
		diag_error_at(l->d, l->file, 0, 0, "cannot read: %s", strerror(l->read_errno));
		return;
	}
	if (l->too_big) {
		diag_error_at(l->d, l->file, 0, 0, "file too large (more than 64 MiB)");
		return;
	}
	switch (yp->error) {
	case YAML_MEMORY_ERROR:
		diag_error_at(l->d, l->file, 0, 0, "out of memory while parsing YAML");
		return;
	case YAML_READER_ERROR:
		yaml_offset_pos(l, yp->problem_offset, &line, &col);
		line += l->line0;
		if (yp->problem_value != -1)
			diag_error_at(l->d, l->file, line, col, "%s (byte 0x%02x)", problem,
				      (unsigned)yp->problem_value & 0xff);
		else
			diag_error_at(l->d, l->file, line, col, "%s", problem);
		return;
	default:
		break;
	}
	line = (int)yp->problem_mark.line + 1 + l->line0;
	col = (int)yp->problem_mark.column + 1;
	if (yp->context != NULL)
		diag_error_at(l->d, l->file, line, col, "%s (%s at %d:%d)", problem, yp->context,
			      (int)yp->context_mark.line + 1 + l->line0,
			      (int)yp->context_mark.column + 1);
	else
		diag_error_at(l->d, l->file, line, col, "%s", problem);
}

/* Handle one event; false stops the load. */
static bool yaml_event(struct yaml_load *l, const yaml_event_t *ev)
{
	const yaml_char_t *anchor = NULL;

	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		anchor = ev->data.scalar.anchor;
		break;
	case YAML_SEQUENCE_START_EVENT:
		anchor = ev->data.sequence_start.anchor;
		break;
	case YAML_MAPPING_START_EVENT:
		anchor = ev->data.mapping_start.anchor;
		break;
	case YAML_ALIAS_EVENT:
		anchor = ev->data.alias.anchor;
		break;
	default:
		break;
	}
	if (anchor != NULL) {
		yaml_error(l, &ev->start_mark, "anchors and aliases are not supported");
		return false;
	}
	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		l->doc = pool_alloc(l->p, sizeof(*l->doc));
		l->doc->file = l->file;
		l->doc->line0 = (int)ev->start_mark.line;
		l->doc->off = yaml_line_off(l, l->doc->line0);
		l->doc->line0 += l->line0;
		l->ord = 0;
		return true;
	case YAML_DOCUMENT_END_EVENT:
		yaml_doc_end(l, ev);
		return true;
	case YAML_SCALAR_EVENT:
		return yaml_scalar(l, ev);
	case YAML_SEQUENCE_START_EVENT:
		return yaml_start(l, ev, NODE_SEQ);
	case YAML_MAPPING_START_EVENT:
		return yaml_start(l, ev, NODE_MAP);
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		yaml_end(l);
		return true;
	default:
		return true;
	}
}

/* libyaml's input when streaming a file: plain reads, bounded. */
static int yaml_read_handler(void *data, unsigned char *buffer, size_t size, size_t *size_read)
{
	struct yaml_load *l = data;
	ssize_t r;

	do
		r = read(l->fd, buffer, size);
	while (r == -1 && errno == EINTR);
	if (r == -1) {
		l->read_errno = errno;
		return 0;
	}
	if (l->nread + (size_t)r > YAML_MAX_BYTES) {
		l->too_big = true;
		return 0;
	}
	l->nread += (size_t)r;
	*size_read = (size_t)r;
	return 1;
}

/* Parse l->buf into l->docs (or hand documents to l->fn); -1 when something was reported. */
static int yaml_run(struct yaml_load *l)
{
	yaml_parser_t yp;
	yaml_event_t ev;
	bool done = false;

	if (l->len > YAML_MAX_BYTES) {
		diag_error_at(l->d, l->file, 0, 0, "file too large (%zu bytes; limit 64 MiB)",
			      l->len);
		return -1;
	}
	if (!yaml_parser_initialize(&yp)) {
		diag_error_at(l->d, l->file, 0, 0, "out of memory while parsing YAML");
		return -1;
	}
	if (l->buf != NULL)
		yaml_parser_set_input_string(&yp, (const unsigned char *)l->buf, l->len);
	else
		yaml_parser_set_input(&yp, yaml_read_handler, l);
	/* Allocated up front so an empty container's children (scratch + base) are never
	 * pointer arithmetic on NULL. */
	l->capscratch = 256;
	l->scratch = yaml_xrealloc(NULL, l->capscratch, sizeof(*l->scratch));
	while (!done) {
		if (!yaml_parser_parse(&yp, &ev)) {
			yaml_parser_error(l, &yp);
			break;
		}
		done = ev.type == YAML_STREAM_END_EVENT;
		if (!yaml_event(l, &ev))
			done = true;
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&yp);
	while (l->depth > 0) {
		free(l->stack[l->depth - 1].ht);
		l->depth--;
	}
	free(l->scratch);
	free(l->strs);
	return l->failed ? -1 : 0;
}

static void yaml_init(struct yaml_load *l, struct pool *p, struct diag *d, const char *file,
		      const char *buf, size_t len)
{
	memset(l, 0, sizeof(*l));
	l->p = p;
	l->tp = p;
	l->d = d;
	l->file = pool_strdup(p, file ? file : "<input>");
	l->buf = buf;
	l->len = len;
	l->fd = -1;
}

int node_load_buffer(struct pool *p, struct diag *d, const char *file, const char *buf, size_t len,
		     struct node_doc ***docs, size_t *ndocs)
{
	struct yaml_load l;
	int rc;

	yaml_init(&l, p, d, file, buf, len);
	rc = yaml_run(&l);
	*docs = l.docs;
	*ndocs = l.ndocs;
	return rc;
}

/* The whole file in a malloc'd buffer (*buf NULL for an empty file); -1 when reported. */
static int yaml_read_file(struct diag *d, const char *path, char **out, size_t *outlen)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	ssize_t r;
	int fd;

	*out = NULL;
	*outlen = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		diag_error_at(d, path, 0, 0, "cannot read: %s", strerror(errno));
		return -1;
	}
	/* Read to EOF rather than trusting st_size: the file may change under us, and
	 * special files report 0.  One byte past the limit is enough to refuse it. */
	for (;;) {
		if (len == cap) {
			if (cap > YAML_MAX_BYTES)
				break;
			cap = cap ? cap * 2 : 64 * 1024;
			if (cap > (size_t)YAML_MAX_BYTES + 1)
				cap = (size_t)YAML_MAX_BYTES + 1;
			buf = yaml_xrealloc(buf, cap, 1);
		}
		r = read(fd, buf + len, cap - len);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			int e = errno;

			close(fd);
			free(buf);
			diag_error_at(d, path, 0, 0, "cannot read: %s", strerror(e));
			return -1;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	if (len > YAML_MAX_BYTES) {
		free(buf);
		diag_error_at(d, path, 0, 0, "file too large (more than 64 MiB)");
		return -1;
	}
	*out = buf;
	*outlen = len;
	return 0;
}

int node_load_file(struct pool *p, struct diag *d, const char *path, struct node_doc ***docs,
		   size_t *ndocs)
{
	char *buf;
	size_t len;
	int rc;

	*docs = NULL;
	*ndocs = 0;
	if (yaml_read_file(d, path, &buf, &len) == -1)
		return -1;
	rc = node_load_buffer(p, d, path, buf ? buf : "", len, docs, ndocs);
	free(buf);
	return rc;
}

int node_load_file_each(struct pool *p, struct diag *d, const char *path, struct node_rebuild *rb,
			void (*fn)(void *arg, struct node_doc *doc), void *arg)
{
	struct yaml_load l;
	struct stat st;
	int fd, rc;

	/* The file is not held in memory: libyaml reads it as it parses. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		diag_error_at(d, path, 0, 0, "cannot read: %s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > YAML_MAX_BYTES) {
		close(fd);
		diag_error_at(d, path, 0, 0, "file too large (more than 64 MiB)");
		return -1;
	}
	yaml_init(&l, p, d, path, NULL, 0);
	l.fd = fd;
	l.win = yaml_xrealloc(NULL, YAML_WINDOW, 1);
	l.tp = pool_new();
	l.fn = fn;
	l.arg = arg;
	l.rb = rb;
	l.diag0 = l.mark = d != NULL ? d->n : 0;
	rc = yaml_run(&l);
	yaml_hoist(&l);
	pool_free(l.tp);
	free(l.win);
	close(fd);
	return rc;
}

/* ---- dropped documents, rebuilt for reports ---- */

static void yaml_rebuild_free(void *arg)
{
	node_rebuild_release(arg);
}

struct node_rebuild *node_rebuild_new(struct pool *p)
{
	struct node_rebuild *rb = pool_alloc(p, sizeof(*rb));

	rb->owner = p;
	pool_on_free(p, yaml_rebuild_free, rb);
	return rb;
}

void node_rebuild_release(struct node_rebuild *rb)
{
	struct yaml_rebuilt *r;

	if (rb == NULL || rb->p == NULL)
		return;
	for (r = rb->docs; r != NULL; r = r->next) {
		r->doc->byord = NULL;
		r->doc->nord = 0;
	}
	rb->docs = NULL;
	pool_free(rb->p);
	rb->p = NULL;
}

struct node *node_ghost(struct pool *p, struct node *n)
{
	struct node *g;

	if (n == NULL || n->type == NODE_GHOST)
		return n;
	/* Only the fields before `parent` exist: node_real() is the way in. */
	g = pool_alloc(p, offsetof(struct node, parent));
	g->type = NODE_GHOST;
	g->line = n->line;
	g->col = n->col;
	g->ord = n->ord;
	g->doc = n->doc;
	return g;
}

static void yaml_index(struct node **byord, uint32_t nord, struct node *n)
{
	size_t i;

	if (n->ord < nord)
		byord[n->ord] = n;
	for (i = 0; i < n->n && (n->type == NODE_MAP || n->type == NODE_SEQ); i++) {
		if (n->type == NODE_MAP)
			yaml_index(byord, nord, n->keys[i]);
		yaml_index(byord, nord, n->vals[i]);
	}
}

static uint32_t yaml_max_ord(const struct node *n)
{
	uint32_t m = n->ord, c;
	size_t i;

	for (i = 0; i < n->n && (n->type == NODE_MAP || n->type == NODE_SEQ); i++) {
		if (n->type == NODE_MAP && (c = yaml_max_ord(n->keys[i])) > m)
			m = c;
		if ((c = yaml_max_ord(n->vals[i])) > m)
			m = c;
	}
	return m;
}

/* Read the document's text again and parse it: false when the file changed or is gone. */
static bool yaml_rebuild(struct node_doc *doc)
{
	struct node_rebuild *rb = doc->rb;
	struct yaml_rebuilt *r;
	struct yaml_load l;
	struct node_doc *nd;
	size_t len = doc->end - doc->off;
	char *buf;
	ssize_t got;
	int fd;

	if ((fd = open(doc->file, O_RDONLY | O_CLOEXEC)) == -1)
		return false;
	buf = yaml_xrealloc(NULL, len + 1, 1);
	got = pread(fd, buf, len, (off_t)doc->off);
	close(fd);
	if (got < 0 || (size_t)got != len || yaml_hash(buf, len) != doc->hash) {
		free(buf);
		return false;
	}
	if (rb->p == NULL)
		rb->p = pool_new();
	yaml_init(&l, rb->p, NULL, NULL, buf, len);
	l.file = doc->file;
	l.line0 = doc->line0;
	(void)yaml_run(&l);
	free(buf);
	if (l.ndocs == 0)
		return false;
	nd = l.docs[0];
	nd->file = doc->file;
	nd->index = doc->index;
	nd->kind = doc->kind;
	nd->ns = doc->ns;
	nd->name = doc->name;
	doc->nord = yaml_max_ord(nd->root) + 1;
	doc->byord = pool_calloc(rb->p, doc->nord, sizeof(*doc->byord));
	yaml_index(doc->byord, doc->nord, nd->root);
	r = pool_alloc(rb->p, sizeof(*r));
	r->doc = doc;
	r->next = rb->docs;
	rb->docs = r;
	return true;
}

static struct node *yaml_find_ord(struct node *n, uint32_t ord)
{
	struct node *f;
	size_t i;

	if (n->ord == ord)
		return n;
	for (i = 0; i < n->n && (n->type == NODE_MAP || n->type == NODE_SEQ); i++) {
		if (n->type == NODE_MAP && (f = yaml_find_ord(n->keys[i], ord)) != NULL)
			return f;
		if ((f = yaml_find_ord(n->vals[i], ord)) != NULL)
			return f;
	}
	return NULL;
}

struct node *node_rebuilt(const struct node *n)
{
	struct node_doc *doc = n->doc;
	struct node *r = NULL, *stub;
	struct pool *p;

	if (doc->root != NULL) {
		r = yaml_find_ord(doc->root, n->ord);
	} else if (doc->rb != NULL) {
		if (doc->byord == NULL)
			(void)yaml_rebuild(doc);
		if (n->ord < doc->nord)
			r = doc->byord[n->ord];
	}
	/* The same node, or the text changed under us. */
	if (r != NULL && r->line == n->line && r->col == n->col)
		return r;
	/* A position without a field path is all that is left to report. */
	p = doc->rb != NULL ? doc->rb->p : NULL;
	if (p == NULL && doc->rb != NULL)
		p = doc->rb->p = pool_new();
	if (p == NULL)
		abort(); /* a ghost of a kept document is always found */
	stub = pool_alloc(p, sizeof(*stub));
	stub->type = NODE_NULL;
	stub->line = n->line;
	stub->col = n->col;
	stub->ord = n->ord;
	stub->doc = doc;
	stub->index = -1;
	return stub;
}
