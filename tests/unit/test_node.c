#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "pool.h"
#include "config/diag.h"
#include "config/node.h"

struct fx {
	struct pool *p;
	struct diag d;
	struct node_doc **docs;
	size_t ndocs;
	int rc;
};

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->p = pool_new();
	diag_init(&f->d);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	diag_fini(&f->d);
	pool_free(f->p);
	free(f);
	return 0;
}

static void fx_load(struct fx *f, const char *yaml)
{
	f->rc = node_load_buffer(f->p, &f->d, "t.yaml", yaml, strlen(yaml), &f->docs, &f->ndocs);
}

/* Loads yaml, expects success and one document; returns its root. */
static struct node *fx_root(struct fx *f, const char *yaml)
{
	fx_load(f, yaml);
	assert_int_equal(f->rc, 0);
	assert_int_equal(f->d.n, 0);
	assert_int_equal(f->ndocs, 1);
	return f->docs[0]->root;
}

static const char *fx_msg(struct fx *f, size_t i)
{
	assert_true(i < f->d.n);
	return f->d.v[i].text;
}

static void fx_expect_one(struct fx *f, const char *text)
{
	assert_int_equal(f->d.n, 1);
	assert_string_equal(f->d.v[0].text, text);
}

/* Resets the collected diagnostics between checks in one test. */
static void fx_clear(struct fx *f)
{
	diag_fini(&f->d);
	diag_init(&f->d);
}

/* ---- loading and positions ---- */

static const char multi[] = "---\n"
			    "apiVersion: v1\n"
			    "kind: VirtualService\n"
			    "spec:\n"
			    "  hosts:\n"
			    "  - a.example.com\n"
			    "  - \"b\"\n"
			    "  http:\n"
			    "  - match:\n"
			    "    - uri: {prefix: /x}\n"
			    "    - uri:\n"
			    "        exact: /y\n"
			    "---\n"
			    "# only a comment\n"
			    "---\n"
			    "- 1\n"
			    "- [2, 3]\n"
			    "---\n";

static void test_positions(void **state)
{
	struct fx *f = *state;
	struct node *root, *spec, *hosts, *http, *match, *uri, *n;

	fx_load(f, multi);
	assert_int_equal(f->rc, 0);
	assert_int_equal(f->d.n, 0);
	assert_int_equal(f->ndocs, 2); /* the comment-only and the trailing `---` are skipped */
	assert_int_equal(f->docs[0]->index, 0);
	assert_int_equal(f->docs[1]->index, 1);
	assert_string_equal(f->docs[0]->file, "t.yaml");
	assert_null(f->docs[0]->kind);

	root = f->docs[0]->root;
	assert_int_equal(root->type, NODE_MAP);
	assert_int_equal(root->line, 2);
	assert_int_equal(root->col, 1);
	assert_null(root->parent);
	assert_int_equal(root->index, -1);
	assert_int_equal(root->n, 3);
	assert_string_equal(root->keys[1]->str, "kind");
	assert_int_equal(root->keys[1]->line, 3);
	assert_int_equal(root->keys[1]->col, 1);
	assert_int_equal(root->vals[1]->line, 3);
	assert_int_equal(root->vals[1]->col, 7);
	assert_ptr_equal(root->vals[1]->doc, f->docs[0]);

	spec = node_get(root, "spec");
	assert_non_null(spec);
	assert_int_equal(spec->type, NODE_MAP);
	assert_int_equal(spec->line, 5);
	assert_int_equal(spec->col, 3);
	assert_string_equal(spec->key, "spec");
	assert_ptr_equal(spec->parent, root);

	hosts = node_get(spec, "hosts");
	assert_int_equal(hosts->type, NODE_SEQ);
	assert_int_equal(hosts->n, 2);
	assert_int_equal(hosts->line, 6);
	assert_int_equal(hosts->col, 3);
	n = hosts->vals[0];
	assert_int_equal(n->type, NODE_SCALAR);
	assert_string_equal(n->str, "a.example.com");
	assert_int_equal(n->len, 13);
	assert_false(n->quoted);
	assert_int_equal(n->index, 0);
	assert_null(n->key);
	assert_ptr_equal(n->parent, hosts);
	assert_int_equal(n->line, 6);
	assert_int_equal(n->col, 5);
	n = hosts->vals[1];
	assert_true(n->quoted);
	assert_int_equal(n->index, 1);
	assert_int_equal(n->line, 7);
	assert_int_equal(n->col, 5); /* the opening quote */

	http = node_get(spec, "http");
	assert_int_equal(http->vals[0]->type, NODE_MAP);
	assert_int_equal(http->vals[0]->line, 9);
	assert_int_equal(http->vals[0]->col, 5);
	match = node_get(http->vals[0], "match");
	assert_int_equal(match->n, 2);
	uri = node_get(match->vals[0], "uri");
	assert_int_equal(uri->type, NODE_MAP); /* flow map: at the brace */
	assert_int_equal(uri->line, 10);
	assert_int_equal(uri->col, 12);
	n = node_get(uri, "prefix");
	assert_string_equal(n->str, "/x");
	assert_int_equal(n->line, 10);
	assert_int_equal(n->col, 21);
	uri = node_get(match->vals[1], "uri");
	assert_int_equal(uri->line, 12);
	assert_int_equal(uri->col, 9);

	root = f->docs[1]->root;
	assert_int_equal(root->type, NODE_SEQ);
	assert_int_equal(root->line, 16);
	assert_int_equal(root->vals[1]->type, NODE_SEQ);
	assert_int_equal(root->vals[1]->vals[1]->line, 17);
	assert_int_equal(root->vals[1]->vals[1]->col, 7);
	assert_ptr_equal(root->vals[1]->vals[1]->doc, f->docs[1]);
}

static void test_nulls_and_styles(void **state)
{
	struct fx *f = *state;
	struct node *r = fx_root(f, "a: null\n"
				    "b: ~\n"
				    "c: Null\n"
				    "d: NULL\n"
				    "e:\n"
				    "f: \"null\"\n"
				    "g: ''\n"
				    "h: nul\n"
				    "i: |\n"
				    "  line1\n"
				    "  line2\n"
				    "j: !!str null\n"
				    "k: !!str 80\n"
				    "l: !!int \"80\"\n"
				    "m: >-\n"
				    "  folded\n"
				    "  text\n"
				    "null: 1\n");
	const char *nulls[] = {"a", "b", "c", "d", "e"};
	size_t i;

	for (i = 0; i < 5; i++) {
		struct node *n = node_get(r, nulls[i]);

		assert_non_null(n);
		assert_int_equal(n->type, NODE_NULL);
		assert_null(n->str);
	}
	assert_int_equal(node_get(r, "e")->line, 5);
	assert_int_equal(node_get(r, "e")->col, 3); /* just after the colon */
	assert_int_equal(node_get(r, "f")->type, NODE_SCALAR);
	assert_true(node_get(r, "f")->quoted);
	assert_int_equal(node_get(r, "g")->type, NODE_SCALAR);
	assert_int_equal(node_get(r, "g")->len, 0);
	assert_false(node_get(r, "h")->quoted);
	assert_string_equal(node_get(r, "i")->str, "line1\nline2\n");
	assert_true(node_get(r, "i")->quoted);
	assert_int_equal(node_get(r, "j")->type, NODE_SCALAR);
	assert_string_equal(node_get(r, "j")->str, "null");
	assert_true(node_get(r, "j")->quoted);
	assert_true(node_get(r, "k")->quoted);
	assert_false(node_get(r, "l")->quoted);
	assert_string_equal(node_get(r, "m")->str, "folded text");
	assert_true(node_get(r, "m")->quoted);
	/* A key is a name, never null. */
	assert_int_equal(node_get(r, "null")->type, NODE_SCALAR);
}

