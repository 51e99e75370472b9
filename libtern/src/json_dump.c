/* JSON text that a store may keep: checked before it is written.
 *
 * Short of memory, jansson 2.14's json_dumps can drop bytes and still
 * answer (a transfer's record came out with a key cut in two), and a record
 * stored so is read back as damaged: what it stood for is lost at the next
 * start. Reading the text back and comparing it costs a parse, which only
 * records kept per message or per transfer pay, never a message's path. */
#include <pthread.h>
#include <stdlib.h>

#include <tern/error.h>
#include <tern/json.h>

#include "util.h"

/* jansson's allocations, watched per thread: one that fails is noted. The
 * functions are installed once, in place of jansson's default (malloc and
 * free too), so what either allocated the other frees. */
static __thread int json_alloc_failed;
static pthread_once_t json_watch_once = PTHREAD_ONCE_INIT;

static void *watched_malloc(size_t n)
{
	void *p = malloc(n);

	if (p == NULL)
		json_alloc_failed = 1;
	return p;
}

static void watched_free(void *p)
{
	free(p);
}

static void json_watch_install(void)
{
	json_set_alloc_funcs(watched_malloc, watched_free);
}

int tern_json_loadb_stored(const void *buf, size_t len, json_t **out)
{
	json_error_t err;

	pthread_once(&json_watch_once, json_watch_install);
	json_alloc_failed = 0;
	*out = json_loadb(buf, len, 0, &err);
	if (json_alloc_failed) {
		json_decref(*out);
		*out = NULL;
		return tern_fail(TERN_ENOMEM, "out of memory reading stored JSON");
	}
	if (*out == NULL)
		return tern_fail(TERN_EMALFORMED, "stored JSON does not decode: %s", err.text);
	return TERN_OK;
}

int tern_json_dumps_exact(const json_t *v, size_t flags, char **out)
{
	char *text;
	json_t *back;
	int same;

	*out = NULL;
	if ((text = json_dumps(v, flags)) == NULL)
		return tern_fail(TERN_ENOMEM, "out of memory writing JSON");
	back = json_loads(text, 0, NULL);
	same = back != NULL && json_equal(back, v);
	json_decref(back);
	if (!same) {
		free(text);
		return tern_fail(TERN_ENOMEM,
		                 "out of memory writing JSON (the text did not read back)");
	}
	*out = text;
	return TERN_OK;
}
