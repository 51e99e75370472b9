/* JSON text that a store may keep: checked before it is written.
 *
 * Short of memory, jansson 2.14's json_dumps can drop bytes and still
 * answer (a transfer's record came out with a key cut in two), and a record
 * stored so is read back as damaged: what it stood for is lost at the next
 * start. Reading the text back and comparing it costs a parse, which only
 * records kept per message or per transfer pay, never a message's path. */
#include <stdlib.h>

#include <tern/error.h>
#include <tern/json.h>

#include "util.h"

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