static void test_empty_inputs(void **state)
{
	struct fx *f = *state;

	fx_load(f, "");
	assert_int_equal(f->rc, 0);
	assert_int_equal(f->ndocs, 0);
	fx_load(f, "---\n---\n# c\n...\n");
	assert_int_equal(f->rc, 0);
	assert_int_equal(f->ndocs, 0);
	fx_load(f, "---\na: 1\n");
	assert_int_equal(f->rc, 0);
	assert_int_equal(f->ndocs, 1);
	assert_int_equal(f->docs[0]->root->line, 2);
	assert_int_equal(f->d.n, 0);
}

static void test_crlf_bom_tabs_unicode(void **state)
{
	struct fx *f = *state;
	struct node *r = fx_root(f, "\xef\xbb\xbf"
				    "a: 1\r\n"
				    "\xc3\xa9t\xc3\xa9: \"\xe2\x82\xac\tx\"\r\n"
				    "b:\t2\r\n");

	assert_string_equal(node_get(r, "\xc3\xa9t\xc3\xa9")->str, "\xe2\x82\xac\tx");
	/* Columns count characters, not bytes. */
	assert_int_equal(node_get(r, "\xc3\xa9t\xc3\xa9")->col, 6);
	assert_int_equal(node_get(r, "b")->line, 3);
	assert_int_equal(node_get(r, "b")->col, 4);
}

static void test_duplicate_keys(void **state)
{
	struct fx *f = *state;
	struct node *b;

	fx_load(f, "a: 1\n"
		   "b:\n"
		   "  x: 1\n"
		   "  x: {y: 2}\n"
		   "a: 3\n");
	assert_int_equal(f->rc, -1);
	assert_int_equal(f->d.n, 2);
	assert_int_equal(f->d.nerrors, 2);
	assert_string_equal(fx_msg(f, 0), "t.yaml:4:3: duplicate key \"x\" (first at 3:3)");
	assert_string_equal(fx_msg(f, 1), "t.yaml:5:1: duplicate key \"a\" (first at 1:1)");
	/* The document is still returned, with the first value of each key. */
	assert_int_equal(f->ndocs, 1);
	assert_int_equal(f->docs[0]->root->n, 2);
	assert_string_equal(node_get(f->docs[0]->root, "a")->str, "1");
	b = node_get(f->docs[0]->root, "b");
	assert_int_equal(b->n, 1);
	assert_string_equal(node_get(b, "x")->str, "1");
	/* Quoting does not make a different key. */
	fx_clear(f);
	fx_load(f, "{\"k\": 1, k: 2}");
	assert_int_equal(f->rc, -1);
	fx_expect_one(f, "t.yaml:1:10: duplicate key \"k\" (first at 1:2)");
}

static void test_duplicate_keys_big_map(void **state)
{
	struct fx *f = *state;
	char buf[4096];
	size_t o = 0;
	int i;

	for (i = 0; i < 40; i++)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "k%d: %d\n", i, i);
	snprintf(buf + o, sizeof(buf) - o, "k7: dup\nk39: dup\n");
	fx_load(f, buf);
	assert_int_equal(f->rc, -1);
	assert_int_equal(f->d.n, 2);
	assert_string_equal(fx_msg(f, 0), "t.yaml:41:1: duplicate key \"k7\" (first at 8:1)");
	assert_string_equal(fx_msg(f, 1), "t.yaml:42:1: duplicate key \"k39\" (first at 40:1)");
	assert_int_equal(f->docs[0]->root->n, 40);
	assert_string_equal(node_get(f->docs[0]->root, "k7")->str, "7");
}

static void test_big_map_lookup(void **state)
{
	struct fx *f = *state;
	size_t cap = 10000 * 24, o = 0, i;
	char *buf = malloc(cap), key[32];
	struct node *r;

	assert_non_null(buf);
	for (i = 0; i < 10000; i++)
		o += (size_t)snprintf(buf + o, cap - o, "key%zu: %zu\n", i, i);
	r = fx_root(f, buf);
	free(buf);
	assert_int_equal(r->n, 10000);
	assert_string_equal(r->keys[5000]->str, "key5000"); /* file order is kept */
	for (i = 0; i < 10000; i += 3) {
		snprintf(key, sizeof(key), "key%zu", i);
		assert_non_null(node_get(r, key));
		assert_int_equal(node_get(r, key)->line, (int)i + 1);
	}
	assert_null(node_get(r, "key10000"));
	assert_null(node_get(r, "ke"));
	assert_null(node_get(r, ""));
	node_check_unknown(&f->d, r);
	assert_int_equal(f->d.n, 10000 - 3334);
	assert_string_equal(fx_msg(f, 0), "t.yaml:2:1: key1: unknown field \"key1\"");
}

static void test_anchors_refused(void **state)
{
	struct fx *f = *state;

	fx_load(f, "a: 1\n---\nb: &x 1\nc: *x\n");
	assert_int_equal(f->rc, -1);
	fx_expect_one(f, "t.yaml:3:4: anchors and aliases are not supported");
	assert_int_equal(f->ndocs, 1); /* the document before the error */
	fx_clear(f);
	fx_load(f, "- *x\n");
	assert_int_equal(f->rc, -1);
	fx_expect_one(f, "t.yaml:1:3: anchors and aliases are not supported");
	fx_clear(f);
	fx_load(f, "a: &m {x: 1}\n");
	fx_expect_one(f, "t.yaml:1:4: anchors and aliases are not supported");
}

static void test_bad_keys_and_tags(void **state)
{
	struct fx *f = *state;

	fx_load(f, "? [a, b]\n: 1\n");
	assert_int_equal(f->rc, -1);
	fx_expect_one(f, "t.yaml:1:3: map keys must be strings");
	fx_clear(f);
	fx_load(f, "a: !foo x\nb: !!binary aGk=\nc: !!seq {}\n");
	assert_int_equal(f->rc, -1);
	assert_int_equal(f->d.n, 3);
	assert_string_equal(fx_msg(f, 0), "t.yaml:1:4: unsupported tag \"!foo\"");
	assert_string_equal(fx_msg(f, 1), "t.yaml:2:4: unsupported tag \"!!binary\"");
	assert_string_equal(fx_msg(f, 2), "t.yaml:3:4: unsupported tag \"!!seq\"");
	fx_clear(f);
	fx_load(f, "a: !!map {x: !!seq [!!str 1, !!float 2.5, !!bool true, !!null ~]}\n");
	assert_int_equal(f->rc, 0);
	assert_int_equal(f->d.n, 0);
}

