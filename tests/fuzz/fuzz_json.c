/* Business messages as agency systems submit them, proto3 JSON: the first
 * byte picks the type; what decodes is validated and encoded back. */
#include <stdlib.h>

#include <tern/json.h>
#include <tern/msgtype.h>
#include <tern/validate.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const tern_msgtype *t = tern_msgtype_all();
	ProtobufCMessage *m = NULL;
	tern_violations v;
	char err[256], *text = NULL;
	size_t n = 0;

	if (size < 1)
		return 0;
	while (t[n].name)
		n++;
	t += data[0] % n;
	if (tern_json_parse_text(t->desc, (const char *)data + 1, size - 1, &m, err, sizeof(err)) !=
	    0)
		return 0;
	tern_validate(m, 1795000000000, &v);
	if (tern_json_dump_text(m, &text) == 0)
		free(text);
	tern_json_message_free(&m);
	return 0;
}