static void test_syntax_errors(void **state)
{
	struct fx *f = *state;

	fx_load(f, "a: 1\n---\nb: [1, 2\nc: 3\n");
	assert_int_equal(f->rc, -1);
	fx_expect_one(f, "t.yaml:4:2: did not find expected ',' or ']' "
			 "(while parsing a flow sequence at 3:4)");
	assert_int_equal(f->ndocs, 1);
	assert_string_equal(node_get(f->docs[0]->root, "a")->str, "1");
	fx_clear(f);
	fx_load(f, "a: 1\n b: 2\n");
	fx_expect_one(f, "t.yaml:2:3: mapping values are not allowed in this context");
	assert_int_equal(f->ndocs, 0);
	fx_clear(f);
	fx_load(f, "a:\n  b: 1\n c: 2\n");
	fx_expect_one(f, "t.yaml:3:2: did not find expected key (while parsing a block mapping "
			 "at 1:1)");
	fx_clear(f);
	fx_load(f, "a: x\nb: \"\xc3\xa9\xff\"\n");
	fx_expect_one(f, "t.yaml:2:6: invalid leading UTF-8 octet (byte 0xff)");
	fx_clear(f);
	fx_load(f, "a: \"unterminated\n");
	assert_int_equal(f->rc, -1);
	assert_int_equal(f->d.n, 1);
	assert_non_null(strstr(fx_msg(f, 0), "t.yaml:2:1: found unexpected end of stream"));
}

static void test_depth_limit(void **state)
{
	struct fx *f = *state;
	char buf[300];

	memset(buf, 0, sizeof(buf));
	memset(buf, '[', 64);
	memset(buf + 64, ']', 64);
	fx_load(f, buf);
	assert_int_equal(f->rc, 0);
	assert_int_equal(f->d.n, 0);
	memset(buf, 0, sizeof(buf));
	memset(buf, '[', 65);
	memset(buf + 65, ']', 65);
	fx_load(f, buf);
	assert_int_equal(f->rc, -1);
	fx_expect_one(f, "t.yaml:1:65: nesting deeper than 64 levels");
}

static void test_size_limit(void **state)
{
	struct fx *f = *state;
	size_t len = 64u * 1024 * 1024 + 1;
	/* Never touched: the size is refused before any byte is read. */
	char *big = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(big != MAP_FAILED);
	f->rc = node_load_buffer(f->p, &f->d, "big.yaml", big, len, &f->docs, &f->ndocs);
	munmap(big, len);
	assert_int_equal(f->rc, -1);
	fx_expect_one(f, "big.yaml: file too large (67108865 bytes; limit 64 MiB)");
}

/* The parser must not read past len: put the input right before an unmapped page. */
static void test_guard_page(void **state)
{
	struct fx *f = *state;
	static const char yaml[] = "a: [1, {b: c}]\nd: plain";
	long pg = sysconf(_SC_PAGESIZE);
	size_t len = sizeof(yaml) - 1;
	char *m =
	    mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *in;

	assert_true(m != MAP_FAILED);
	assert_int_equal(mprotect(m + pg, (size_t)pg, PROT_NONE), 0);
	in = m + pg - len;
	memcpy(in, yaml, len);
	f->rc = node_load_buffer(f->p, &f->d, "g.yaml", in, len, &f->docs, &f->ndocs);
	assert_int_equal(f->rc, 0);
	assert_string_equal(node_get(f->docs[0]->root, "d")->str, "plain");
	/* Truncated mid-token, too. */
	in = m + pg - 9;
	memcpy(in, "a: [1, {b", 9);
	f->rc = node_load_buffer(f->p, &f->d, "g.yaml", in, 9, &f->docs, &f->ndocs);
	assert_int_equal(f->rc, -1);
	munmap(m, (size_t)pg * 2);
}

static void test_unreadable_file(void **state)
{
	struct fx *f = *state;

	f->rc = node_load_file(f->p, &f->d, "/nonexistent/x.yaml", &f->docs, &f->ndocs);
	assert_int_equal(f->rc, -1);
	assert_int_equal(f->ndocs, 0);
	fx_expect_one(f, "/nonexistent/x.yaml: cannot read: No such file or directory");
	fx_clear(f);
	f->rc = node_load_file(f->p, &f->d, "/", &f->docs, &f->ndocs);
	assert_int_equal(f->rc, -1);
	fx_expect_one(f, "/: cannot read: Is a directory");
}

static void test_load_file(void **state)
{
	struct fx *f = *state;
	char path[] = "/tmp/test_node_XXXXXX";
	int fd = mkstemp(path);
	static const char yaml[] = "kind: Gateway\nspec: {x: 1}\n";

	assert_true(fd >= 0);
	assert_int_equal(write(fd, yaml, sizeof(yaml) - 1), (ssize_t)(sizeof(yaml) - 1));
	close(fd);
	f->rc = node_load_file(f->p, &f->d, path, &f->docs, &f->ndocs);
	unlink(path);
	assert_int_equal(f->rc, 0);
	assert_int_equal(f->ndocs, 1);
	assert_string_equal(f->docs[0]->file, path);
	diag_error(&f->d, node_get(node_get(f->docs[0]->root, "spec"), "x"), "bad");
	assert_int_equal(strncmp(fx_msg(f, 0), path, strlen(path)), 0);
	assert_string_equal(fx_msg(f, 0) + strlen(path), ":2:11: spec.x: bad");
}

/* ---- unknown fields, marking ---- */

static void test_unknown_fields(void **state)
{
	struct fx *f = *state;
	struct node *r = fx_root(f, "spec:\n"
				    "  hosts: [a]\n"
				    "  foo: 1\n"
				    "  http:\n"
				    "  - route: []\n"
				    "    bar: {x: 1}\n"
				    "  labels:\n"
				    "    app.kubernetes.io/name: x\n");
	struct node *spec = node_get(r, "spec"), *http;

	node_check_unknown(&f->d, r);
	assert_int_equal(f->d.n, 0);
	assert_non_null(node_get(spec, "hosts"));
	http = node_get(spec, "http");
	node_check_unknown(&f->d, spec);
	assert_int_equal(f->d.n, 2);
	assert_string_equal(fx_msg(f, 0), "t.yaml:3:3: spec.foo: unknown field \"foo\"");
	assert_string_equal(fx_msg(f, 1), "t.yaml:7:3: spec.labels: unknown field \"labels\"");
	fx_clear(f);
	assert_non_null(node_get(http->vals[0], "route"));
	node_check_unknown(&f->d, http->vals[0]);
	fx_expect_one(f, "t.yaml:6:5: spec.http[0].bar: unknown field \"bar\"");
	/* A key that would read ambiguously after a dot is quoted in the path. */
	fx_clear(f);
	node_check_unknown(&f->d, node_get(spec, "labels"));
	fx_expect_one(f, "t.yaml:8:5: spec.labels[\"app.kubernetes.io/name\"]: unknown field "
			 "\"app.kubernetes.io/name\"");
	/* With the resource known. */
	fx_clear(f);
	f->docs[0]->kind = "VirtualService";
	f->docs[0]->ns = "prod";
	f->docs[0]->name = "reviews";
	node_check_unknown(&f->d, http->vals[0]);
	fx_expect_one(f, "t.yaml:6:5: VirtualService prod/reviews: spec.http[0].bar: unknown "
			 "field \"bar\"");
	/* NULL and non-maps are ignored. */
	node_check_unknown(&f->d, NULL);
	node_check_unknown(&f->d, node_get(spec, "hosts"));
	assert_int_equal(f->d.n, 1);
}

static void test_mark_used(void **state)
{
	struct fx *f = *state;
	struct node *r = fx_root(f, "a: {b: {c: 1}, d: [{e: 1}]}\nf: 2\n");
	struct node *a = r->vals[0];

	node_mark_used(a);
	assert_true(a->used);
	node_check_unknown(&f->d, a);
	node_check_unknown(&f->d, a->vals[0]);
	node_check_unknown(&f->d, a->vals[1]->vals[0]);
	assert_int_equal(f->d.n, 0);
	node_check_unknown(&f->d, r);
	assert_int_equal(f->d.n, 2); /* marking a value does not mark its own key */
	node_mark_used(NULL);
}

static void test_get(void **state)
{
	struct fx *f = *state;
	struct node *r = fx_root(f, "a: 1\nb: [x]\n");

	assert_null(node_get(NULL, "a"));
	assert_null(node_get(r->vals[1], "a")); /* not a map */
	assert_null(node_get(r, "c"));
	assert_false(r->keys[0]->used);
	assert_ptr_equal(node_get(r, "a"), r->vals[0]);
	assert_true(r->keys[0]->used);
	assert_true(r->vals[0]->used);
	assert_null(node_get(node_get(r, "missing"), "x")); /* chains */
}

/* ---- typed getters ---- */

static void test_want(void **state)
{
	struct fx *f = *state;
	struct node *r = fx_root(f, "m: {}\ns: []\nv: x\nn:\n");

	assert_true(node_want_map(&f->d, node_get(r, "m")));
	assert_true(node_want_seq(&f->d, node_get(r, "s")));
	assert_false(node_want_map(&f->d, NULL));
	assert_false(node_want_seq(&f->d, NULL));
	assert_int_equal(f->d.n, 0);
	assert_false(node_want_map(&f->d, node_get(r, "s")));
	assert_false(node_want_map(&f->d, node_get(r, "v")));
	assert_false(node_want_map(&f->d, node_get(r, "n")));
	assert_false(node_want_seq(&f->d, node_get(r, "m")));
	assert_false(node_want_seq(&f->d, node_get(r, "v")));
	assert_int_equal(f->d.n, 5);
	assert_int_equal(f->d.nerrors, 5);
	assert_string_equal(fx_msg(f, 0), "t.yaml:2:4: s: expected a map, got a sequence");
	assert_string_equal(fx_msg(f, 1), "t.yaml:3:4: v: expected a map, got a string");
	assert_string_equal(fx_msg(f, 2), "t.yaml:4:3: n: expected a map, got null");
	assert_string_equal(fx_msg(f, 3), "t.yaml:1:4: m: expected a sequence, got a map");
	assert_string_equal(fx_msg(f, 4), "t.yaml:3:4: v: expected a sequence, got a string");
}

static void test_str(void **state)
{
	struct fx *f = *state;
	struct node *r = fx_root(f, "a: hello\nb: \"80\"\nc: 80\nd: null\ne: [1]\nf: \"x\\0y\"\n");
	const char *s = NULL;

	assert_true(node_str(&f->d, node_get(r, "a"), &s));
	assert_string_equal(s, "hello");
	assert_true(node_str(&f->d, node_get(r, "b"), &s));
	assert_string_equal(s, "80");
	assert_true(node_str(&f->d, node_get(r, "c"), &s));
	assert_string_equal(s, "80");
	assert_false(node_str(&f->d, NULL, &s));
	assert_int_equal(f->d.n, 0);
	s = NULL;
	assert_false(node_str(&f->d, node_get(r, "d"), &s));
	assert_false(node_str(&f->d, node_get(r, "e"), &s));
	assert_false(node_str(&f->d, node_get(r, "f"), &s));
	assert_null(s);
	assert_int_equal(f->d.n, 3);
	assert_string_equal(fx_msg(f, 0), "t.yaml:4:4: d: expected a string, got null");
	assert_string_equal(fx_msg(f, 1), "t.yaml:5:4: e: expected a string, got a sequence");
	assert_string_equal(fx_msg(f, 2), "t.yaml:6:4: f: strings must not contain NUL characters");
}

static void test_int(void **state)
{
	struct fx *f = *state;
	struct node *r = fx_root(f, "v: [80, -5, 0, 65535, 9223372036854775807, "
				    "-9223372036854775808]\n"
				    "bad: [\"80\", 0x50, 1.0, +5, 080, 1_000, '', -, abc, ~, [1], "
				    "9223372036854775808, -9223372036854775809, 70000, -0]\n");
	struct node *v = node_get(r, "v"), *bad = node_get(r, "bad");
	int64_t out = 0;
	static const char *const want[] = {
	    "t.yaml:2:7: bad[0]: expected an integer, got a string",
	    "t.yaml:2:13: bad[1]: expected an integer, got \"0x50\"",
	    "t.yaml:2:19: bad[2]: expected an integer, got \"1.0\"",
	    "t.yaml:2:24: bad[3]: expected an integer, got \"+5\"",
	    "t.yaml:2:28: bad[4]: expected an integer, got \"080\"",
	    "t.yaml:2:33: bad[5]: expected an integer, got \"1_000\"",
	    "t.yaml:2:40: bad[6]: expected an integer, got a string",
	    "t.yaml:2:44: bad[7]: expected an integer, got \"-\"",
	    "t.yaml:2:47: bad[8]: expected an integer, got \"abc\"",
	    "t.yaml:2:52: bad[9]: expected an integer, got null",
	    "t.yaml:2:55: bad[10]: expected an integer, got a sequence",
	    "t.yaml:2:60: bad[11]: must be between 0 and 65535, got 9223372036854775808",
	    "t.yaml:2:81: bad[12]: must be between 0 and 65535, got -9223372036854775809",
	    "t.yaml:2:103: bad[13]: must be between 0 and 65535, got 70000",
	};
	size_t i;

	assert_true(node_int(&f->d, v->vals[0], 1, 65535, &out));
	assert_int_equal(out, 80);
	assert_true(node_int(&f->d, v->vals[1], -10, 10, &out));
	assert_int_equal(out, -5);
	assert_true(node_int(&f->d, v->vals[2], 0, 0, &out));
	assert_int_equal(out, 0);
	assert_true(node_int(&f->d, v->vals[3], 0, 65535, &out));
	assert_int_equal(out, 65535);
	assert_true(node_int(&f->d, v->vals[4], INT64_MIN, INT64_MAX, &out));
	assert_true(out == INT64_MAX);
	assert_true(node_int(&f->d, v->vals[5], INT64_MIN, INT64_MAX, &out));
	assert_true(out == INT64_MIN);
	assert_true(node_int(&f->d, bad->vals[14], 0, 1, &out)); /* -0 is 0 */
	assert_int_equal(out, 0);
	assert_false(node_int(&f->d, NULL, 0, 1, &out));
	assert_int_equal(f->d.n, 0);
	out = 42;
	for (i = 0; i < 14; i++)
		assert_false(node_int(&f->d, bad->vals[i], 0, 65535, &out));
	assert_int_equal(out, 42);
	assert_int_equal(f->d.n, 14);
	for (i = 0; i < 14; i++)
		assert_string_equal(fx_msg(f, i), want[i]);
	fx_clear(f);
	assert_false(node_int(&f->d, v->vals[0], 100, 200, &out));
	fx_expect_one(f, "t.yaml:1:5: v[0]: must be between 100 and 200, got 80");
}

static void test_double(void **state)
{
	struct fx *f = *state;
	struct node *r = fx_root(f, "v: [50, 0.5, -1.25, .5, 1e2, 2.5E-1, 7.]\n"
				    "bad: [\"5\", abc, .inf, 1e, ., 150.5, ~]\n");
	struct node *v = node_get(r, "v"), *bad = node_get(r, "bad");
	double out = 0;
	size_t i;

	assert_true(node_double(&f->d, v->vals[0], 0, 100, &out));
	assert_true(out == 50.0);
	assert_true(node_double(&f->d, v->vals[1], 0, 100, &out));
	assert_true(out == 0.5);
	assert_true(node_double(&f->d, v->vals[2], -2, 100, &out));
	assert_true(out == -1.25);
	assert_true(node_double(&f->d, v->vals[3], 0, 100, &out));
	assert_true(out == 0.5);
	assert_true(node_double(&f->d, v->vals[4], 0, 100, &out));
	assert_true(out == 100.0);
	assert_true(node_double(&f->d, v->vals[5], 0, 100, &out));
	assert_true(out == 0.25);
	assert_true(node_double(&f->d, v->vals[6], 0, 100, &out));
	assert_true(out == 7.0);
	assert_int_equal(f->d.n, 0);
	for (i = 0; i < 7; i++)
		assert_false(node_double(&f->d, bad->vals[i], 0, 100, &out));
	assert_int_equal(f->d.n, 7);
	assert_string_equal(fx_msg(f, 0), "t.yaml:2:7: bad[0]: expected a number, got a string");
	assert_string_equal(fx_msg(f, 1), "t.yaml:2:12: bad[1]: expected a number, got \"abc\"");
	assert_string_equal(fx_msg(f, 2), "t.yaml:2:17: bad[2]: expected a number, got \".inf\"");
	assert_string_equal(fx_msg(f, 3), "t.yaml:2:23: bad[3]: expected a number, got \"1e\"");
	assert_string_equal(fx_msg(f, 4), "t.yaml:2:27: bad[4]: expected a number, got \".\"");
	assert_string_equal(fx_msg(f, 5),
			    "t.yaml:2:30: bad[5]: must be between 0 and 100, got 150.5");
	assert_string_equal(fx_msg(f, 6), "t.yaml:2:37: bad[6]: expected a number, got null");
}

static void test_bool(void **state)
{
	struct fx *f = *state;
	struct node *r = fx_root(f, "v: [true, True, TRUE, false, False, FALSE]\n"
				    "bad: [yes, \"true\", 1, tRUE, ~, {}]\n");
	struct node *v = node_get(r, "v"), *bad = node_get(r, "bad");
	bool out;
	size_t i;

	for (i = 0; i < 6; i++) {
		out = i >= 3;
		assert_true(node_bool(&f->d, v->vals[i], &out));
		assert_true(out == (i < 3));
	}
	assert_false(node_bool(&f->d, NULL, &out));
	assert_int_equal(f->d.n, 0);
	for (i = 0; i < 6; i++)
		assert_false(node_bool(&f->d, bad->vals[i], &out));
	assert_int_equal(f->d.n, 6);
	assert_string_equal(fx_msg(f, 0),
			    "t.yaml:2:7: bad[0]: expected true or false, got \"yes\"");
	assert_string_equal(fx_msg(f, 1), "t.yaml:2:12: bad[1]: expected a boolean, got a string");
	assert_string_equal(fx_msg(f, 2), "t.yaml:2:20: bad[2]: expected true or false, got \"1\"");
	assert_string_equal(fx_msg(f, 3),
			    "t.yaml:2:23: bad[3]: expected true or false, got \"tRUE\"");
	assert_string_equal(fx_msg(f, 4), "t.yaml:2:29: bad[4]: expected a boolean, got null");
	assert_string_equal(fx_msg(f, 5), "t.yaml:2:32: bad[5]: expected a boolean, got a map");
}

static void test_duration(void **state)
{
	struct fx *f = *state;
	static const struct {
		const char *in;
		uint64_t us;
	} ok[] = {
	    {"1s", 1000000},
	    {"0.5s", 500000},
	    {"100ms", 100000},
	    {"1m30s", 90000000},
	    {"1h", 3600000000ull},
	    {"0s", 0},
	    {"0", 0},
	    {"10s", 10000000},
	    {"1.5s", 1500000},
	    {"500us", 500},
	    {"500\xc2\xb5s", 500},
	    {"500\xce\xbcs", 500},
	    {"1500ns", 1}, /* rounded down */
	    {"999ns", 0},  /* rounded down */
	    {".25s", 250000},
	    {"1h1m1s1ms1us", 3661001001ull},
	    {"2.000001999s", 2000001},
	    {"0.1h", 360000000},
	    {"\"15s\"", 15000000}, /* quoted: durations are strings */
	};
	static const char *const bad[] = {
	    "-1s", "1", "s", "1x", "1.s.", "1 s", "", "1sm", "1S", "+1s", "1.5", "..5s", "1e3s",
	};
	char yaml[128], want[256];
	uint64_t out;
	struct node *n;
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(yaml, sizeof(yaml), "t: %s\n", ok[i].in);
		n = fx_root(f, yaml)->vals[0];
		out = 12345;
		assert_true(node_duration(&f->d, n, UINT64_MAX, &out));
		if (out != ok[i].us)
			fail_msg("%s: got %llu, want %llu", ok[i].in, (unsigned long long)out,
				 (unsigned long long)ok[i].us);
	}
	assert_int_equal(f->d.n, 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		fx_clear(f);
		snprintf(yaml, sizeof(yaml), "t: \"%s\"\n", bad[i]);
		n = fx_root(f, yaml)->vals[0];
		out = 12345;
		assert_false(node_duration(&f->d, n, UINT64_MAX, &out));
		assert_true(out == 12345);
		snprintf(want, sizeof(want),
			 "t.yaml:1:4: t: invalid duration \"%s\": use e.g. 10s, 1.5s or 100ms",
			 bad[i]);
		fx_expect_one(f, want);
	}
	fx_clear(f);
	n = fx_root(f, "a: 2h\nb: 1.5s\nc: ~\nd: [1s]\ne: 99999999999999999999h\nf: 1h\n");
	assert_false(node_duration(&f->d, node_get(n, "a"), 3600000000ull, &out));
	assert_false(node_duration(&f->d, node_get(n, "b"), 1000000, &out));
	assert_false(node_duration(&f->d, node_get(n, "c"), 1000000, &out));
	assert_false(node_duration(&f->d, node_get(n, "d"), 1000000, &out));
	assert_false(node_duration(&f->d, node_get(n, "e"), UINT64_MAX, &out));
	assert_true(node_duration(&f->d, node_get(n, "f"), 3600000000ull, &out));
	assert_false(node_duration(&f->d, NULL, 1, &out));
	assert_int_equal(f->d.n, 5);
	assert_string_equal(fx_msg(f, 0), "t.yaml:1:4: a: must be at most 1h, got \"2h\"");
	assert_string_equal(fx_msg(f, 1), "t.yaml:2:4: b: must be at most 1s, got \"1.5s\"");
	assert_string_equal(fx_msg(f, 2), "t.yaml:3:4: c: expected a duration, got null");
	assert_string_equal(fx_msg(f, 3), "t.yaml:4:4: d: expected a duration, got a sequence");
	assert_string_equal(fx_msg(f, 4), "t.yaml:5:4: e: must be at most 18446744073709551615us, "
					  "got \"99999999999999999999h\"");
	fx_clear(f);
	n = fx_root(f, "a: 91s\nb: 1001ms\nc: 1s\n");
	assert_false(node_duration(&f->d, node_get(n, "a"), 90000000, &out));
	assert_false(node_duration(&f->d, node_get(n, "b"), 1000500, &out));
	assert_false(node_duration(&f->d, node_get(n, "c"), 0, &out));
	assert_string_equal(fx_msg(f, 0), "t.yaml:1:4: a: must be at most 90s, got \"91s\"");
	assert_string_equal(fx_msg(f, 1),
			    "t.yaml:2:4: b: must be at most 1000500us, got \"1001ms\"");
	assert_string_equal(fx_msg(f, 2), "t.yaml:3:4: c: must be at most 0s, got \"1s\"");
}

static void test_enum(void **state)
{
	struct fx *f = *state;
	static const char *const names[] = {"ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", NULL};
	struct node *r = fx_root(f, "a: RANDOM\nb: \"ROUND_ROBIN\"\nc: random\nd: ~\ne: {}\n"
				    "f: RANDOMX\n");
	int out = -1;

	assert_true(node_enum(&f->d, node_get(r, "a"), names, &out));
	assert_int_equal(out, 2);
	assert_true(node_enum(&f->d, node_get(r, "b"), names, &out));
	assert_int_equal(out, 0);
	assert_false(node_enum(&f->d, NULL, names, &out));
	assert_int_equal(f->d.n, 0);
	assert_false(node_enum(&f->d, node_get(r, "c"), names, &out));
	assert_false(node_enum(&f->d, node_get(r, "d"), names, &out));
	assert_false(node_enum(&f->d, node_get(r, "e"), names, &out));
	assert_false(node_enum(&f->d, node_get(r, "f"), names, &out));
	assert_int_equal(out, 0);
	assert_string_equal(fx_msg(f, 0), "t.yaml:3:4: c: must be one of ROUND_ROBIN, "
					  "LEAST_REQUEST, RANDOM; got \"random\"");
	assert_string_equal(fx_msg(f, 1), "t.yaml:4:4: d: must be one of ROUND_ROBIN, "
					  "LEAST_REQUEST, RANDOM; got null");
	assert_string_equal(fx_msg(f, 2), "t.yaml:5:4: e: must be one of ROUND_ROBIN, "
					  "LEAST_REQUEST, RANDOM; got a map");
	assert_string_equal(fx_msg(f, 3), "t.yaml:6:4: f: must be one of ROUND_ROBIN, "
					  "LEAST_REQUEST, RANDOM; got \"RANDOMX\"");
}

static void test_type_name(void **state)
{
	struct fx *f = *state;
	struct node *r = fx_root(f, "a: {}\nb: []\nc: x\nd:\n");

	assert_string_equal(node_type_name(node_get(r, "a")), "map");
	assert_string_equal(node_type_name(node_get(r, "b")), "sequence");
	assert_string_equal(node_type_name(node_get(r, "c")), "string");
	assert_string_equal(node_type_name(node_get(r, "d")), "null");
	assert_string_equal(node_type_name(NULL), "null");
}

static void test_long_values_quoted(void **state)
{
	struct fx *f = *state;
	char yaml[400], want[400];
	struct node *r;
	bool b;

	/* 100 characters, a quote and a backslash: cut at 64 bytes, escaped. */
	snprintf(yaml, sizeof(yaml), "a: 'q\"\\%0100d'\nb: x%0100d\n", 0, 0);
	r = fx_root(f, yaml);
	assert_false(node_bool(&f->d, node_get(r, "b"), &b));
	snprintf(want, sizeof(want), "t.yaml:2:4: b: expected true or false, got \"x%063d\"...", 0);
	assert_string_equal(fx_msg(f, 0), want);
	fx_clear(f);
	assert_false(node_duration(&f->d, node_get(r, "a"), 1, NULL));
	snprintf(want, sizeof(want),
		 "t.yaml:1:4: a: invalid duration \"q\\\"\\\\%061d\"...: use e.g. 10s, 1.5s or "
		 "100ms",
		 0);
	assert_string_equal(fx_msg(f, 0), want);
}

/* ---- paths ---- */

static void test_paths(void **state)
{
	struct fx *f = *state;
	struct node *r = fx_root(f, "spec:\n"
				    "  http:\n"
				    "  - match:\n"
				    "    - uri: {exact: /}\n"
				    "    - uri: {prefix: /}\n"
				    "  \"\": {\"a b\": 1, \"x[0]\": 2}\n");
	struct node *match = node_get(node_get(node_get(r, "spec"), "http")->vals[0], "match");
	struct node *uri = node_get(match->vals[1], "uri");
	struct node *odd = node_get(node_get(r, "spec"), "");
	char buf[128], small[12];

	assert_string_equal(node_path(uri, buf, sizeof(buf)), "spec.http[0].match[1].uri");
	assert_string_equal(node_path(uri->vals[0], buf, sizeof(buf)),
			    "spec.http[0].match[1].uri.prefix");
	assert_string_equal(node_path(uri->keys[0], buf, sizeof(buf)),
			    "spec.http[0].match[1].uri.prefix");
	assert_string_equal(node_path(match->vals[0], buf, sizeof(buf)), "spec.http[0].match[0]");
	assert_string_equal(node_path(r, buf, sizeof(buf)), "");
	assert_string_equal(node_path(NULL, buf, sizeof(buf)), "");
	assert_string_equal(node_path(r->vals[0], buf, sizeof(buf)), "spec");
	assert_string_equal(node_path(odd->vals[0], buf, sizeof(buf)), "spec[\"\"][\"a b\"]");
	assert_string_equal(node_path(odd->vals[1], buf, sizeof(buf)), "spec[\"\"][\"x[0]\"]");
	/* Truncated safely. */
	assert_string_equal(node_path(uri, small, sizeof(small)), "spec.http[0");
	assert_string_equal(node_path(uri, small, 1), "");
	assert_ptr_equal(node_path(uri, small, 0), small);

	fx_load(f, "- [a, {b: c}]\n");
	assert_string_equal(
	    node_path(f->docs[0]->root->vals[0]->vals[1]->vals[0], buf, sizeof(buf)), "[0][1].b");
}

/* ---- diag format ---- */

static void test_diag_format(void **state)
{
	struct fx *f = *state;
	struct node *r = fx_root(f, "metadata:\n  name: x\nspec:\n  port: 80\n");
	struct node *port = node_get(node_get(r, "spec"), "port");
	struct node_doc *doc = f->docs[0];
	FILE *mem;
	char *out = NULL;
	size_t outlen = 0;

	diag_error(&f->d, port, "bad port %d", 80);
	diag_warn(&f->d, port, "odd");
	diag_notice(&f->d, port, "fyi");
	diag_error(&f->d, r, "root problem");
	doc->kind = "Gateway";
	doc->name = "gw";
	diag_error(&f->d, port, "bad");
	diag_warn(&f->d, r, "w");
	doc->ns = "istio-system";
	diag_error(&f->d, port, "bad");
	diag_warn(&f->d, port, "w");
	diag_notice(&f->d, port, "n");
	diag_error(&f->d, NULL, "no node");
	diag_warn(&f->d, NULL, "no node");
	diag_error_at(&f->d, "m.yaml", 3, 7, "raw %s", "pos");
	diag_error_at(&f->d, "m.yaml", 0, 0, "cannot read: %s", "Permission denied");
	diag_error_at(&f->d, NULL, 0, 0, "bare");
	doc->name = NULL;
	diag_error(&f->d, port, "unnamed");
	diag_error(&f->d, port, "ctl\nchars\t\x1b[31m");
	assert_int_equal(f->d.nerrors, 10);
	assert_int_equal(f->d.nwarnings, 4);
	assert_int_equal(f->d.v[1].level, DIAG_WARNING);
	assert_int_equal(f->d.v[2].level, DIAG_NOTICE);

	mem = open_memstream(&out, &outlen);
	assert_non_null(mem);
	diag_print(&f->d, mem);
	fclose(mem);
	assert_string_equal(out, "t.yaml:4:9: spec.port: bad port 80\n"
				 "t.yaml:4:9: warning: spec.port: odd\n"
				 "t.yaml:4:9: notice: spec.port: fyi\n"
				 "t.yaml:1:1: root problem\n"
				 "t.yaml:4:9: Gateway gw: spec.port: bad\n"
				 "t.yaml:1:1: warning: Gateway gw: w\n"
				 "t.yaml:4:9: Gateway istio-system/gw: spec.port: bad\n"
				 "t.yaml:4:9: warning: Gateway istio-system/gw: spec.port: w\n"
				 "t.yaml:4:9: notice: Gateway istio-system/gw: spec.port: n\n"
				 "no node\n"
				 "warning: no node\n"
				 "m.yaml:3:7: raw pos\n"
				 "m.yaml: cannot read: Permission denied\n"
				 "bare\n"
				 "t.yaml:4:9: Gateway: spec.port: unnamed\n"
				 "t.yaml:4:9: Gateway: spec.port: ctl\\nchars\\t\\x1b[31m\n");
	free(out);
	diag_error(NULL, port, "ignored");
	diag_error_at(NULL, "x", 1, 1, "ignored");
}

static void test_diag_limit(void **state)
{
	struct fx *f = *state;
	int i;

	for (i = 0; i < 20000; i++)
		diag_error_at(&f->d, "x.yaml", i + 1, 1, "e%d", i);
	assert_int_equal(f->d.nerrors, 20000);
	assert_int_equal(f->d.n, 10000);
	assert_string_equal(f->d.v[9998].text, "x.yaml:9999:1: e9998");
	assert_string_equal(f->d.v[9999].text, "too many diagnostics; the rest are not shown");
}

static void test_diag_long_message(void **state)
{
	struct fx *f = *state;
	char big[1000];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	diag_error_at(&f->d, "f", 1, 2, "%s!", big);
	assert_int_equal(strlen(fx_msg(f, 0)), strlen("f:1:2: ") + 1000);
	diag_fini(&f->d);
	diag_fini(&f->d); /* idempotent */
	diag_init(&f->d);
}

/* ---- streaming load: dropped trees rebuilt from the file for reports ---- */

struct stream_fx {
	struct pool *p;
	struct node_doc *docs[16];
	size_t ndocs;
	bool keep_odd; /* keep the trees of documents 1, 3, ... */
};

static void stream_doc(void *arg, struct node_doc *doc)
{
	struct stream_fx *s = arg;

	assert_true(s->ndocs < 16);
	assert_non_null(doc->root);
	assert_true(node_doc_dropped(doc));
	if (s->keep_odd && s->ndocs % 2 == 1) {
		node_doc_keep(s->p, doc);
		assert_false(node_doc_dropped(doc));
	}
	s->docs[s->ndocs++] = doc;
}

static void stream_write(char *path, const char *yaml)
{
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
	close(fd);
}

/* Every node of the fully loaded tree n, found again through a ghost of the same node of the
 * streamed (dropped or kept) document sd: same position, type and field path. */
static void stream_check(struct pool *p, const struct node *n, struct node_doc *sd, uint32_t *cnt)
{
	struct node g, *ghost, *r;
	char a[256], b[256];
	size_t i;

	memset(&g, 0, sizeof(g));
	g.type = NODE_SCALAR;
	g.line = n->line;
	g.col = n->col;
	g.ord = n->ord;
	g.doc = sd;
	ghost = node_ghost(p, &g);
	assert_int_equal(ghost->type, NODE_GHOST);
	r = node_real(ghost);
	assert_ptr_not_equal(r, ghost);
	assert_int_equal(r->type, n->type);
	assert_int_equal(r->line, n->line);
	assert_int_equal(r->col, n->col);
	assert_string_equal(node_path(r, a, sizeof(a)), node_path(n, b, sizeof(b)));
	/* Messages work on the ghost itself. */
	assert_string_equal(node_path(ghost, a, sizeof(a)), b);
	(*cnt)++;
	for (i = 0; i < n->n && (n->type == NODE_MAP || n->type == NODE_SEQ); i++) {
		if (n->type == NODE_MAP)
			stream_check(p, n->keys[i], sd, cnt);
		stream_check(p, n->vals[i], sd, cnt);
	}
}

static void test_stream_rebuild(void **state)
{
	/* Implicit first document, comments, `---` with content on its line, an explicit
	 * end, an empty document, multi-byte characters before positions, CRLF. */
	static const char yaml[] = "# leading comment\n"
				   "kind: VirtualService\n"
				   "spec:\n"
				   "  hosts: [\"h\\u00e9\", b]\n"
				   "  http:\n"
				   "  - match: [{uri: {prefix: /\xc3\xa9t\xc3\xa9}}]\n"
				   "    route: [{destination: {host: x}}]\n"
				   "--- {a: 1, b: [x, {c: d}]}\n"
				   "---\n"
				   "# only a comment\n"
				   "---\n"
				   "  k: v\n"
				   "  l:\n"
				   "  - {m: n}\n"
				   "...\n"
				   "--- !!map\n"
				   "x: \xc3\xa9\xc3\xa9\xc3\xa9\r\n"
				   "y: {z: 1}\r\n";
	struct fx *f = *state;
	struct stream_fx s;
	struct node_rebuild *rb = node_rebuild_new(f->p);
	char path[] = "/tmp/test_node_XXXXXX";
	uint32_t cnt = 0;
	size_t i;
	int pass;

	stream_write(path, yaml);
	fx_load(f, yaml);
	assert_int_equal(f->rc, 0);
	assert_int_equal(f->ndocs, 4);
	for (pass = 0; pass < 2; pass++) {
		memset(&s, 0, sizeof(s));
		s.p = f->p;
		s.keep_odd = pass == 1;
		assert_int_equal(node_load_file_each(f->p, &f->d, path, rb, stream_doc, &s), 0);
		assert_int_equal(f->d.n, 0);
		assert_int_equal(s.ndocs, f->ndocs);
		for (i = 0; i < s.ndocs; i++) {
			assert_int_equal(s.docs[i]->index, (int)i);
			if (s.keep_odd && i % 2 == 1) {
				assert_non_null(s.docs[i]->root);
			} else {
				assert_null(s.docs[i]->root);
			}
			/* The full load names the file "t.yaml": compare paths and positions. */
			stream_check(f->p, f->docs[i]->root, s.docs[i], &cnt);
		}
		node_rebuild_release(rb);
		for (i = 0; i < s.ndocs; i++)
			assert_null(s.docs[i]->byord);
	}
	assert_true(cnt > 40);
	unlink(path);
}

/* The file changed after loading: the report keeps the position, loses the field path. */
static void test_stream_changed(void **state)
{
	struct fx *f = *state;
	struct stream_fx s;
	struct node_rebuild *rb = node_rebuild_new(f->p);
	char path[] = "/tmp/test_node_XXXXXX";
	struct node *spec, *ghost, *r;
	char buf[64];
	FILE *fp;

	memset(&s, 0, sizeof(s));
	s.p = f->p;
	stream_write(path, "kind: VirtualService\nspec:\n  hosts: [a]\n");
	/* Take a ghost while the tree is there (as a decoder does). */
	assert_int_equal(node_load_file_each(f->p, &f->d, path, rb, stream_doc, &s), 0);
	assert_int_equal(s.ndocs, 1);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("kind: VirtualService\nspec:\n  hosts: [b]\n", fp);
	fclose(fp);
	{
		struct node g;

		memset(&g, 0, sizeof(g));
		g.line = 3;
		g.col = 3;
		g.ord = 4; /* "hosts" key: kind, VirtualService, spec, map, hosts */
		g.doc = s.docs[0];
		ghost = node_ghost(f->p, &g);
	}
	r = node_real(ghost);
	assert_int_equal(r->line, 3);
	assert_int_equal(r->col, 3);
	assert_null(r->parent);
	assert_string_equal(node_path(r, buf, sizeof(buf)), "");
	spec = node_get(ghost, "x");
	assert_null(spec);
	diag_error(&f->d, ghost, "boom");
	assert_int_equal(f->d.n, 1);
	assert_true(strstr(f->d.v[0].text, ":3:3: boom") != NULL);
	unlink(path);
}

/* YAML errors of a file come before the decoders' messages of its earlier documents, as
 * when the whole file is parsed first. */
static void stream_report(void *arg, struct node_doc *doc)
{
	struct fx *f = arg;

	diag_error(&f->d, doc->root, "decoded");
}

static void test_stream_diag_order(void **state)
{
	struct fx *f = *state;
	struct node_rebuild *rb = node_rebuild_new(f->p);
	char path[] = "/tmp/test_node_XXXXXX";

	stream_write(path, "a: 1\n---\nb: 2\nb: 3\n---\nc: [\n");
	assert_int_equal(node_load_file_each(f->p, &f->d, path, rb, stream_report, f), -1);
	assert_int_equal(f->d.n, 4);
	assert_true(strstr(f->d.v[0].text, ":4:1: duplicate key \"b\"") != NULL);
	assert_true(strstr(f->d.v[1].text, ":7:1: ") != NULL); /* the unclosed flow sequence */
	assert_true(strstr(f->d.v[2].text, ":1:1: decoded") != NULL);
	assert_true(strstr(f->d.v[3].text, ":3:1: decoded") != NULL);
	unlink(path);
}

/* Files larger than the loader's read window (64 KiB): documents between long comments
 * rebuilt exactly, and a reader error far into a file at its line and column. */
static void test_stream_big(void **state)
{
	struct fx *f = *state;
	struct stream_fx s;
	struct node_rebuild *rb = node_rebuild_new(f->p);
	char path[] = "/tmp/test_node_XXXXXX", path2[] = "/tmp/test_node_XXXXXX";
	size_t cap = 400 * 1024, len = 0, i;
	char *yaml = malloc(cap);
	uint32_t cnt = 0;

	assert_non_null(yaml);
	for (i = 0; i < 16; i++) {
		memset(yaml + len, '#', 9000);
		len += 9000;
		yaml[len++] = '\n';
		len += (size_t)snprintf(yaml + len, cap - len,
					"---\nkind: VirtualService\nmetadata: {name: vs-%zu}\n"
					"spec: {hosts: [h%zu], http: [{route: [{destination: "
					"{host: b}}]}]}\n",
					i, i);
	}
	yaml[len] = '\0';
	assert_true(len > 2 * 64 * 1024);
	stream_write(path, yaml);
	fx_load(f, yaml);
	assert_int_equal(f->rc, 0);
	assert_int_equal(f->ndocs, 16);
	memset(&s, 0, sizeof(s));
	s.p = f->p;
	assert_int_equal(node_load_file_each(f->p, &f->d, path, rb, stream_doc, &s), 0);
	assert_int_equal(s.ndocs, 16);
	/* Last first: the rebuilds read the file backwards too. */
	for (i = 16; i-- > 0;) {
		assert_null(s.docs[i]->root);
		stream_check(f->p, f->docs[i]->root, s.docs[i], &cnt);
	}
	assert_true(cnt > 16 * 10);
	unlink(path);

	/* A bad byte past the first window: its position counts every line before it. */
	len = 0;
	for (i = 0; i < 5000; i++)
		len += (size_t)snprintf(yaml + len, cap - len, "# comment line %zu\n", i);
	len += (size_t)snprintf(yaml + len, cap - len, "a: b\nc: d\xff\n");
	assert_true(len > 64 * 1024);
	stream_write(path2, yaml);
	memset(&s, 0, sizeof(s));
	s.p = f->p;
	assert_int_equal(node_load_file_each(f->p, &f->d, path2, rb, stream_doc, &s), -1);
	assert_int_equal(f->d.n, 1);
	assert_non_null(strstr(f->d.v[0].text, ":5002:5: invalid leading UTF-8 octet (byte 0xff)"));
	unlink(path2);
	free(yaml);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_positions, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_nulls_and_styles, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_empty_inputs, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_crlf_bom_tabs_unicode, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_duplicate_keys, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_duplicate_keys_big_map, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_big_map_lookup, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_anchors_refused, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_bad_keys_and_tags, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_syntax_errors, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_depth_limit, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_size_limit, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_guard_page, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_unreadable_file, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_load_file, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_fields, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_mark_used, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_get, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_want, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_str, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_int, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_double, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_bool, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_duration, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_enum, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_type_name, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_long_values_quoted, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_paths, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_diag_format, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_diag_limit, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_diag_long_message, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_stream_rebuild, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_stream_changed, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_stream_diag_order, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_stream_big, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
